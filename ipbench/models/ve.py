"""VE / EDM priors: a denoiser D(x, sigma) = E[x0 | x0 + sigma eps] at any sigma, in [-1, 1] model units.

An EDM network (Karras et al. 2022) is such a denoiser through its preconditioning (their Table 1, eq. 7):

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)),

c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2),
c_noise = ln(sigma) / 4, sd = sigma_data. `VEModel` is `continuous` (models/base.py): `denoise` evaluates it at the
sigma asked for; its `eps(x_t, t)`, for the solvers written against the VP view, is the exact conversion at the
sigma of each time of its VP grid, eps = (x - D(x, sigma)) / sigma with x = x_t / sqrt(ab_t) (models/denoiser.py).
The grid is the model's own training range of sigmas (an EDM model was never trained beyond sigma_max), so its t
does not mean the same noise level as a DDPM's: a solver should take times or sigmas from the model, as all do.
"""
from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.parametrization import alpha_bar_of_sigma, per_image, sigma_of_alpha_bar


def edm_sigma_grid(sigma_min: float, sigma_max: float, count: int, rho: float = 7.0) -> Tensor:
    """`count` sigmas from sigma_min up to sigma_max on EDM's rho-schedule (Karras et al. 2022, eq. 5), float64,
    increasing: the noise levels of the VP view of an EDM model."""
    ramp = torch.linspace(0, 1, count, dtype=torch.float64)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (low + ramp * (high - low)) ** rho


class VEModel(ScoreModel):
    """A denoiser-native prior; subclasses implement `denoise_ve(x, sigma)` for sigma (N,) > 0."""

    continuous = True

    def __init__(self, sigmas: Tensor, image_shape: tuple[int, int, int]) -> None:
        """`sigmas`: the increasing noise levels of its VP grid (one per time t)."""
        super().__init__(alpha_bar_of_sigma(sigmas.to(torch.float64)), image_shape)

    @abstractmethod
    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        """E[x0 | x] for x = x0 + sigma eps, sigma (N,) > 0."""

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        ab = self.alpha_bar(t, x_t)
        sigma = sigma_of_alpha_bar(ab)
        x = x_t / ab.sqrt()
        return (x - self.denoise_ve(x, sigma.flatten())) / sigma


def edm_preconditioned(network_output: Tensor, x: Tensor, sigma: Tensor, sigma_data: float,
                       v_prediction: bool = False) -> Tensor:
    """c_skip x + c_out F (module docstring); `v_prediction` flips c_out's sign, as diffusers' EDM scheduler does."""
    s = per_image(sigma)
    c_skip = sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
    c_out = s * sigma_data / (s ** 2 + sigma_data ** 2).sqrt()
    return c_skip * x + (-c_out if v_prediction else c_out) * network_output


def edm_inputs(x: Tensor, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """(c_in x, c_noise): what the EDM network F is given."""
    s = per_image(sigma)
    return x / (s ** 2 + sigma_data ** 2).sqrt(), 0.25 * sigma.log()
