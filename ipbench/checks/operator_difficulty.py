"""How much harder an operator makes recovery than denoising, measured on an exact Gaussian prior.

The spectrum summary (`operators.spectrum`) says which directions of x the noise swamps; how much that
costs depends on how much of the image lives there. For a Gaussian prior (the `gaussian-fashion32` model,
fitted to Fashion-MNIST, or any `GaussianScoreModel`) the posterior of x given y = A x + n is Gaussian and
its covariance does not depend on y, so the MMSE, E||E[x|y] - x||^2 / D = tr(Cov[x|y]) / D, is exact
(the model's dense posterior). The ratio of the operator's MMSE to that of denoising (A = I) at the same
sigma_y says how much harder the operator is than denoising alone: 1 for an operator that is the identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from deepinv.physics import Physics

from ipbench.errors import UsageError
from ipbench.models import GaussianScoreModel
from ipbench.operators import Operator, as_float64
from ipbench.operators.spectrum import DEVICE, SpectrumSummary, spectrum_summary


def exact_mmse(model: GaussianScoreModel, physics: Physics, sigma_y: float) -> float:
    """tr(Cov[x | y]) / D of the model's prior for y = A x + n, n ~ N(0, sigma_y^2 I) (image units)."""
    physics = as_float64(physics)
    zero = torch.zeros(1, *model.image_shape, dtype=torch.float64)
    y = torch.zeros_like(physics.A(zero))  # the posterior covariance does not depend on y
    _, variance = model.posterior_dense(y, physics.A, sigma_y)
    return float(variance.mean())


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return 10 * math.log10(1 / mse)


@dataclass(frozen=True)
class Difficulty:
    """An operator's spectrum summary and its Gaussian-prior MMSE against denoising's at the same sigma_y."""

    spectrum: SpectrumSummary
    mmse: float
    mmse_denoise: float

    @property
    def ratio(self) -> float:
        """MMSE(operator) / MMSE(denoising): how much harder than denoising alone."""
        return self.mmse / self.mmse_denoise


def denoising_mmse(model: GaussianScoreModel, sigma_y: float) -> float:
    """The MMSE of denoising (A = I) at `sigma_y`: the reference of `Difficulty.ratio`."""
    shape = tuple(model.image_shape)
    denoise = Operator.create("denoise", {"sigma_y": sigma_y}).build(shape, [torch.Generator()], DEVICE)
    return exact_mmse(model, denoise, sigma_y)


def operator_difficulty(model: GaussianScoreModel, operator: Operator, seed: int = 0,
                        mmse_denoise: float | None = None) -> Difficulty:
    """The difficulty of `operator` on the model's image shape; a drawing operator is built from `seed`.
    `mmse_denoise`, if given, is `denoising_mmse(model, operator.sigma_y)` computed once for many operators."""
    if not operator.sigma_y > 0:
        raise UsageError(f"operator {operator.label}.sigma_y={operator.sigma_y}: the MMSE ratio needs sigma_y > 0")
    shape = tuple(model.image_shape)
    physics = operator.build(shape, [torch.Generator().manual_seed(seed)], DEVICE)
    if mmse_denoise is None:
        mmse_denoise = denoising_mmse(model, operator.sigma_y)
    return Difficulty(spectrum_summary(operator, shape, seed), exact_mmse(model, physics, operator.sigma_y),
                      mmse_denoise)
