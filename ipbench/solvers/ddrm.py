"""DDRM: Denoising Diffusion Restoration Models (Kawar et al. 2022, NeurIPS, eqs. 7-8).

DDRM samples in the spectral coordinates of A = U diag(s) V^T, with the variance-exploding view of the
chain, x_t / sqrt(ab_t) = x_0 + sigma_t eps, sigma_t = sqrt((1 - ab_t) / ab_t). Write z = V^T (x_t /
sqrt(ab_t)), z0 = V^T x0_hat, ze = V^T eps_hat, y_bar = (U^T y_m) / s and nsr = sigma_y / s (model units,
see below). Going from sigma to the next noise level sigma' (eq. 8), coordinate by coordinate:

    s = 0                   z' = z0 + sigma' (sqrt(1 - eta^2) ze + eta xi)
    s sigma' < sigma_y      z' = z0 + sigma' (sqrt(1 - eta^2) (y_bar - z0) / nsr + eta xi)
    s sigma' >= sigma_y     z' = eta_b y_bar + (1 - eta_b) z0 + sqrt(sigma'^2 - eta_b^2 nsr^2) xi

with xi ~ N(0, I), then x_t' = sqrt(ab_t') V z'. ze is the paper's (z - z0) / sigma written with the
network's eps (the same number). The start (eq. 7) is z_T = y_bar + sqrt(sigma_T^2 - nsr^2) xi where
s sigma_T >= sigma_y, else sigma_T xi. The last step goes to sigma' = 0 (ab = 1): for sigma_y > 0 it
returns x0_hat at t = 0; for sigma_y = 0 and eta_b = 1 it returns y_bar on every coordinate A sees.

Units. The operator acts on [0, 1] images: y = A x + n, n ~ N(0, sigma_y^2 I). With x = (x_m + 1) / 2
(model units, [-1, 1]) and A linear, 2 y - A 1 = A x_m + 2 n. So DDRM runs on y_m = 2 y - A(1), whose
noise std is 2 sigma_y (the official code's sigma_0 = 2 * args.sigma_0, runners/diffusion.py:271, which
measures H x_m + sigma_0 z directly on [-1, 1] data): U^T y_m = s V^T x_m + U^T (2 n). Below, sigma_y
means this model-units 2 sigma_y.

Defaults and sources (github bahjat-kawar/ddrm, commit 32b6b3c): eta = 0.85 and eta_b = 1 (main.py:70,
73); 20 steps (`--timesteps 20` in every command of README.md:66-87) on the code's grid: skip = T // steps,
times 0, skip, 2 skip, ... < T (runners/diffusion.py:334-335), i.e. 950, 900, ..., 0 for T = 1000. That
grid has ceil(T / skip) times, more than `steps` when skip does not divide T (steps = 3: 999, 666, 333, 0;
steps = 400: 500 times), as in the code. The update is
functions/denoising.py:11-106 (`efficient_generalized_steps`): start at lines 20-39, cases at 73-96.
`cutoff`: the code's SVDs zero the singular values of each 1-D factor of a blur or bicubic SR below 3e-2
(functions/svd_replacement.py:341, 406, 494); for separable operators ipbench zeroes factor singular
values below `cutoff` times the factor's largest (the split of A into two factors is only defined up to a
scale; for a normalised blur kernel the largest is about 1, so this is the code's rule). Masks and the
identity (s in {0, 1}) are not affected.

Deviations from the official code:
- Ties s sigma' = sigma_y go to the third case as in eq. 8 (the code sends them to the s = 0 branch, by
  its strict inequalities). This only happens for sigma_y = 0 at the last step: there the code returns
  the network's x0_hat at t = 0 on observed coordinates, the paper (and ipbench) returns y_bar, so a
  noiseless mask keeps its observed pixels exactly (fashion32, 16 images, noiseless inpaint-box and
  inpaint-random: the code's rule leaves them off by up to 0.018 and 0.027; PSNR +0.002 dB; docs/solvers.md).
- Every s = 0 coordinate takes the s = 0 case. In the code, singular values zeroed by its cutoff stay in
  its list of singular values and, for sigma_y > 0, take the second case with noise drawn from U^T y.
- The noise xi is one draw per step for all three cases (the code draws one per case; the coordinates
  are disjoint, so the distribution is the same), from each image's own generator.
- Time grid values alpha_bar are the model's float64 ones (the code: a float32 cumprod of its betas).
The code's start divides V z_T by sigma_T (not multiplying by sqrt(ab_T)); ipbench does the same, which
is sqrt(ab_T) V z_T times 1 / sqrt(1 - ab_T) (a factor 1 + 4e-5 at t = 950 on the linear schedule).

Preset `paper`: the setting of every command in the official README (20 steps, eta 0.85, eta_b 1), for every
operator family DDRM has a degradation of (inp, deblur_gauss, sr4 / sr_bicubic4, deno: README.md:58); it
equals the defaults. Motion blur has none (and no SVD here).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, timesteps, to_image, tweedie_x0
from ipbench.operators.base import linear_problem, noise_level
from ipbench.operators.svd import OperatorSVD, SeparableSVD, operator_svd, svd_problem
from ipbench.params import STEPS, UNIT, Range, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.presets import PAPER, Preset, Setting, families


def ddrm_times(num_timesteps: int, steps: int) -> list[int]:
    """The official code's grid: times 0, skip, 2 skip, ... < T with skip = T // steps, largest first. It has
    `steps` times only where T // steps divides T closely enough (T = 1000: 20 and 100 do, 30 gives 31)."""
    return list(range(0, num_timesteps, max(num_timesteps // steps, 1)))[::-1]


def ddrm_step_counts(num_timesteps: int, steps: int) -> tuple[int | None, int | None]:
    """The nearest step counts below and above `steps` that the code's grid runs as set (None: there is none)."""
    exact = [n for n in range(1, num_timesteps + 1) if len(ddrm_times(num_timesteps, n)) == n]
    return max((n for n in exact if n < steps), default=None), min((n for n in exact if n > steps), default=None)


def ddrm_grid(model: ScoreModel, steps: int) -> list[tuple[int, float, float]]:
    """(t, ab_t, ab_next) for the official code's grid (`ddrm_times`), run from the largest time down; the
    last step goes to ab = 1 (the clean image)."""
    times = ddrm_times(model.num_timesteps, steps)
    alpha_bars = model.alphas_cumprod.double().cpu().tolist()
    ab = [alpha_bars[t] for t in times] + [1.0]
    return [(t, ab[i], ab[i + 1]) for i, t in enumerate(times)]


def ve_sigma(alpha_bar: float) -> float:
    """sigma_t = sqrt((1 - ab) / ab): the noise std of x_t / sqrt(ab), model units."""
    return ((1.0 - alpha_bar) / alpha_bar) ** 0.5


def cut_spectrum(svd: OperatorSVD, cutoff: float) -> Tensor:
    """The singular values per spectral coordinate, each separable factor's below cutoff * its largest set to 0."""
    if isinstance(svd, SeparableSVD) and cutoff > 0:
        keep = lambda s: s * (s >= cutoff * s.amax(dim=-1, keepdim=True)).to(s.dtype)  # noqa: E731
        svd = dataclasses.replace(svd, sc=keep(svd.sc), sr=keep(svd.sr))
    return svd.singular


_DDRM_SETTING = {
    "steps": Setting(20, "README.md:66", "--timesteps 20, as in every README command (:77, :82, :87)"),
    "eta": Setting(0.85, "main.py:70", "--eta 0.85 in every README command (README.md:66)"),
    "eta_b": Setting(1.0, "main.py:73", "--etaB 1 in every README command (README.md:66)")}
PAPER_PRESET = Preset(
    repository="github.com/bahjat-kawar/ddrm at 32b6b3c",
    note="one setting for every task; deblur-motion has none (DDRM needs an SVD of A)",
    operators=families(_DDRM_SETTING, {family: {} for family in
                                       ("inpaint-box", "inpaint-random", "deblur-gauss", "sr", "denoise")}))


@register_solver
@dataclass
class DDRM(Solver):
    """DDRM's variational posterior per spectral coordinate (eqs. 7-8), as the official code steps it."""

    name = "ddrm"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(20, range=STEPS)  # skip = T // steps (the code's grid), 20 in the README's commands
    eta: float = param(0.85, range=UNIT, tune=Tune(0, 1))  # eta = eta_A = eta_C of the code
    eta_b: float = param(1.0, range=UNIT, tune=Tune(0, 1))
    cutoff: float = param(3e-2, range=Range(0, 1, high_open=True))  # separable operators only

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "an SVD of A") or svd_problem(op, like)

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        num = model.num_timesteps
        ran = len(ddrm_times(num, self.steps))
        if ran != self.steps:  # the code's grid rounds the skip: refuse rather than run another count
            nearest = " or ".join(str(n) for n in ddrm_step_counts(num, self.steps) if n is not None)
            raise UsageError(f"solver {self.name}.steps={self.steps}: the grid (skip = T // steps = {num // self.steps}"
                             f" on T = {num}) has {ran} times; valid near it: {nearest}")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        n = y.shape[0]
        like = torch.zeros((n, *model.image_shape), device=y.device, dtype=y.dtype)
        svd = operator_svd(op, like)
        if svd is None:
            raise UsageError(f"solver ddrm: {svd_problem(op, like)}")
        s = cut_spectrum(svd, self.cutoff).to(y.dtype).expand_as(like)
        seen = s > 0
        s_safe = torch.where(seen, s, torch.ones_like(s))
        sigma_y = 2 * noise_level(op)  # model units
        y_model = 2 * y - op.A(torch.ones_like(like))  # = A x_m + 2 n (module docstring)
        uty = svd.Ut(y_model) * seen.to(y.dtype)  # coordinates cut to s = 0 carry nothing from y
        y_bar, nsr = uty / s_safe, sigma_y / s_safe
        c = (1 - self.eta**2) ** 0.5
        grid = ddrm_grid(model, self.steps)

        # eq. 7: z_T from the measurement where it is less noisy than sigma_T, pure noise elsewhere
        sigma_T = ve_sigma(grid[0][1])
        noise = randn_per_image(like.shape, generators, y.device, y.dtype)
        start = seen & (s * sigma_T >= sigma_y)
        z = torch.where(start, y_bar + (sigma_T**2 - nsr**2).clamp_min(0).sqrt() * noise, sigma_T * noise)
        x = svd.V(z) / sigma_T  # as the code (denoising.py:36-39): about sqrt(ab_T) V z_T

        for t, ab, ab_next in grid:
            eps = model.eps(x, timesteps(t, n, y.device))
            x0 = tweedie_x0(x, eps, ab)  # not clipped, as the code
            self.report_step(t, x, x0)
            sigma_next = ve_sigma(ab_next)
            z0, ze = svd.Vt(x0), svd.Vt(eps)
            noise = randn_per_image(like.shape, generators, y.device, y.dtype)
            first = z0 + sigma_next * (c * ze + self.eta * noise)  # s = 0
            # s sigma' < sigma_y; (y_bar - z0) / nsr written as (U^T y - s z0) / sigma_y, so sigma_y = 0 never divides
            second = z0 + sigma_next * (c * (uty - s * z0) / max(sigma_y, 1e-30) + self.eta * noise)
            third = (self.eta_b * y_bar + (1 - self.eta_b) * z0  # s sigma' >= sigma_y
                     + (sigma_next**2 - (self.eta_b * nsr) ** 2).clamp_min(0).sqrt() * noise)
            z = torch.where(seen & (s * sigma_next >= sigma_y), third, torch.where(seen, second, first))
            x = ab_next**0.5 * svd.V(z)
        return to_image(x)
