"""Classical baseline: a multi-scale hole filler (normalised convolution) of the back-projected measurement.

Normalised convolution (Knutsson & Westin 1993): x_hat = (G * (w x_bp)) / (G * w), with w = 1 where the
operator sees a pixel and 0 where it does not, so unseen pixels are filled from their neighbours. Holes
wider than the filter are filled from filters of doubled widths, each weighted 1e-3 times the last, so
the finest filter with support decides each pixel and the fill blends smoothly between scales.

Registered as `hole-fill` with the alias `blur`, its name until the seeds' baseline (a plain 3 x 3 Gaussian
filter of the measurement) was added as `gaussian-filter`: configs that say `blur` still run this solver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.operators.base import back_project, visible_mask, linear_problem
from ipbench.params import POSITIVE, Tune, param
from ipbench.solvers.base import Solver, register_solver


def gaussian_filter(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian filter (truncated at 4 sigma, zero padding) per channel."""
    radius = max(1, int(4 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    g = g / g.sum()
    channels = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(radius, 0), groups=channels)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, radius), groups=channels)


@register_solver
@dataclass
class HoleFill(Solver):
    """Normalised-convolution Gaussian filter of width `sigma` pixels, widened where holes need it."""

    name = "hole-fill"
    prior: ClassVar[str] = "any"  # it does not use the prior: it runs beside pixel and latent priors
    aliases = ("blur",)
    # filter std in pixels: light smoothing at sigma_y = 0.025; widen it for heavier noise
    sigma: float = param(1.0, range=POSITIVE, tune=Tune(0.3, 5, log=True))

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "it fills from the back-projection A^T y / A^T 1")

    def deterministic(self) -> bool:
        return True  # draws nothing: one run per measurement whatever --samples asks

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        x_bp = back_project(op, y)
        weight = visible_mask(op, x_bp)
        numerator, denominator = torch.zeros_like(x_bp), torch.zeros_like(x_bp)
        sigma, level_weight = self.sigma, 1.0
        while True:  # scale k enters with weight 1e-3^k: fine scales win wherever they have support
            numerator += level_weight * gaussian_filter(weight * x_bp, sigma)
            denominator += level_weight * gaussian_filter(weight, sigma)
            if bool((denominator > 1e-3 * level_weight).all()) or sigma > 4 * max(x_bp.shape[-2:]):
                break
            sigma, level_weight = 2.0 * sigma, 1e-3 * level_weight
        filled = denominator > 0
        return torch.where(filled, numerator / torch.where(filled, denominator, torch.ones_like(denominator)), x_bp)
