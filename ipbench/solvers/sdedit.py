"""SDEdit (Meng et al. 2022, "SDEdit: guided image synthesis and editing with SDEs", Algorithm 1).

Perturb a guide image to time t0 with fresh noise, x_t0 = sqrt(ab) x_guide + sqrt(1 - ab) z, then run the
reverse process to 0. Default t0 = 500 of 1000, as in the seeds' reference table. `guide` is the image noised:
  measurement      y itself where it has the image's shape (denoising, inpainting with black holes, blur), and
                   y upsampled by bicubic interpolation for super-resolution (ipbench.operators.measurement_image);
                   what the seeds noise;
  back-projection  A^T y / A^T 1, unseen pixels set to the mean of the seen ones (ipbench.operators.back_project);
                   for blur it is y blurred once more.
Default `measurement`, the seeds' guide; on fashion32 (16 images) it is 1.2 dB better on deblur-gauss and 0.4 dB
worse on inpaint-box than the back-projection, neither outside its 95% interval
(configs/sweeps/sdedit-guide-fashion32.toml, results/sweeps/sdedit-guide-fashion32.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.operators.base import back_project, measurement_image, linear_problem
from ipbench.params import STEPS, TIME, UNIT, Tune, check_count, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import reverse_process


@register_solver
@dataclass
class SDEdit(Solver):
    """Noise a guide image (the measurement or its back-projection) to t0, then run the reverse process."""

    name = "sdedit"
    t0: int = param(500, range=TIME, tune=Tune(50, 950))  # perturbation time (the seeds' table: 500 of 1000)
    steps: int = param(50, range=STEPS)  # strided reverse steps from t0 to 0
    eta: float = param(1.0, range=UNIT)  # 1 = DDPM, 0 = DDIM
    clip: bool = True
    guide: str = param("measurement", choices=("measurement", "back-projection"), tune=Tune())

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        check_count(f"solver {self.name}", "steps", self.steps, self.t0 + 1, f"the times t0={self.t0}..0")

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "its guide is the back-projection A^T y / A^T 1 or y as an image, both through A^T")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        if not 0 <= self.t0 < model.num_timesteps:
            raise UsageError(f"solver sdedit.t0={self.t0}: must be in [0, {model.num_timesteps - 1}]")
        ab = float(model.alphas_cumprod[self.t0])
        guide = to_model(back_project(op, y) if self.guide == "back-projection" else measurement_image(op, y))
        z = randn_per_image(guide.shape, generators, guide.device, guide.dtype)
        x = ab ** 0.5 * guide + (1 - ab) ** 0.5 * z  # Algorithm 1, line 2
        return to_image(reverse_process(model, x, self.t0, self.steps, self.eta, generators, self.clip,
                                                on_step=self.report_step))
