"""DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu et al. 2023, CVPRW, Algorithm 1).

Each step at time t (model units, ab = alpha_bar):

    x0      = x0_hat(x_t)                                     the network as a denoiser (Tweedie, clipped)
    x0_hat  = argmin_x ||y - A x||^2 + rho_t ||x - x0||^2     data subproblem, image units
    eps_hat = (x_t - sqrt(ab_t) x0_hat) / sqrt(1 - ab_t)      effective noise
    x_prev  = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) (sqrt(1 - zeta) eps_hat + sqrt(zeta) z),  z ~ N(0, I)

with rho_t = lambda sigma_n^2 / sigma_bar_t^2, sigma_bar_t = sqrt((1 - ab_t) / ab_t) and sigma_n = max(sigma_y,
0.001). Units, as the official code has them: sigma_n in image units ([0, 1]), sigma_bar_t in model units
([-1, 1]), and the data step on [0, 1] images (the code's deblurring/SR step; its inpainting step runs on
[-1, 1], which gives the same x0_hat: the prox is unchanged by the affine map between the ranges). With
both sigmas in model units the paper's lambda would be this lambda / 4.

The data step is exact when `operators.svd.operator_svd` has an SVD A = U diag(s) V^T (masks, identity,
separable blurs and SR, any padding): x0_hat = V (s U^T y + rho V^T x0) / (s^2 + rho). For masks that is
the code's (mask y + rho x0) / (mask + rho); for circular blur the code's FFT solution; for our reflect-
padded blurs it is exact where an FFT would not be. Other operators (motion blur) take conjugate gradients
on (A^T A + rho I) d = A^T (y - A x0), x0_hat = x0 + d, per image, from d = 0.

Time grid (`skip_type`): "quad", as the code: seq_i = floor(T sqrt(i / (steps - 1))), the last one T - 1,
and t_i = T - 1 - seq_i, so 999, 899, 857, ..., 5, 0 for 100 steps (dense near t = 0); "uniform": evenly
spaced from T - 1 to 0 (`diffusion.timestep_schedule`). `steps` is the number of network evaluations.

Defaults, official code (github yuanzhi-zhu/DiffPIR, commit 111d26e): 100 steps, quad grid, clipped x0
(utils/utils_model.py:225 clip_denoised=True), sigma_n floor 0.001 (main_ddpir_deblur.py:49), rho_t
(main_ddpir_deblur.py:216), lambda = 7 and zeta = 0.3: the values main_ddpir_deblur.py runs (lambda_ = 1 and
zeta = 0.1 at lines 50 and 59, multiplied by 7 and 3 in its experiment loop, lines 440-443). The code's
other settings: super-resolution zeta = 0.25 with lambda swept over 2..12 (main_ddpir_sisr.py:482-485);
noiseless inpainting lambda = 1, zeta = 1 on 20 steps (main_ddpir_inpainting.py:34, 52, 55); the batch
script's configs/*.yaml have lambda = 1 and zeta 0.1 (deblur), 0.25 (SR), 1 (inpainting). deepinv's
DiffPIR defaults to lambda 7, zeta 0.1 (its lambda is half of this one, docs/solvers.md).

Preset `paper` (`PAPER_PRESET`): each task script's values, as above, for deblurring (both kernels),
super-resolution (zeta only: the script sweeps lambda) and inpainting (box and random); none for denoising.
The inpainting script is noiseless (noise_level_img = 0, main_ddpir_inpainting.py:29); the values carry over
unchanged, since ipbench's lambda is the code's whatever sigma_y.

Deviations from the official code:
- The last step (t = 0) applies the data step too and returns that x0_hat (the paper's x_0 with
  ab_0 := 1); the code evaluates the network at t = 0, discards it and returns x_{t=0}, the state of
  the step before (no data step, noise of std sqrt(1 - ab_0) = 0.01 in model units). On fashion32 this
  adds 0.55 to 0.6 dB on blur and denoising, 0.01 to 0.1 dB elsewhere (docs/solvers.md).
- x_T ~ N(0, I) as in the paper's Algorithm 1; the code draws x_T around sqrt(ab_T) y (weight 0.006).
- "uniform" has `steps` times; the code's has steps + 1 (it appends T - 1).
- Not carried over: the code's DDIM eta (0 in every script), guidance_scale (1), repeated inner steps
  (iter_num_U = 1), a start time below T - 1 (t_start = T - 1 in every script) and the first-order
  (gradient) data step used when sub_1_analytic is off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.linalg import conjugate_gradient
from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.operators.base import linear_problem, noise_level
from ipbench.operators.svd import OperatorSVD, operator_svd
from ipbench.params import AT_LEAST_ONE, POSITIVE, UNIT, Tune, check_count, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import predict_x0, timestep_schedule
from ipbench.solvers.presets import PAPER, Preset, Setting, families

SIGMA_FLOOR = 0.001  # image units; the code's sigma = max(0.001, noise_level_img), so noiseless rho_t > 0
CG_TOL, CG_MAX_ITER = 1e-4, 100  # relative residual of the data step's CG (operators without an SVD)

Prox = Callable[[Tensor, float], Tensor]

_DEBLUR = "main_ddpir_deblur.py"
_DEBLUR_SETTING = {
    "steps": Setting(100, f"{_DEBLUR}:38", "iter_num"),
    "lambda_": Setting(7.0, f"{_DEBLUR}:50, 440", "lambda_ = 1 times 7 in the experiment loop; ipbench's lambda is "
                       "the code's (sigma_n in image units, sigma_bar_t in model units)"),
    "zeta": Setting(0.3, f"{_DEBLUR}:59, 442", "zeta = 0.1 times 3 in the experiment loop"),
    "skip_type": Setting("quad", f"{_DEBLUR}:57")}
PAPER_PRESET = Preset(
    repository="github.com/yuanzhi-zhu/DiffPIR at 111d26e",
    note=f"motion blur runs the deblurring script's values (its blur_mode motion, {_DEBLUR}:64); SR's lambda is "
         "swept over 2..12 (main_ddpir_sisr.py:482), so SR keeps the default lambda; the inpainting script is "
         "noiseless (noise_level_img 0, main_ddpir_inpainting.py:29) with mask_type box or random (:40); no "
         "denoising script: denoise keeps the defaults",
    operators=families({}, {
        "deblur-gauss": _DEBLUR_SETTING,
        "deblur-motion": _DEBLUR_SETTING,  # the same script with blur_mode motion (:64)
        "sr": {"steps": Setting(100, "main_ddpir_sisr.py:38", "iter_num"),
               "zeta": Setting(0.25, "main_ddpir_sisr.py:485", "the one zeta of its experiment loop"),
               "skip_type": Setting("quad", "main_ddpir_sisr.py:57")},
        **{family: {"steps": Setting(20, "main_ddpir_inpainting.py:34", "iter_num (configs/inpaint.yaml:9)"),
                    "lambda_": Setting(1.0, "main_ddpir_inpainting.py:52, 385", "times 1 in the experiment loop"),
                    "zeta": Setting(1.0, "main_ddpir_inpainting.py:55, 388", "times 1 in the experiment loop"),
                    "skip_type": Setting("quad", "main_ddpir_inpainting.py:60")}
           for family in ("inpaint-box", "inpaint-random")}}))


def quad_times(num_timesteps: int, steps: int) -> list[int]:
    """The code's "quad" grid: t_i = T - 1 - floor(T sqrt(i / (steps - 1))), the last one 0; repeats kept."""
    if steps == 1:
        return [num_timesteps - 1]
    seq = torch.linspace(0, num_timesteps**2, steps, dtype=torch.float64).sqrt().floor().long().tolist()
    seq[-1] -= 1  # T - 1: the code's last time is t = 0
    return [num_timesteps - 1 - s for s in seq]


