"""The reverse-process pieces the diffusion solvers share: time grids, x0_hat, the DDIM/DDPM step.

All in model units [-1, 1] with VP-DDPM discrete time (docs/architecture.md). The step is DDIM's
(Song et al. 2021, eq. 12), which with eta = 1 on consecutive times is exactly DDPM's ancestral step
with the posterior variance beta_tilde (Ho et al. 2020, eqs. 6-7), so one function serves both.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ipbench.errors import UsageError
from deepinv.physics import Physics

from ipbench.models.base import ScoreModel, time_for_sigma, timesteps, tweedie_x0
from ipbench.models.denoiser import sigma_grid
from ipbench.operators.base import noise_level
from ipbench.solvers.base import randn_per_image

X0Hook = Callable[[Tensor, int], Tensor]
StepHook = Callable[[int, Tensor, Tensor], None]  # (t, x_t, x0_hat): Solver.report_step


def timestep_schedule(t_start: int, steps: int) -> list[int]:
    """`steps` diffusion times from t_start down to 0, evenly spaced and rounded (at most t_start + 1)."""
    if steps < 1:
        raise UsageError(f"steps={steps}: must be >= 1")
    steps = min(steps, t_start + 1)
    grid = torch.linspace(t_start, 0, steps, dtype=torch.float64).round().long()
    return [int(t) for t in grid]


def start_time(t: int | None, op: Physics, model: ScoreModel) -> int:
    """`t`, or if None the time matched to the operator's sigma_y (the one-step and iterative denoisers')."""
    return time_for_sigma(model.alphas_cumprod, noise_level(op)) if t is None else t


SIGMA_MARGIN = 1e-3  # relative: a printed grid end (0.01 for 0.0100005) is still that end


def check_sigma(model: ScoreModel, where: str, name: str, value: float) -> None:
    """A noise level (VE sigma, model units) inside the model's grid: beyond its ends a schedule would be
    clamped to them, so the level asked for is not the one that runs."""
    grid = sigma_grid(model)
    low, high = grid[0], grid[-1]
    if not low * (1 - SIGMA_MARGIN) <= value <= high * (1 + SIGMA_MARGIN):
        raise UsageError(f"{where}.{name}={value:g}: must be in [{low:.4g}, {high:.4g}] (the model's noise "
                         "levels; beyond them it would be clamped to the nearest end)")


def predict_x0(model: ScoreModel, x_t: Tensor, t: int, alpha_bar: float, clip: bool) -> Tensor:
    """Tweedie's x0_hat from one network evaluation, optionally clipped to [-1, 1] (as the DDPM code does)."""
    x0 = tweedie_x0(x_t, model.eps(x_t, timesteps(t, x_t.shape[0], x_t.device)), alpha_bar)
    return x0.clamp(-1.0, 1.0) if clip else x0


def reverse_grid(model: ScoreModel, t_start: int, steps: int) -> list[tuple[int, float, float]]:
    """(t, alpha_bar[t], alpha_bar[t_prev]) for each step of the strided grid from t_start; the last
    step goes to alpha_bar = 1 (the clean image). Plain floats, read once, so a step never syncs a GPU."""
    grid = timestep_schedule(t_start, steps)
    alpha_bars = model.alphas_cumprod.double().cpu().tolist()
    ab = [alpha_bars[t] for t in grid] + [1.0]
    return [(t, ab[i], ab[i + 1]) for i, t in enumerate(grid)]


def ddim_coefficients(ab_t: float, ab_prev: float, eta: float) -> tuple[float, float, float]:
    """(c_x0, c_eps, sigma) of x_prev = c_x0 x0 + c_eps eps + sigma z (DDIM eq. 12 and 16)."""
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5
    return ab_prev ** 0.5, max(1 - ab_prev - sigma**2, 0.0) ** 0.5, sigma


def ddim_step(x_t: Tensor, x0: Tensor, ab_t: float, ab_prev: float, eta: float,
              generators: Sequence[torch.Generator], noise_std: float | None = None) -> Tensor:
    """x_{t_prev} from x_t and x0_hat; eps is re-derived from x0_hat so that a clipped x0_hat stays consistent.

    `noise_std` replaces the step's noise std (DDNM+ lowers it by the noise its correction injects).
    """
    c_x0, c_eps, sigma = ddim_coefficients(ab_t, ab_prev, eta)
    sigma = sigma if noise_std is None else noise_std
    eps = (x_t - ab_t ** 0.5 * x0) / (1 - ab_t) ** 0.5
    x_prev = c_x0 * x0 + c_eps * eps
    if sigma > 0:
        x_prev = x_prev + sigma * randn_per_image(x_t.shape, generators, x_t.device, x_t.dtype)
    return x_prev


def reverse_process(model: ScoreModel, x: Tensor, t_start: int, steps: int, eta: float,
                    generators: Sequence[torch.Generator], clip: bool, x0_hook: X0Hook | None = None,
                    on_step: StepHook | None = None) -> Tensor:
    """Run the reverse process from x = x_{t_start} to x_0 on `steps` strided times.

    `x0_hook(x0_hat, t)` may replace x0_hat before each step (DDNM's range-null projection does);
    `on_step(t, x_t, x0_hat)` is told each step (a solver passes its `report_step`).
    """
    for t, ab, ab_prev in reverse_grid(model, t_start, steps):
        x0 = predict_x0(model, x, t, ab, clip)
        if x0_hook is not None:
            x0 = x0_hook(x0, t)
        if on_step is not None:
            on_step(t, x, x0)
        x = ddim_step(x, x0, ab, ab_prev, eta, generators)
    return x


def sample_prior(model: ScoreModel, generators: Sequence[torch.Generator], steps: int = 100, eta: float = 1.0,
                 clip: bool = True) -> Tensor:
    """Unconditional samples in model units: the reverse process from x_{T-1} ~ N(0, I)."""
    device = model.alphas_cumprod.device
    x = randn_per_image((len(generators), *model.image_shape), generators, device)
    return reverse_process(model, x, model.num_timesteps - 1, steps, eta, generators, clip)
