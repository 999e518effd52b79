"""Score-ALD in DDPM form: the annealed likelihood score of Jalal et al. 2021 (NeurIPS, eq. 4) added to a
DDPM reverse process instead of to annealed Langevin dynamics (`score-ald` is the paper's algorithm).

The likelihood is annealed with the diffusion noise: A is applied to the VE-equivalent image of x_t,
x~_t = to_image(x_t / sqrt(ab_t)), whose noise std in image units is gamma_t = sqrt((1 - ab_t) / ab_t) / 2
(the default gamma), and

    score_y = grad_{x_t} log N(y; A x~_t, (sigma_y^2 + gamma_t^2) I)
            = -grad_{x_t} ||A x~_t - y||^2 / (2 (sigma_y^2 + gamma_t^2)).

`weighting` says how the likelihood enters the step:
  ddpm  (default) where the prior score enters it: Tweedie with the posterior score,
        x0_hat <- x0_hat + (1 - ab_t) / sqrt(ab_t) score_y, then the ancestral step; as in ALD, data and
        prior terms share one step size (about beta_t per step).
  unit  the seeds' literal update x_{t-1} <- x'_{t-1} + grad_{x_t} log N(y; A to_image(x_t), (sigma_y^2 + gamma^2) I),
        a step of size 1 on the likelihood of x_t itself, with a constant gamma. In model units
        (y' = 2 y - A 1, s'^2 = 4 (sigma_y^2 + gamma^2)) it adds A^T (y' - A x_t) / s'^2 to x'_{t-1}, whose gain on
        what A sees is close to 1, so the residual r = A x - y' becomes about (I - A A^T / s'^2) r per step: it
        contracts iff every eigenvalue a of A A^T has |1 - a / s'^2| < 1, i.e. s'^2 > a_max / 2. Masks and the
        identity have a_max = 1, so the step is stable iff sigma_y^2 + gamma^2 > 1/8 in image units (> 1/2 in
        model units); a smaller gamma is refused. (Power iteration at 32 px: a_max = 0.12 for sr, 1.0008 for
        deblur-gauss and 1.10 for deblur-motion, whose reflect padding lifts it: there the bound is
        s'^2 > 0.55; the default is inside it.) The default gamma = sqrt(1/4 - sigma_y^2) gives s'^2 = 1,
        where the step lands on the measurement for masks (the contraction factor is 0).
        The former unit weighting, the likelihood of x~_t with a step of 1, diverged on every image: in x~_t
        units the step is 1 / ab_t, so stability needs ab_t s'^2 > 1/2, which a constant gamma breaks near
        t = T and gamma_t breaks for ab_t > 1/2.
`clip`: clip the (likelihood-corrected) x0_hat to [-1, 1] before the step. Off by default: on fashion32
it cost 2.4 dB on box inpainting and 0.7 dB on deblurring (results/sweeps/score-ald-fashion32.md).
No network gradient is needed: one evaluation per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, to_image
from ipbench.operators.base import noise_level
from ipbench.params import POSITIVE, STEPS, UNIT, param
from ipbench.solvers.base import Solver, misfit_gradient, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, reverse_grid

UNIT_STABLE = 1 / 8  # sigma_y^2 + gamma^2 (image units) above which the unit step contracts for ||A|| <= 1


def unit_gamma(sigma_y: float, gamma: float | None) -> float:
    """The constant gamma of `weighting=unit`: the default that makes the step a projection for masks, or
    the given one once checked against the stability bound sigma_y^2 + gamma^2 > 1/8 (image units)."""
    if gamma is None:
        return max(0.25 - sigma_y**2, 0.0) ** 0.5
    if sigma_y**2 + gamma**2 <= UNIT_STABLE:
        raise UsageError(f"solver score-ald-ddpm.gamma={gamma:g}: with weighting=unit the step of size 1 diverges "
                         f"unless sigma_y^2 + gamma^2 > 1/8 (image units); here sigma_y = {sigma_y:g}, so use "
                         f"gamma > {max(UNIT_STABLE - sigma_y**2, 0.0) ** 0.5:.4f} or leave gamma unset")
    return gamma


@register_solver
@dataclass
class ScoreALDDDPM(Solver):
    """Annealed likelihood score added to the prior score in each DDPM reverse step."""

    name = "score-ald-ddpm"
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1
    # likelihood std added to sigma_y (image units); None = sqrt((1 - ab_t) / ab_t) / 2 (ddpm),
    # sqrt(1/4 - sigma_y^2) (unit)
    gamma: float | None = param(None, range=POSITIVE)
    weighting: str = param("ddpm", choices=("ddpm", "unit"))
    eta: float = param(1.0, range=UNIT)
    clip: bool = False

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        sigma_y = noise_level(op)
        constant_gamma = unit_gamma(sigma_y, self.gamma) if self.weighting == "unit" else self.gamma
        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            # the literal step takes the likelihood of x_t itself; the ddpm one that of its VE image x~_t
            scale = 1.0 if self.weighting == "unit" else ab ** 0.5
            gamma = ((1 - ab) / ab) ** 0.5 / 2 if constant_gamma is None else constant_gamma
            score_y = -misfit_gradient(op, y, x, scale) / (sigma_y**2 + gamma**2)
            x0 = predict_x0(model, x, t, ab, clip=False)  # the one network evaluation
            self.report_step(t, x, x0)
            if self.weighting == "ddpm":
                x0 = x0 + (1 - ab) / ab ** 0.5 * score_y  # Tweedie with the posterior score
            x = ddim_step(x, x0.clamp(-1, 1) if self.clip else x0, ab, ab_prev, self.eta, generators)
            if self.weighting == "unit":
                x = x + score_y  # the seeds' literal step of size 1
        return to_image(x)