def data_step(op: Physics, y: Tensor, svd: OperatorSVD | None) -> Prox:
    """prox(x0, rho) = argmin_x ||y - A x||^2 + rho ||x - x0||^2 (image units), per image: in closed form
    with the SVD of A, else by conjugate gradients on the correction d = x - x0."""
    if svd is not None:
        s = svd.singular
        s_uty = s * svd.Ut(y)  # fixed for the whole run
        return lambda x0, rho: svd.V((s_uty + rho * svd.Vt(x0)) / (s * s + rho))

    def cg(x0: Tensor, rho: float) -> Tensor:
        normal = lambda d: op.A_adjoint(op.A(d)) + rho * d  # noqa: E731
        rhs = op.A_adjoint(y - op.A(x0))
        return x0 + conjugate_gradient(normal, rhs, tol=CG_TOL, max_iter=CG_MAX_ITER, strict=False)
    return cg


@register_solver
@dataclass
class DiffPIR(Solver):
    """HQS plug-and-play with the diffusion model as denoiser: a data prox on x0_hat, then a partly fresh noise step."""

    name = "diffpir"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(100, range=AT_LEAST_ONE)  # network evaluations (the code: 100; 20 for inpainting)
    lambda_: float = param(7.0, range=POSITIVE, tune=Tune(0.1, 100, log=True))  # rho_t = lambda sigma_n^2 / sigma_bar_t^2
    zeta: float = param(0.3, range=UNIT, tune=Tune(0, 1))  # share of fresh noise in each step (0: DDIM-like, 1: all fresh)
    skip_type: str = param("quad", choices=("quad", "uniform"))
    clip: bool = True  # clip the network's x0 to [-1, 1], as the code does

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "its closed-form data step solves with A^T A")

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        if self.skip_type == "uniform":  # the quad grid keeps repeated times, the uniform one has T at most
            num = model.num_timesteps
            check_count(f"solver {self.name}", "steps", self.steps, num, f"skip_type=uniform on T = {num} times")

    def times(self, num_timesteps: int) -> list[int]:
        if self.skip_type == "quad":
            return quad_times(num_timesteps, self.steps)
        return timestep_schedule(num_timesteps - 1, self.steps)

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        shape = (y.shape[0], *model.image_shape)
        prox = data_step(op, y, operator_svd(op, torch.zeros(shape, device=y.device)))
        sigma_n = max(noise_level(op), SIGMA_FLOOR)
        alpha_bars = model.alphas_cumprod.double().cpu().tolist()
        grid = self.times(model.num_timesteps)
        x = randn_per_image(shape, generators, y.device)  # x_T ~ N(0, I)
        for i, t in enumerate(grid):
            ab = alpha_bars[t]
            ab_prev = alpha_bars[grid[i + 1]] if i + 1 < len(grid) else 1.0  # the last step lands on x_0
            x0 = predict_x0(model, x, t, ab, self.clip)
            rho = self.lambda_ * sigma_n**2 * ab / (1 - ab)  # lambda sigma_n^2 / sigma_bar_t^2
            x0 = to_model(prox(to_image(x0), rho))
            self.report_step(t, x, x0)
            if ab_prev == 1.0:
                x = x0
                continue
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            x_prev = math.sqrt(ab_prev) * x0 + math.sqrt((1 - ab_prev) * (1 - self.zeta)) * eps
            if self.zeta > 0:
                x_prev = x_prev + math.sqrt((1 - ab_prev) * self.zeta) * randn_per_image(shape, generators, y.device)
            x = x_prev
        return to_image(x)
