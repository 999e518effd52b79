"""deepinv's own DPS (`deepinv.sampling.DPS`) on an ipbench model, through `ScoreModelDenoiser`.

This runs deepinv's implementation, not ipbench's: its continuous VP-SDE (beta 0.1..20, the continuum of
the linear DDPM schedule), its DDPM solver on `num_steps` times in [1, 0], its final denoising step,
and its guidance: with `guidance="norm"` it adds -weight * grad ||A(D(x)) - y|| to the score, which the
ancestral step then scales by about beta_t (see docs/solvers.md for how this relates to `dps`).
Images are solved one at a time, each with its own generator, so results do not depend on the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from deepinv.physics import Physics
from deepinv.sampling import DPS as DeepinvDPS
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.deepinv_adapter import ScoreModelDenoiser
from ipbench.solvers.base import Solver, register_solver


@register_solver
@dataclass
class DeepinvDPSSolver(Solver):
    """deepinv.sampling.DPS with an ipbench score model as its denoiser."""

    name = "deepinv-dps"
    num_steps: int = 1000
    weight: float = 1.0
    guidance: str = field(default="norm", metadata={"choices": ("norm", "annealed")})
    dtype: str = field(default="float64", metadata={"choices": ("float64", "float32")})  # deepinv's default: float64

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        denoiser = ScoreModelDenoiser(model)
        dtype = getattr(torch, self.dtype)
        out = []
        for i, generator in enumerate(generators):
            sampler = DeepinvDPS(denoiser, num_steps=self.num_steps, weight=self.weight, guidance=self.guidance,
                                 device=y.device, dtype=dtype, rng=generator)
            physics_i = _select(op, i)
            out.append(sampler(y[i:i + 1], physics_i, x_init=(1, *model.image_shape)).float())
        return torch.cat(out)


def _select(op: Physics, i: int) -> Physics:
    """The physics of image i alone (masks and filters with a batch dimension are sliced)."""
    import copy

    single = copy.copy(op)
    for name in ("mask", "filter"):
        value = getattr(op, name, None)
        if isinstance(value, Tensor) and value.ndim == 4 and value.shape[0] > 1:
            single = copy.deepcopy(op)
            setattr(single, name, value[i:i + 1])
    return single
