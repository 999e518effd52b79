"""Score-ALD: annealed-Langevin-style posterior sampling (Jalal et al. 2021, NeurIPS, eq. 4, in DDPM form).

The likelihood is annealed with the diffusion noise: A is applied to the VE-equivalent image of x_t,
x~_t = to_image(x_t / sqrt(ab_t)), whose noise std in image units is gamma_t = sqrt((1 - ab_t) / ab_t) / 2
(the default gamma), and

    score_y = grad_{x_t} log N(y; A x~_t, (sigma_y^2 + gamma_t^2) I)
            = -grad_{x_t} ||A x~_t - y||^2 / (2 (sigma_y^2 + gamma_t^2)).

`weighting` says how score_y enters the step:
  ddpm  (default) where the prior score enters it: Tweedie with the posterior score,
        x0_hat <- x0_hat + (1 - ab_t) / sqrt(ab_t) score_y, then the ancestral step; as in ALD, data and
        prior terms share one step size (about beta_t per step).
  unit  the seeds' literal update x_{t-1} <- x'_{t-1} + score_y (step size 1), which overshoots once
        gamma_t is small: measured in docs/solvers.md.
No network gradient is needed: one evaluation per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image
from ipbench.operators.base import noise_level
from ipbench.params import AT_LEAST_ONE, POSITIVE, UNIT, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, reverse_grid


@register_solver
@dataclass
class ScoreALD(Solver):
    """Annealed likelihood score added to the prior score in each reverse step."""

    name = "score-ald"
    steps: int = param(100, range=AT_LEAST_ONE)  # strided reverse steps from T-1
    # likelihood annealing std (image units); None = sqrt((1 - ab_t) / ab_t) / 2
    gamma: float | None = param(None, range=POSITIVE)
    weighting: str = param("ddpm", choices=("ddpm", "unit"))
    eta: float = param(1.0, range=UNIT)
    clip: bool = True

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        sigma_y = noise_level(op)
        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            gamma = ((1 - ab) / ab) ** 0.5 / 2 if self.gamma is None else self.gamma
            with torch.enable_grad():
                x_var = x.detach().requires_grad_(True)
                misfit = (op.A(to_image(x_var / ab ** 0.5)) - y).flatten(1).square().sum()
                (grad,) = torch.autograd.grad(misfit, x_var)  # A may be any differentiable operator
            score_y = -grad / (2 * (sigma_y**2 + gamma**2))
            x0 = predict_x0(model, x, t, ab, clip=False)  # the one network evaluation
            self.report_step(t, x, x0)
            if self.weighting == "ddpm":
                x0 = x0 + (1 - ab) / ab ** 0.5 * score_y  # Tweedie with the posterior score
            x = ddim_step(x, x0.clamp(-1, 1) if self.clip else x0, ab, ab_prev, self.eta, generators)
            if self.weighting == "unit":
                x = x + score_y  # the seeds' literal step of size 1
        return to_image(x)
