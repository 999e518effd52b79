"""How hard an operator is to invert, from its exact singular values: the spectrum summary.

For y = A x + n with n ~ N(0, sigma_y^2 I), a direction v_i of x (a right singular vector of A) reaches y
scaled by s_i: where s_i < sigma_y the noise is larger than the signal of a unit-size coordinate, so the
prior has to fill it in. The summary gives A's singular values (one per coordinate of x, 0 for the
directions A does not see), the condition number s_max / s_min and the fraction of singular values
below sigma_y. They are exact, from `operators.svd` (masks and the identity are diagonal; Gaussian blur
and super-resolution are separable, with any padding); an operator without an SVD there (motion blur)
has no summary. `ipbench.checks.operator_difficulty` adds what a Gaussian prior makes of the spectrum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Operator, Shape, as_float64
from ipbench.operators.svd import operator_svd, svd_problem

DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class SpectrumSummary:
    """A's singular values for one image (descending, float64, one per coordinate of x) against sigma_y."""

    singular: Tensor
    sigma_y: float

    @property
    def largest(self) -> float:
        return float(self.singular[0])

    @property
    def smallest(self) -> float:
        return float(self.singular[-1])

    @property
    def condition(self) -> float:
        """s_max / s_min; inf when A has a null space (a mask, decimation)."""
        return math.inf if self.smallest == 0 else self.largest / self.smallest

    @property
    def below_noise(self) -> float:
        """The fraction of singular values below sigma_y: the directions of x that the noise swamps."""
        return float((self.singular < self.sigma_y).double().mean())


def operator_singular_values(operator: Operator, shape: Shape, seed: int = 0) -> Tensor:
    """The exact singular values of `operator` on one image of `shape` (C, H, W), descending, float64.

    An operator that draws (a random mask) is built from one generator seeded with `seed`.
    """
    physics = as_float64(operator.build(shape, [torch.Generator().manual_seed(seed)], DEVICE))
    like = torch.zeros(1, *shape, dtype=torch.float64)
    svd = operator_svd(physics, like)
    if svd is None:
        raise UsageError(f"operator {operator.label}: no spectrum summary, it {svd_problem(physics, like)}")
    # A diagonal SVD may broadcast over channels or images, a separable one holds one channel: one image's worth
    singular = svd.singular[:1].expand(1, *shape)[0]
    return singular.flatten().sort(descending=True).values


def spectrum_summary(operator: Operator, shape: Shape, seed: int = 0) -> SpectrumSummary:
    """The spectrum summary of `operator` on images of `shape`, against the operator's own sigma_y."""
    return SpectrumSummary(operator_singular_values(operator, shape, seed), operator.sigma_y)
