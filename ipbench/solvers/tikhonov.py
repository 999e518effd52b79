"""Classical baseline: Tikhonov-regularised least squares with a gradient penalty.

x_hat = argmin ||A x - y||^2 / (2 sigma_y^2) + lam / 2 ||D x||^2, D the forward-difference gradient with
Neumann boundary, i.e. (A^T A / sigma_y^2 + lam D^T D) x = A^T y / sigma_y^2, solved per image by
conjugate gradients. sigma_y below 1e-3 is treated as 1e-3 so that noiseless problems stay well posed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.linalg import conjugate_gradient
from ipbench.models.base import ScoreModel
from ipbench.operators.base import noise_level, linear_problem
from ipbench.params import POSITIVE, Tune, param
from ipbench.solvers.base import Solver, register_solver


def gradient(x: Tensor) -> Tensor:
    """Forward differences (N, 2, C, H, W), zero across the last row/column (Neumann)."""
    dy = torch.zeros_like(x)
    dx = torch.zeros_like(x)
    dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([dy, dx], dim=1)


def gradient_adjoint(g: Tensor) -> Tensor:
    """D^T of `gradient` (minus the divergence)."""
    dy, dx = g[:, 0], g[:, 1]
    out = torch.zeros_like(dy)
    out[..., :-1, :] -= dy[..., :-1, :]
    out[..., 1:, :] += dy[..., :-1, :]
    out[..., :, :-1] -= dx[..., :, :-1]
    out[..., :, 1:] += dx[..., :, :-1]
    return out


@register_solver
@dataclass
class Tikhonov(Solver):
    """Least squares with a smoothness (gradient) penalty, by conjugate gradients."""

    name = "tikhonov"
    prior: ClassVar[str] = "any"  # it does not use the prior: it runs beside pixel and latent priors
    # penalty weight; best of {2, 5, 10, 20, 50, 100} on the Gaussian-prior check (denoise)
    lam: float = param(20.0, range=POSITIVE, tune=Tune(0.1, 1000, log=True))
    tol: float = param(1e-5, range=POSITIVE)  # relative CG residual

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "A^T A in its normal equations")

    def deterministic(self) -> bool:
        return True  # draws nothing: one run per measurement whatever --samples asks

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        inv_var = 1.0 / max(noise_level(op), 1e-3) ** 2
        normal = lambda x: inv_var * op.A_adjoint(op.A(x)) + self.lam * gradient_adjoint(gradient(x))  # noqa: E731
        return conjugate_gradient(normal, inv_var * op.A_adjoint(y), tol=self.tol, max_iter=2000)
