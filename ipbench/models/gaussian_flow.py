"""The analytic Gaussian prior written as a flow: its velocity in closed form, so that the Gaussian ground truth
(checks/gaussian_truth.py) runs on every solver through the flow parametrisation too.

For x0 ~ N(mu, Sigma) and x_s = (1 - s) x0 + s eps, with r = x_s - (1 - s) mu and C_s = (1 - s)^2 Sigma + s^2 I,

    E[x0 | x_s] = mu + (1 - s) Sigma C_s^{-1} r,      E[eps | x_s] = s C_s^{-1} r,

so v = E[eps - x0 | x_s] = (s I - (1 - s) Sigma) C_s^{-1} r - mu, a spectral multiplier in Sigma's eigenbasis
(models/gaussian.py). Computed natively here, not by converting the VP model's eps, so that the conversion
in `FlowModel.eps` is tested against an independent formula.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ipbench.models.flow import FlowModel
from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.parametrization import per_image


class GaussianFlowModel(FlowModel):
    """The exact velocity of a `GaussianScoreModel`'s prior, on that model's VP grid."""

    def __init__(self, gaussian: GaussianScoreModel) -> None:
        super().__init__(gaussian.image_shape, gaussian.alphas_cumprod)
        self.gaussian = gaussian

    def velocity(self, x_s: Tensor, s: Tensor) -> Tensor:
        g = self.gaussian
        s = per_image(s.to(torch.float64))
        multiplier = (s - (1.0 - s) * g.spectrum) / ((1.0 - s).square() * g.spectrum + s.square())
        residual = x_s.to(torch.float64) - (1.0 - s) * g.mean
        return (g.apply_spectral(residual, multiplier) - g.mean).to(x_s.dtype)
