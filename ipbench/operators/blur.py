"""Gaussian-blur deconvolution (deepinv `Blur`).

Default: the DPS paper's kernel (Chung et al. 2023, sec. 4: 61 x 61, sigma 3.0 on 256 x 256 images),
scaled with the image side (the nearest odd size), so a 32 px image gets a 7 x 7 kernel with sigma 0.375. Boundary: reflect
padding, as the DPS code applies the blur (ReflectionPad2d then a valid convolution); circular,
replicate, constant (zero) and valid are available.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Blur

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import POSITIVE

REFERENCE_SIDE, REFERENCE_KERNEL, REFERENCE_SIGMA = 256, 61, 3.0
PADDINGS = ("reflect", "circular", "replicate", "constant", "valid")


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """A normalised (1, 1, size, size) Gaussian kernel sampled at integer offsets."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).float().view(1, 1, size, size)


def scaled_blur(side: int) -> tuple[int, float]:
    """(kernel size, sigma) of the DPS blur scaled from 256 px to `side` px (kernel size odd)."""
    scale = side / REFERENCE_SIDE
    size = max(3, 2 * round((REFERENCE_KERNEL * scale - 1) / 2) + 1)
    return size, REFERENCE_SIGMA * scale


def check_kernel_fits(size: int, shape: tuple[int, int, int], padding: str, operator: str) -> None:
    """A kernel must fit the image: reflect padding needs size // 2 < side, valid needs size <= side."""
    side = min(shape[1], shape[2])
    if (padding == "reflect" and size // 2 >= side) or (padding == "valid" and size > side):
        raise UsageError(f"operator {operator}.kernel_size={size}: too large for {side} px images with {padding} padding")


@register_operator("deblur-gauss", aliases=("deblur",), choices={"padding": PADDINGS}, ranges={"sigma": POSITIVE})
def deblur_gauss(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                 kernel_size: int | None = None, sigma: float | None = None, padding: str = "reflect") -> Blur:
    """Gaussian blur; kernel_size/sigma default to the DPS 61 px, sigma 3 kernel scaled to the image."""
    auto_size, auto_sigma = scaled_blur(min(shape[1], shape[2]))
    size = auto_size if kernel_size is None else kernel_size
    sigma = auto_sigma if sigma is None else sigma
    if size < 1 or size % 2 == 0:
        raise UsageError(f"operator deblur-gauss.kernel_size={size}: must be a positive odd integer")
    if not 0 < sigma < float("inf"):
        raise UsageError(f"operator deblur-gauss.sigma={sigma}: must be a finite number of pixels > 0")
    check_kernel_fits(size, shape, padding, "deblur-gauss")
    return Blur(filter=gaussian_kernel(size, sigma).to(device), padding=padding, device=device)
