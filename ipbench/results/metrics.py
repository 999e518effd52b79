"""Per-image metrics with the fixed conventions of metric_registry.py: PSNR, SSIM and LPIPS.

Every metric takes two float NCHW tensors in [0, 1] (reconstruction `x`, reference `ref`, same shape)
and returns one value per image: a float64 tensor of shape (N,).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.results.lpips_networks import lpips_network
from ipbench.results.metric_registry import (DEFAULT_METRICS, LPIPS_MIN_SIZE, SET_METRICS, SSIM_K1, SSIM_K2,
                                             SSIM_SIGMA, SSIM_WINDOW)

LPIPS_CHUNK = 32  # images per LPIPS network call


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


def lpips(x: Tensor, ref: Tensor, net: str = "alex") -> Tensor:
    """LPIPS distance per image (Zhang et al. 2018, eq. 1), v0.1 linear layers; lower is more similar.

    Inputs in [0, 1] (clamped), C = 1 or 3; grayscale is repeated to RGB, images with smaller side under
    64 px are upsampled bilinearly so that side is 64, then both are scaled to [-1, 1].
    """
    model = lpips_network(net, x.device)
    _check_pair(x, ref)
    if x.shape[1] not in (1, 3):
        raise UsageError(f"LPIPS needs 1 or 3 channels, got {x.shape[1]}")
    x, ref = (t.detach().float().clamp(0.0, 1.0).expand(-1, 3, -1, -1) for t in (x, ref))
    h, w = x.shape[-2:]
    if min(h, w) < LPIPS_MIN_SIZE:
        size = (round(h * LPIPS_MIN_SIZE / min(h, w)), round(w * LPIPS_MIN_SIZE / min(h, w)))
        x, ref = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x, ref))
    with torch.no_grad():  # fixed chunks: a batch's convolutions may pick other kernels than a single
        # image's, which moves a score by ~1e-8; the runner's batch invariance is stated to 1e-6
        d = torch.cat([model(2 * x[i:i + LPIPS_CHUNK] - 1, 2 * ref[i:i + LPIPS_CHUNK] - 1).reshape(-1)
                       for i in range(0, x.shape[0], LPIPS_CHUNK)])
    return _f64(d)


METRIC_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "psnr": psnr, "ssim": ssim, "lpips": lpips, "lpips-vgg": functools.partial(lpips, net="vgg")}


def prepare_metrics(names: Sequence[str], device: torch.device) -> None:
    """Load what the named metrics need now, so that missing weights stop a run before it starts."""
    for name, net in (("lpips", "alex"), ("lpips-vgg", "vgg")):
        if name in names:
            lpips_network(net, device)
    if "fid" in names:
        from ipbench.results.fid import inception

        inception(device)


def compute_metrics(x: Tensor, ref: Tensor, names: Sequence[str] = DEFAULT_METRICS) -> dict[str, Tensor]:
    """The named per-image metrics of each image, {name: (N,) float64}; by default PSNR, SSIM and LPIPS
    (AlexNet). Set metrics among `names` (FID) are left to the tables."""
    return {name: METRIC_FUNCTIONS[name](x, ref) for name in names if name not in SET_METRICS}
