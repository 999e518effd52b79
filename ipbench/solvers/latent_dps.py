"""DPS on a latent prior, through the decoder: the baseline of the latent solvers.

Chung et al. 2023's Algorithm 1 (solvers/dps.py) run on the latent z of a `LatentPrior`: each step's z0_hat is
Tweedie's estimate from the latent network, the image it stands for is decode(z0_hat), and the measurement step is

    z_{t-1} = z'_{t-1} - zeta_t grad_{z_t} ||y - A(decode(z0_hat(z_t)))||^2,

back-propagated through the decoder and the latent network; the answer is decode(z_0). This is PSLD's update
without its gluing term (Rout et al. 2023, Algorithm 2 with gamma = 0), the "Latent-DPS" baseline of the latent
solvers' tables (ReSample, Song et al. 2024). The step rules, the ancestral step and Poisson noise are
DPS's (solvers/dps.py). Deviation from `dps`: no clipping by default, since latents have no [-1, 1] range.
Each step decodes the batch once (with a backward), so a row's `decodes` is steps + 1 per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.latent import autoencoder_of
from ipbench.solvers.base import register_solver
from ipbench.solvers.dps import DPS


@register_solver
@dataclass
class LatentDPS(DPS):
    """DPS on a latent prior: the measurement gradient through the decoder."""

    name = "latent-dps"
    prior: ClassVar[str] = "latent"
    presets = {}  # DPS's published settings are for pixel priors
    clip: bool = False  # latents are not in [-1, 1]; True clips z0_hat there as `dps` clips x0_hat

    def image_of(self, x0: Tensor, model: ScoreModel) -> Tensor:
        autoencoder = autoencoder_of(model)
        if autoencoder is None:  # the runner skips pixel priors (prior_problem); a direct caller gets this
            raise ValueError("latent-dps needs a latent prior (a model with an autoencoder)")
        return autoencoder.decode(x0)
