"""Classical baseline of the seeds: a Gaussian filter of the noisy measurement (3 x 3 kernel, sigma 0.8 px).

x_hat = G * m, G the normalised separable Gaussian kernel of `kernel_size` taps and std `sigma` pixels, with
reflect padding (torchvision's `gaussian_blur` convention), and m the measurement as an image:
  measurement      (default, the seeds' baseline) y itself where it has the image's shape (denoising,
                   inpainting, blur), and y upsampled by bicubic interpolation for super-resolution
                   (ipbench.operators.measurement_image); holes of an inpainting mask stay 0 (black);
  back-projection  A^T y / A^T 1 with unseen pixels set to the mean of the seen ones (ipbench.operators.back_project),
                   which fills holes with a flat grey but re-blurs a blurred y.
It uses neither the model nor the operator's structure beyond that: the floor a learned prior must clear.
`hole-fill` (alias `blur`) is the other classical baseline, a multi-scale filler of the holes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.latent import pixel_shape
from ipbench.operators.base import back_project, measurement_image, linear_problem
from ipbench.params import AT_LEAST_ONE, POSITIVE, Tune, check_count, param
from ipbench.solvers.base import Solver, register_solver


def gaussian_kernel_filter(x: Tensor, kernel_size: int, sigma: float) -> Tensor:
    """Separable normalised Gaussian filter of `kernel_size` taps (odd) per channel, reflect padding."""
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, -1)
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


@register_solver
@dataclass
class GaussianFilter(Solver):
    """A kernel_size x kernel_size Gaussian filter of the measurement (the seeds' classical baseline)."""

    name = "gaussian-filter"
    prior: ClassVar[str] = "any"  # it does not use the prior: it runs beside pixel and latent priors
    kernel_size: int = param(3, range=AT_LEAST_ONE)  # odd; the seeds' 3
    sigma: float = param(0.8, range=POSITIVE, tune=Tune(0.2, 3, log=True))  # pixels; the seeds' 0.8
    source: str = param("measurement", choices=("measurement", "back-projection"), tune=Tune())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size % 2 == 0:
            raise UsageError(f"solver gaussian-filter.kernel_size={self.kernel_size}: must be odd (a centred kernel)")

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        side = min(pixel_shape(model)[-2:])  # reflect padding needs a radius below the image side
        check_count(f"solver {self.name}", "kernel_size", self.kernel_size, 2 * side - 1,
                    f"reflect padding on {side} px images")

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "it filters the back-projection A^T y / A^T 1 or y as an image, both through A^T")

    def deterministic(self) -> bool:
        return True  # draws nothing: one run per measurement whatever --samples asks

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        image = back_project(op, y) if self.source == "back-projection" else measurement_image(op, y)
        return gaussian_kernel_filter(image, self.kernel_size, self.sigma)
