"""One-step denoising with Tweedie's formula (the seeds' "one-step denoising").

For y = x + n with n ~ N(0, sigma_y^2 I), sqrt(alpha_bar_t) * to_model(y) is distributed as x_t of the
forward process at the time t whose noise matches sigma_y (`time_for_sigma`), so one network call gives
x0_hat = E[x0 | x_t] = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)   (Efron 2011, eq. 2.8).
For other operators it starts from the normalised back-projection A^T y / A^T 1 (unseen pixels set to
the mean of the seen ones) and treats it as the noisy image, which is only a heuristic: it is exact
(and, for a Gaussian prior, the MMSE estimate) only for denoising.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, diffuse_measurement, timesteps, to_image, tweedie_x0
from ipbench.operators.base import back_project, linear_problem
from ipbench.params import TIME, param
from ipbench.solvers.base import Solver, register_solver
from ipbench.solvers.diffusion import start_time


@register_solver
@dataclass
class Tweedie(Solver):
    """x0_hat from one score evaluation at the noise-matched time (or at a given `t`)."""

    name = "tweedie"
    t: int | None = param(None, range=TIME)  # diffusion time; None = matched to the operator's sigma_y

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "it denoises the back-projection A^T y / A^T 1")

    def as_run(self, op: Physics, model: ScoreModel) -> dict[str, Any]:
        return {"t": start_time(self.t, op, model)}

    def deterministic(self) -> bool:
        return True  # draws nothing: one run per measurement whatever --samples asks

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        t = start_time(self.t, op, model)
        t_batch = timesteps(t, y.shape[0], y.device)
        alpha_bar = model.alpha_bar(t_batch, y)
        x_t = diffuse_measurement(back_project(op, y), alpha_bar)  # y as a sample of x_t
        eps = model.eps(x_t, t_batch)  # one network evaluation
        return to_image(tweedie_x0(x_t, eps, alpha_bar))
