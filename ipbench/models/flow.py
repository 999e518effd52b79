"""Flow-matching priors, and the flow view of every prior.

A flow model predicts the velocity v(x_s, s) = E[eps - x0 | x_s] of the linear path x_s = (1 - s) x0 + s eps
(rectified flow, Liu et al. 2023, eq. 1; conditional flow matching with sigma_min = 0, Lipman et al. 2023,
eq. 23), at any s in [0, 1). `FlowModel` is a `ScoreModel`: its `eps(x_t, t)` is the exact conversion of its
velocity at the flow time of each VP time (models/parametrization.py), on a VP grid of its choosing (DDPM's
linear 1000-step schedule by default), so every solver written against the VP view runs on it unchanged; and
it is `continuous`: `denoise(model, x, sigma)` evaluates it at sigma itself, not at the nearest grid time.

`velocity(model, x_s, s)` is the flow view of any prior: a flow model's own prediction, or for a VP or VE model
(or a flow model inside the run's wrappers, through its `denoise_ve`) the velocity its x0 prediction implies (at the grid time nearest to s for a discrete model, as
`models.denoiser.denoise` snaps, with eps re-derived from the actual state, so the ODE step stays consistent).
"""
from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.denoiser import denoise
from ipbench.models.parametrization import (as_levels, eps_of_velocity, flow_state_of_vp, flow_time_of_alpha_bar,
                                            flow_time_of_sigma, per_image, sigma_of_flow_time, velocity_of_x0,
                                            x0_of_velocity)


class FlowModel(ScoreModel):
    """A velocity-prediction model on the linear path, in [-1, 1] model units.

    Subclasses implement `velocity(x_s, s)` for x_s (N, C, H, W) and s a float tensor (N,) in [0, 1).
    """

    continuous = True

    def __init__(self, image_shape: tuple[int, int, int], alphas_cumprod: Tensor | None = None) -> None:
        super().__init__(linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod, image_shape)

    @abstractmethod
    def velocity(self, x_s: Tensor, s: Tensor) -> Tensor:
        """E[eps - x0 | x_s] at flow times s (N,)."""

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The VP view: eps = x_s + (1 - s) v(x_s, s) at x_s, s of the same noise level as (x_t, t)."""
        ab = self.alpha_bar(t, x_t)
        s = flow_time_of_alpha_bar(ab)
        x_s = flow_state_of_vp(x_t, ab)
        return eps_of_velocity(x_s, self.velocity(x_s, s.flatten()), s)

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        """E[x0 | x] for x = x0 + sigma eps at any sigma (N,) > 0: x0 = x_s - s v at x_s = (1 - s) x."""
        s = per_image(flow_time_of_sigma(sigma))
        x_s = (1.0 - s) * x
        return x0_of_velocity(x_s, self.velocity(x_s, s.flatten()), s)


def velocity(model: ScoreModel, x_s: Tensor, s: float | Tensor) -> Tensor:
    """The flow velocity of any prior at x_s and flow time s in (0, 1) (a float, or one per image)."""
    levels = as_levels(s, x_s.shape[0], x_s)
    if isinstance(model, FlowModel):
        return model.velocity(x_s, levels)
    s_img = per_image(levels)
    x = x_s / (1.0 - s_img)  # the VE state x0 + sigma eps
    if model.continuous:  # a wrapped flow or EDM model (counting NFE, speed switches): its any-sigma view
        return velocity_of_x0(x_s, model.denoise_ve(x, sigma_of_flow_time(levels)), s_img)
    x0 = torch.cat([denoise(model, x[i:i + 1], float(sigma)) for i, sigma in enumerate(sigma_of_flow_time(levels))]) \
        if levels.unique().numel() > 1 else denoise(model, x, float(sigma_of_flow_time(levels[0])))
    return velocity_of_x0(x_s, x0, s_img)
