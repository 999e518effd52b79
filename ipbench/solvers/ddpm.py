"""Iterative denoising: the reverse process started from the measurement (the seeds' "iterative denoising").

y + noise of std sigma_y is, after sqrt(alpha_bar) * to_model(.), a sample of x_t at the matched time t
(as for `tweedie`); the reverse process from there (Ho et al. 2020, Algorithm 2, on a strided grid;
eta = 0 gives DDIM, Song et al. 2021) denoises it. For non-identity operators it starts from the
normalised back-projection, a heuristic as in `tweedie`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, diffuse_measurement, to_image
from ipbench.operators.base import back_project, linear_problem
from ipbench.params import STEPS, TIME, UNIT, check_count, param
from ipbench.solvers.base import Solver, register_solver
from ipbench.solvers.diffusion import reverse_process, start_time, timestep_schedule


@register_solver
@dataclass
class IterativeDenoising(Solver):
    """Reverse process from the noise-matched time, started at the (back-projected) measurement."""

    name = "ddpm"
    steps: int = param(20, range=STEPS)  # strided reverse steps from the matched time to 0
    eta: float = param(1.0, range=UNIT)  # 1 = DDPM ancestral step, 0 = deterministic DDIM
    t: int | None = param(None, range=TIME)  # start time; None = matched to sigma_y
    clip: bool = True  # clip x0_hat to [-1, 1] before each step, as the DDPM code does

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        if self.t is not None:
            check_count(f"solver {self.name}", "steps", self.steps, self.t + 1, f"the times t={self.t}..0")

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "it starts from the back-projection A^T y / A^T 1")

    def as_run(self, op: Physics, model: ScoreModel) -> dict[str, Any]:
        """With t matched to sigma_y the grid from t to 0 has at most t + 1 times: the row says how many ran."""
        t0 = start_time(self.t, op, model)
        return {"t": t0, "steps": len(timestep_schedule(t0, self.steps))}

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        t0 = start_time(self.t, op, model)
        x = diffuse_measurement(back_project(op, y), float(model.alphas_cumprod[t0]))  # y as a sample of x_t0
        return to_image(reverse_process(model, x, t0, self.steps, self.eta, generators, self.clip,
                                                on_step=self.report_step))
