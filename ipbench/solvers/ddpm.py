"""Iterative denoising: the reverse process started from the measurement (the seeds' "iterative denoising").

y + noise of std sigma_y is, after sqrt(alpha_bar) * to_model(.), a sample of x_t at the matched time t
(as for `tweedie`); the reverse process from there (Ho et al. 2020, Algorithm 2, on a strided grid;
eta = 0 gives DDIM, Song et al. 2021) denoises it. For non-identity operators it starts from the
normalised back-projection, a heuristic as in `tweedie`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, diffuse_measurement, time_for_sigma, to_image
from ipbench.operators.base import back_project, noise_level
from ipbench.params import AT_LEAST_ONE, TIME, UNIT, param
from ipbench.solvers.base import Solver, register_solver
from ipbench.solvers.diffusion import reverse_process


@register_solver
@dataclass
class IterativeDenoising(Solver):
    """Reverse process from the noise-matched time, started at the (back-projected) measurement."""

    name = "ddpm"
    steps: int = param(20, range=AT_LEAST_ONE)  # strided reverse steps from the matched time to 0
    eta: float = param(1.0, range=UNIT)  # 1 = DDPM ancestral step, 0 = deterministic DDIM
    t: int | None = param(None, range=TIME)  # start time; None = matched to sigma_y
    clip: bool = True  # clip x0_hat to [-1, 1] before each step, as the DDPM code does

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        t0 = time_for_sigma(model.alphas_cumprod, noise_level(op)) if self.t is None else self.t
        x = diffuse_measurement(back_project(op, y), float(model.alphas_cumprod[t0]))  # y as a sample of x_t0
        return to_image(reverse_process(model, x, t0, self.steps, self.eta, generators, self.clip,
                                                on_step=self.report_step))
