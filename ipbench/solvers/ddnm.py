"""DDNM: range-null space decomposition (Wang et al. 2023, ICLR, Algorithm 1; DDNM+ eq. 19 for noise).

Before each reverse step, x0_hat is replaced by x0_hat - lambda_t A^+ (A x0_hat - y) (image units): its
range-space part is taken from y, its null-space part from the model. For masks this is the seeds'
"keep the known pixels" inpainting. A^+ is exact for masks and denoising and a damped least-squares
solve otherwise (`operators.pseudo_inverse`; the paper uses an SVD with small singular values cut).
With noise (sigma_y > 0) DDNM+ scales the correction per singular value s of A, by min(1, s_t s / (a_t sigma_y)) (a_t the step's x0 coefficient, s_t its noise std), so
that noise amplified by 1/s never exceeds the step's own noise. For masks and denoising (s in {0, 1})
that is one scalar lambda_t, applied exactly, and the step noise is lowered to
sqrt(s_t^2 - (a_t lambda_t sigma_y)^2). For other operators the clipped inverse min(1/s, c) is smoothed
into the damped inverse s / (s^2 + 1/(4 c^2)) (same maximum c), and the step noise is kept.

Preset `paper`: the official evaluation commands (eta 0.85, 100 steps) for SR, Gaussian deblurring and
inpainting (its fixed mask, applied to box and random masks); it equals the defaults. Those commands are
noiseless (--sigma_y 0.); none for motion blur or denoising.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Denoising, Inpainting, Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.operators.base import linear_problem, noise_level, pseudo_inverse
from ipbench.params import STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_coefficients, ddim_step, predict_x0, reverse_grid
from ipbench.solvers.presets import PAPER, Preset, Setting, families


_DDNM_SETTING = {"steps": Setting(100, "configs/imagenet_256.yml:45", "time_travel T_sampling (celeba_hq.yml:38)"),
                 "eta": Setting(0.85, "evaluation.sh:26", "--eta 0.85 in every command (:5-36; main.py:42)")}
PAPER_PRESET = Preset(
    repository="github.com/wyhuai/DDNM at 00b58ea",
    note="sr_bicubic x4 (evaluation.sh:26), deblur_gauss (:30), inpainting (:36); noiseless commands",
    operators=families(_DDNM_SETTING, {family: {} for family in
                                       ("sr", "deblur-gauss", "inpaint-box", "inpaint-random")}))


@register_solver
@dataclass
class DDNM(Solver):
    """Range-null projection of x0_hat onto the measurement before each reverse step."""

    name = "ddnm"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1
    eta: float = param(0.85, range=UNIT, tune=Tune(0, 1))  # the paper's default
    clip: bool = True

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "A^+ in its range-null projection")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        sigma_y = 2 * noise_level(op)  # in model units
        exact = isinstance(op, (Inpainting, Denoising))  # singular values 0 or 1: one scalar lambda is exact
        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            c_x0, _, s_t = ddim_coefficients(ab, ab_prev, self.eta)
            x0 = predict_x0(model, x, t, ab, self.clip)
            x0_img = to_image(x0)
            residual = op.A(x0_img) - y
            if exact:  # DDNM+ eq. 19: lambda_t = min(1, s_t / (a_t sigma_y))
                lam = 1.0 if sigma_y == 0 or s_t >= c_x0 * sigma_y else s_t / (c_x0 * sigma_y)
                correction, injected = lam * pseudo_inverse(op, residual), lam * sigma_y
            elif sigma_y == 0 or s_t > 0:  # per singular value s: min(1/s, c), c = s_t / (a_t sigma_y),
                damping = (c_x0 * sigma_y / (2 * s_t)) ** 2 if sigma_y > 0 else 0.0  # smoothed: s / (s^2 + 1/(4c^2))
                correction, injected = pseudo_inverse(op, residual, damping=max(damping, 1e-4)), sigma_y
            else:  # c = 0: a noiseless step has no noise to hide amplified measurement noise in
                correction, injected = torch.zeros_like(x0_img), 0.0
            x0 = to_model(x0_img - correction)  # range space from y, null space from x0_hat
            self.report_step(t, x, x0)
            noise_std = max(s_t**2 - (c_x0 * injected) ** 2, 0.0) ** 0.5 if exact else s_t
            x = ddim_step(x, x0, ab, ab_prev, self.eta, generators, noise_std)
        return to_image(x)
