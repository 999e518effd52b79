"""Score-ALD: posterior sampling by annealed Langevin dynamics (Jalal et al. 2021, NeurIPS, "Robust compressed
sensing MRI with deep generative priors", eq. 4 and Algorithm 1; official code utcsilab/csgm-mri-langevin).

NCSNv2's annealed Langevin dynamics (Song & Ermon 2020) with the likelihood added: for each noise level
sigma_1 > ... > sigma_L, K = `steps_each` steps of

    x <- x + alpha_i (s(x, sigma_i) + g_i(x)) + sqrt(2 alpha_i) z,   alpha_i = eps sigma_i^2 / sigma_L^2,

in the VE view of the model (ipbench.models.denoiser): x = x0 + sigma n in model units, prior score
s(x, sigma) = (D(x, sigma) - x) / sigma^2. The step is a fixed fraction r = alpha_i / sigma_i^2 = eps / sigma_L^2
of the way to the denoiser at every level (x <- x + r (D - x) + ... for the prior alone), so the prior part
is stable for r < 2; r >= 2 is refused.

Likelihood g_i. The operator acts on image units, to_image(x) = (x + 1) / 2, sigma_y is in image units.
  annealed    (default; the paper's eq. 4) g_i = grad_x log N(y; A to_image(x), (sigma_y^2 + gamma_i^2) I)
                = A^T (y - A to_image(x)) / (2 (sigma_y^2 + gamma_i^2)),
              gamma_i = sigma_i / 2: the noise std of to_image(x) at level i, so that y - A to_image(x) has
              variance sigma_y^2 + gamma_i^2 (exactly so for masks). The 1/2 is d to_image / dx. In model units
              (y' = 2 y - A 1, sigma_y' = 2 sigma_y) this is the paper's A^H (y' - A x) / (sigma_y'^2 + sigma_i^2).
              With the data term too the step contracts a direction that A sees and the prior pins down
              by alpha_i (1 / sigma_i^2 + 1 / (sigma_y'^2 + sigma_i^2)) <= 2 r: stable for r < 1 at any level.
  normalized  (the official code, main.py lines 141-151) g_i = -mse ||s|| A^T (A to_image(x) - y) / ||A^T (A to_image(x) - y)||
              per image: the data term has `mse` times the norm of the prior score, and no explicit gamma_i.

Levels. The code uses NCSNv2's geometric grid of 2311 levels from 232 to 0.0066 (configs/file/*.yaml:
sigma_begin, sigma_end, num_classes; ncsnv2/models/__init__.py get_sigmas), starting after level
start_iter = 1155 (main.py lines 119-121), i.e. 1155 levels from sigma = 1.232 to 0.0066, on data scaled to
about [-1, 1] as the model's. ipbench takes `steps` levels from `sigma_max` (default 1.232, the code's first
level) down to the smallest sigma of the model's grid (0.01 on the linear 1000-step schedule) and snaps each to
the grid (ipbench.models.denoiser.snap_sigmas; repeats kept, so the count is the step count):
  geometric  (the code's) sigma_max (sigma_L / sigma_max)^(i / (steps - 1)), i = 0..steps-1;
  strided    `steps` diffusion times evenly spaced from the time of sigma_max to 0 (the DDPM solvers' grid).

Defaults and their sources. K = 3: main.py lines 122-125 run 3 steps per level down to level 1800
(sigma = 0.067) and n_steps_each (3 for knees, 4 for brains) below. The code's step is step_lr = 5e-5 at
sigma_L = 0.0066 (configs/file/*.yaml), r = 5e-5 / 0.0066^2 = 1.15; mse = 5 (configs/file/*.yaml). The
defaults eps = 9e-5 (r = 0.9), 100 levels, the annealed likelihood, no clipping, the geometric schedule and
the final denoising step are the row of best PSNR (averaged over box inpainting and deblurring) of the sweep
configs/sweeps/score-ald-fashion32.toml (results/sweeps/score-ald-fashion32.md), which also holds the
code's own setting (r = 1.15 with the normalised likelihood: 23.7 dB against 27.1 dB, averaged).

Deviations from the official code:
  - far fewer levels by default (the code's 1155 levels x 3-4 steps are 3,465-3,975 network evaluations
    per image; here 100 x 3 + 1), snapped to the model's grid, whose smallest sigma is 0.01 rather than 0.0066;
  - the step r = 0.9 rather than the code's 1.15, which the annealed likelihood does not survive on the
    Gaussian prior (see above: r < 1 at the high levels), and which lost 0.5 dB on fashion32 box inpainting;
  - one K for every level (the code switches from 3 to n_steps_each at level 1800);
  - the start is uniform on the data range [-1, 1] (the code: torch.rand, uniform on [0, 1]);
  - `denoise` (on) ends with x <- D(x, sigma_L), as NCSNv2's sampler does by default (ncsnv2/models/__init__.py,
    anneal_Langevin_dynamics) but the code's main.py does not: +1.2 dB on box inpainting, +0.4 dB on deblurring;
  - `clip` (off; -0.4 dB) clamps D(x, sigma) to [-1, 1] inside the score; not in the code.
report_step is called once per level, with the VP x_t = sqrt(ab_t) x and x0_hat = D(x, sigma_i) of its first step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.models.denoiser import denoise, sigma_grid, snap_sigmas, time_of_sigma
from ipbench.operators.base import noise_level
from ipbench.params import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Tune, check_count, param
from ipbench.solvers.base import Solver, misfit_gradient, per_image_norm, rand_per_image, randn_per_image, register_solver
from ipbench.solvers.diffusion import check_sigma, timestep_schedule

CODE_SIGMA_START = 1.232  # the official code's first level: geometric 232 -> 0.0066 in 2311, index 1156


def langevin_levels(model: ScoreModel, sigma_max: float, steps: int, schedule: str) -> list[float]:
    """`steps` noise levels from sigma_max down to the model's smallest sigma, on the model's grid."""
    grid = sigma_grid(model)
    if schedule == "strided":
        return [grid[t] for t in timestep_schedule(time_of_sigma(model, sigma_max), steps)]
    if steps == 1:
        return snap_sigmas(model, [sigma_max])
    ratio = grid[0] / sigma_max
    return snap_sigmas(model, [sigma_max * ratio ** (i / (steps - 1)) for i in range(steps)])


@register_solver
@dataclass
class ScoreALD(Solver):
    """Annealed Langevin dynamics on the prior score plus the annealed likelihood score (VE view)."""

    name = "score-ald"
    steps: int = param(100, range=AT_LEAST_ONE)  # noise levels (the code: 1155)
    steps_each: int = param(3, range=AT_LEAST_ONE)  # K, Langevin steps per level (the code: 3)
    # alpha_L, the step at the last level (model units^2); alpha_i = eps sigma_i^2 / sigma_L^2.
    # r = eps / sigma_L^2 is what matters: the code's r is 1.15
    eps: float = param(9e-5, range=POSITIVE, tune=Tune(1e-6, 1.5e-4, log=True))
    sigma_max: float = param(CODE_SIGMA_START, range=POSITIVE)  # first level, model units
    schedule: str = param("geometric", choices=("geometric", "strided"))
    likelihood: str = param("annealed", choices=("annealed", "normalized"))
    mse: float = param(5.0, range=NON_NEGATIVE)  # likelihood=normalized: data term / prior term, in norm
    clip: bool = False  # clamp D(x, sigma) to [-1, 1] in the score
    denoise: bool = True  # end with x <- D(x, sigma_L) (one more network evaluation)

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        where = f"solver {self.name}"
        check_sigma(model, where, "sigma_max", self.sigma_max)
        if self.schedule == "strided":  # the strided grid has one level per time from sigma_max's down to 0
            t_max = time_of_sigma(model, self.sigma_max)
            check_count(where, "steps", self.steps, t_max + 1, f"schedule=strided from sigma_max's time {t_max} to 0")
        self.check_step(langevin_levels(model, self.sigma_max, self.steps, self.schedule)[-1])

    def check_step(self, sigma_last: float) -> None:
        """r = eps / sigma_L^2 below 2, where the prior's Langevin steps diverge."""
        if self.eps / sigma_last**2 >= 2:
            raise UsageError(f"solver score-ald.eps={self.eps:g}: the step at the last level is eps / sigma_L^2 = "
                             f"{self.eps / sigma_last**2:.3g} of sigma_L^2 (sigma_L = {sigma_last:.4g}); "
                             f"Langevin steps diverge from 2; use eps < {2 * sigma_last**2:.3g}")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        sigma_y = noise_level(op)
        levels = langevin_levels(model, self.sigma_max, self.steps, self.schedule)
        sigma_last = levels[-1]
        self.check_step(sigma_last)
        x = to_model(rand_per_image((y.shape[0], *model.image_shape), generators, y.device))
        for sigma in levels:
            alpha = self.eps * (sigma / sigma_last) ** 2
            for k in range(self.steps_each):
                x0 = denoise(model, x, sigma)  # the one network evaluation of the step
                if self.clip:
                    x0 = x0.clamp(-1.0, 1.0)
                if k == 0:
                    self.report_step(time_of_sigma(model, sigma), x / (1 + sigma**2) ** 0.5, x0)
                prior = (x0 - x) / sigma**2
                x = x + alpha * (prior + self.data_term(x, y, op, sigma_y, sigma, prior)) + \
                    math.sqrt(2 * alpha) * randn_per_image(x.shape, generators, x.device, x.dtype)
        if self.denoise:
            x = denoise(model, x, sigma_last)
        return to_image(x)

    def data_term(self, x: Tensor, y: Tensor, op: Physics, sigma_y: float, sigma: float, prior: Tensor) -> Tensor:
        """g_i of the module docstring, model units."""
        grad = misfit_gradient(op, y, x)  # A^T (A to_image(x) - y) / 2; A may be nonlinear
        if self.likelihood == "normalized":
            return -self.mse * per_image_norm(prior) * grad / per_image_norm(grad).clamp_min(1e-12)
        return -grad / (sigma_y**2 + sigma**2 / 4)
