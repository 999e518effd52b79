"""Denoising: the identity operator plus Gaussian noise (deepinv `Denoising`)."""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Denoising

from ipbench.operators.base import Shape, register_operator


@register_operator("denoise")
def denoise(shape: Shape, generators: Sequence[torch.Generator], device: torch.device) -> Denoising:
    """Identity; the measurement is the image plus noise of std sigma_y."""
    return Denoising(device=device)
