"""deepinv's own DPS (`deepinv.sampling.DPS`) on an ipbench model, through `ScoreModelDenoiser`.

This runs deepinv's implementation, not ipbench's: its continuous VP-SDE (beta 0.1..20, the continuum of
the linear DDPM schedule), its DDPM solver on `num_steps` times in [1, 0], its final denoising step,
and its guidance. With `guidance="norm"` deepinv adds -weight * grad_x ||A(D(x)) - y|| to the score,
and its ancestral step multiplies the score by s0 s1 (sigma0^2 - sigma1^2) (about beta_t), so its
guidance step is that much smaller than the paper's constant one (Chung et al. 2023, Algorithm 1).
`step="paper"` sets deepinv's weight per step to 2 weight / (s0 s1 (sigma0^2 - sigma1^2)), which makes
deepinv's step exactly the paper's with zeta' = weight, i.e. ipbench's `dps normalize=residual
zeta=weight` (docs/solvers.md derives it). A batch is solved in one deepinv sampler run, as deepinv
allows (its guidance takes each image's own residual norm), with each image's noise drawn from that image's
generator, so results do not depend on the batch: the same values as one image at a time, up to the network's
batched round-off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from deepinv.sampling import DPS as DeepinvDPS
from deepinv.sampling import DPSDataFidelity
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.deepinv_adapter import ScoreModelDenoiser
from ipbench.params import NON_NEGATIVE, Range, Tune, param
from ipbench.solvers.base import Solver, register_solver


class PerStepWeightFidelity(DPSDataFidelity):
    """DPS data fidelity whose weight depends on the step, looked up by the noise level it is called at."""

    def __init__(self, denoiser: torch.nn.Module, sigmas: Tensor, weights: Tensor) -> None:
        super().__init__(denoiser=denoiser, clip=[-1.0, 1.0], weight=1.0, guidance="norm")
        self.sigmas, self.weights = sigmas, weights

    def forward(self, x: Tensor, y: Tensor, physics: Physics, sigma: Tensor | float, *args: object,
                get_model_outputs: bool = False, **kwargs: object):
        step = int((self.sigmas - float(torch.as_tensor(sigma).flatten()[0])).abs().argmin())
        self.weight = float(self.weights[step])
        return super().forward(x, y, physics, sigma, *args, get_model_outputs=get_model_outputs, **kwargs)


def paper_step(sampler: DeepinvDPS, denoiser: torch.nn.Module, zeta: float) -> None:
    """Swap in per-step weights that make deepinv's DDPM-solver guidance equal the paper's step."""
    sde, grid = sampler.sde, sampler.solver.timesteps
    s, sigma = sde.scale_t(grid), sde.sigma_t(grid)
    step_size = s[:-1] * s[1:] * (sigma[:-1] ** 2 - sigma[1:] ** 2)  # what the ancestral step multiplies the score by
    # the fidelity is called at sigma / 2 (deepinv carries [-1, 1] state, the fidelity works in [0, 1])
    sampler.data_fidelity = PerStepWeightFidelity(denoiser, (sigma[:-1] / 2).float().cpu(), (2 * zeta / step_size).cpu())


@register_solver
@dataclass
class DeepinvDPSSolver(Solver):
    """deepinv.sampling.DPS with an ipbench score model as its denoiser."""

    name = "deepinv-dps"
    num_steps: int = param(1000, range=Range(2))
    weight: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.01, 10, log=True))
    guidance: str = param("norm", choices=("norm", "annealed"))
    step: str = param("deepinv", choices=("deepinv", "paper"))
    dtype: str = param("float64", choices=("float64", "float32"))  # deepinv's default: float64

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        denoiser = ScoreModelDenoiser(model)
        sampler = DeepinvDPS(denoiser, num_steps=self.num_steps, weight=self.weight, guidance=self.guidance,
                             device=y.device, dtype=getattr(torch, self.dtype), rng=generators[0])
        draw_per_image(sampler, generators)
        if self.step == "paper":
            paper_step(sampler, denoiser, self.weight)
        return sampler(y, op, x_init=(len(generators), *model.image_shape)).float()


def draw_per_image(sampler: DeepinvDPS, generators: Sequence[torch.Generator]) -> None:
    """Make the sampler draw image i's initial state and step noise from generators[i].

    deepinv draws a batch's noise from one generator (`sde.sample_init` and `solver.randn_like`, the only two
    places its DPS draws); drawing each image's share from its own generator, in the shape a one-image run
    draws, gives every image the noise it would get alone, whatever batch it is in.
    """
    sample_init = sampler.sde.sample_init

    def init(shape: Sequence[int], rng: torch.Generator | None = None, t: object = None) -> Tensor:
        return torch.cat([sample_init((1, *shape[1:]), rng=g, t=t) for g in generators])

    def randn_like(x: Tensor, seed: int | None = None) -> Tensor:
        return torch.cat([torch.empty_like(x[i:i + 1]).normal_(generator=g) for i, g in enumerate(generators)])

    sampler.sde.sample_init = init
    sampler.solver.randn_like = randn_like
