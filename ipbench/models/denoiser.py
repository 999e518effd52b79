"""Any ScoreModel seen as a denoiser D(x, sigma) in continuous noise level (the VE / EDM view).

A VP-DDPM model at time t sees x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps. Dividing by sqrt(ab_t) gives the
variance-exploding form x = x0 + sigma_t eps with sigma_t = sqrt((1 - ab_t) / ab_t) (model units), so

    D(x, sigma_t) = Tweedie x0_hat of x_t = sqrt(ab_t) x,   ab_t = 1 / (1 + sigma_t^2),

which is how k-diffusion's discrete-eps wrapper (`DiscreteEpsDDPMDenoiser`) turns a DDPM network into an
EDM denoiser (Karras et al. 2022, Table 1, "VP" column).

Between the model's discrete sigmas: `ScoreModel.eps` takes integer times, so a sigma is snapped to the
time whose sigma_t is nearest in log sigma (k-diffusion's `quantize=True`), and the input is scaled by that
time's sqrt(ab_t). A sigma off the grid is thereby denoised as if it were sigma_t, an error of
|log(sigma / sigma_t)| at most half a grid step (under 1% on the linear 1000-step schedule away from its
ends). Solvers that build their own noise schedule take it from `sigma_grid` or snap it with
`snap_sigmas`, so that every sigma they use is one the network was trained on and there is no mismatch.
Sigmas beyond the grid's ends are clamped to them. A `continuous` model (a flow or EDM network, which takes
any noise level) is evaluated at sigma itself, with no snapping.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel, diffusion_sigma, timesteps, tweedie_x0


def sigma_grid(model: ScoreModel) -> list[float]:
    """sigma_t = sqrt((1 - ab_t) / ab_t) for t = 0..T-1 (model units, increasing), as plain floats."""
    return diffusion_sigma(model.alphas_cumprod).tolist()


def time_of_sigma(model: ScoreModel, sigma: float) -> int:
    """The discrete time whose sigma_t is nearest to `sigma` in log sigma (clamped to the grid's ends)."""
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    return int(times_of_sigmas(model, torch.tensor([sigma], dtype=torch.float64))[0])


def times_of_sigmas(model: ScoreModel, sigmas: Tensor) -> Tensor:
    """`time_of_sigma` for each entry of a tensor of sigmas > 0 (model units), on the sigmas' device."""
    log_grid = diffusion_sigma(model.alphas_cumprod).log().to(sigmas.device)
    return (log_grid[None, :] - sigmas.to(log_grid.dtype).log().flatten()[:, None]).abs().argmin(dim=1)


def snap_sigmas(model: ScoreModel, sigmas: Sequence[float]) -> list[float]:
    """Each sigma replaced by the model's nearest grid sigma (repeats kept: a schedule's length is its step count)."""
    grid = sigma_grid(model)
    return [grid[time_of_sigma(model, s)] for s in sigmas]


def karras_sigmas(model: ScoreModel, steps: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> list[float]:
    """The EDM schedule (Karras et al. 2022, eq. 5) from sigma_max down to sigma_min in `steps` values,
    snapped to the model's grid (so it never asks the network for a sigma it was not trained on)."""
    if steps == 1:
        return snap_sigmas(model, [sigma_max])
    ramp = [i / (steps - 1) for i in range(steps)]
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return snap_sigmas(model, [(hi + r * (lo - hi)) ** rho for r in ramp])


def denoise(model: ScoreModel, x: Tensor, sigma: float) -> Tensor:
    """D(x, sigma): E[x0 | x] for x = x0 + sigma n in model units, from one network evaluation at the
    nearest discrete time (see the module docstring for sigmas between the grid's), or at sigma itself for
    a `continuous` model."""
    if model.continuous:
        return model.denoise_ve(x, torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device))
    t = time_of_sigma(model, sigma)
    ab = float(model.alphas_cumprod[t])
    x_t = ab ** 0.5 * x
    return tweedie_x0(x_t, model.eps(x_t, timesteps(t, x.shape[0], x.device)), ab)


def score(model: ScoreModel, x: Tensor, sigma: float) -> Tensor:
    """grad_x log p_sigma(x) = (D(x, sigma) - x) / sigma^2 in the VE view (Tweedie), at the snapped sigma_t."""
    sigma_t = sigma if model.continuous else sigma_grid(model)[time_of_sigma(model, sigma)]
    return (denoise(model, x, sigma) - x) / sigma_t**2
