"""DDNM: range-null space decomposition (Wang et al. 2023, ICLR, Algorithm 1; DDNM+ eq. 19 for noise).

Before each reverse step, x0_hat is replaced by x0_hat - lambda_t A^+ (A x0_hat - y) (image units): its
range-space part is taken from y, its null-space part from the model. For masks this is the seeds'
"keep the known pixels" inpainting. A^+ is exact for masks and denoising and a damped least-squares
solve otherwise (`operators.pseudo_inverse`; the paper uses an SVD with small singular values cut). With noise (sigma_y > 0) DDNM+ scales the correction,
lambda_t = min(1, s_t / (a_t sigma_y)), a_t the step's x0 coefficient and s_t its noise std, and
lowers the step noise to sqrt(s_t^2 - (a_t lambda_t sigma_y)^2) so the total stays s_t.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.operators.base import noise_level, pseudo_inverse
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_coefficients, predict_x0, reverse_grid


@register_solver
@dataclass
class DDNM(Solver):
    """Range-null projection of x0_hat onto the measurement before each reverse step."""

    name = "ddnm"
    steps: int = 100  # strided reverse steps from T-1
    eta: float = 0.85  # the paper's default
    clip: bool = True

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        sigma_y = 2 * noise_level(op)  # in model units
        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            c_x0, c_eps, s_t = ddim_coefficients(ab, ab_prev, self.eta)
            lam = 1.0 if sigma_y == 0 or s_t >= c_x0 * sigma_y else s_t / (c_x0 * sigma_y)  # DDNM+ eq. 19
            x0 = predict_x0(model, x, t, ab, self.clip)
            x0_img = to_image(x0)
            x0 = to_model(x0_img - lam * pseudo_inverse(op, op.A(x0_img) - y))  # range from y, null space from x0
            eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
            x = c_x0 * x0 + c_eps * eps
            noise_std = max(s_t**2 - (c_x0 * lam * sigma_y) ** 2, 0.0) ** 0.5
            if noise_std > 0:
                x = x + noise_std * randn_per_image(x.shape, generators, x.device, x.dtype)
        return to_image(x)
