"""Bridges to deepinv: an ipbench ScoreModel as a deepinv Denoiser.

deepinv denoisers take x in [0, 1] carrying Gaussian noise of std sigma (same units) and return E[x0 | x].
For a VP-DDPM model that is Tweedie's formula at the diffusion time whose VE noise
sqrt((1 - ab_t) / ab_t) equals 2 sigma (model units are twice image units), after mapping x to
x_t = sqrt(ab_t) (2x - 1). Time is the nearest in log sigma, per image (models/denoiser.py).
"""
from __future__ import annotations

import torch
from deepinv.models import Denoiser
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image, to_model, tweedie_x0
from ipbench.models.denoiser import times_of_sigmas


class ScoreModelDenoiser(Denoiser):
    """`ScoreModelDenoiser(model)(x, sigma)`: the MMSE denoiser of an ipbench score model, deepinv style."""

    def __init__(self, model: ScoreModel) -> None:
        super().__init__()
        self.model = model

    def time_for(self, sigma: Tensor) -> Tensor:
        """Per-image diffusion times for image-units noise levels sigma (N,): `times_of_sigmas` of 2 sigma."""
        return times_of_sigmas(self.model, 2 * sigma.clamp_min(1e-12))

    def forward(self, x: Tensor, sigma: float | Tensor, *args: object, **kwargs: object) -> Tensor:
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32).flatten()
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        t = self.time_for(sigma).to(x.device)
        alpha_bar = self.model.alpha_bar(t, x)
        x_t = alpha_bar.sqrt() * to_model(x)
        return to_image(tweedie_x0(x_t, self.model.eps(x_t, t), alpha_bar))
