"""RePaint: inpainting with an unconditional DDPM (Lugmayr et al. 2022, CVPR, Algorithm 1, Secs. 4.1-4.2).

Reverse DDPM on `steps` strided times; after each reverse step t -> t-1 the pixels the mask m keeps are
replaced by the measurement noised to t-1, the others come from the model:

    x_{t-1} = m * (sqrt(ab_{t-1}) y + sqrt(1 - ab_{t-1}) eps) + (1 - m) * x_{t-1}^unknown     (Sec. 4.1)

(model units; ab of the clean image is 1, so the last step writes y itself). Resampling (Sec. 4.2,
Algorithm 1's inner loop): on its way down the grid, at every `jump_length`-th index, the chain goes back
up `jump_length` indices through the forward process, x_{i+1} = sqrt(ab_{i+1} / ab_i) x_i + noise, and
comes down again, `jump_n_sample - 1` times, so that the model harmonises the generated pixels with the
known ones. `jump_schedule` is that order of grid indices (the official `get_schedule_jump` with
n_sample = 1 and no second or third jump level, as all the official configurations use).

Defaults and sources (official code: github andreas128/RePaint at 8e2a055):
- The paper and code use 250 strided steps of a 1000-step linear schedule (confs/test_c256_thick.yml:19,
  21, 33), jump_length 10 and jump_n_sample 10 (confs/test_c256_thick.yml:59-63, as in every test
  configuration; the paper's T = 250, j = 10, r = 10), clipped x0_hat (clip_denoised,
  confs/test_c256_thick.yml:50): 2410 network evaluations per image (250 + 24 * 9 * 10). The paper's
  setting is `--param repaint.steps=250 --param repaint.jump_n_sample=10`.
- ipbench's default is a cheap CPU setting without resampling: steps=100, jump_n_sample=1 (100 NFE).

Noisy measurements (the paper assumes y noiseless): with `noisy_y=match` (default) the noise y already
carries, std 2 sigma_y in model units, is counted in the injected noise, sqrt(ab) y + sqrt(1 - ab -
ab (2 sigma_y)^2) eps, and once ab (2 sigma_y)^2 exceeds 1 - ab (below the time whose noise matches
sigma_y, as in `time_for_sigma`) nothing is injected, so the last steps denoise the known pixels too
(sqrt(ab) y is then already a sample of x_t there). `noisy_y=ignore` injects y as if it were clean (the
paper literally; the output then equals the noisy y on known pixels). Both are the paper's rule when
sigma_y = 0.

Deviations from the official code:
- The code injects the noised measurement at time t before the reverse step from t
  (guided_diffusion/gaussian_diffusion.py:350-383, inpa_inj_sched_prev) and so returns the model's last
  step on the known pixels; ipbench injects after each step (the paper's Algorithm 1), so a noiseless y
  is returned exactly on the known pixels.
- The code's model learns its reverse variance (learn_sigma, confs/test_c256_thick.yml:20); ipbench's
  models predict eps only, so the step uses the posterior variance beta_tilde (eta = 1).
- The forward jump draws one noise per index, like the code's `undo` (gaussian_diffusion.py:173-179), on
  the strided grid's betas 1 - ab_{i+1} / ab_i.
- x_T ~ N(0, I) without a first injection (the code injects at t_T before its first step; ab_{T-1} ~ 4e-5).

Preset `paper`: 250 steps, jump_length 10, jump_n_sample 10 (every test config, e.g. confs/test_c256_thick.yml)
for box and random masks; RePaint applies to masks only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Inpainting, Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.operators.base import noise_level, visible_mask
from ipbench.params import AT_LEAST_ONE, STEPS, UNIT, Tune, check_count, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, timestep_schedule
from ipbench.solvers.presets import PAPER, Preset, Setting, families


def jump_schedule(steps: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """Grid indices visited, from steps - 1 (pure noise) to -1 (the clean image), each move +-1: down one
    index per reverse step; at j = 0, L, 2L, ... < steps - L (L = jump_length), each time the chain comes
    down to j, back up L indices, until j has been passed on the way down jump_n_sample times."""
    left = {j: jump_n_sample - 1 for j in range(0, steps - jump_length, jump_length)}
    t, order = steps - 1, [steps - 1]
    while t >= 0:
        if left.get(t, 0) > 0:
            left[t] -= 1
            order.extend(range(t + 1, t + jump_length + 1))
            t += jump_length
        else:
            t -= 1
            order.append(t)
    return order


def reverse_steps(schedule: list[int]) -> int:
    """Network evaluations of a schedule: its downward moves."""
    return sum(b < a for a, b in zip(schedule[:-1], schedule[1:]))


_REPAINT_SETTING = {
    "steps": Setting(250, "confs/test_c256_thick.yml:33", "timestep_respacing '250' (t_T 250, :60)"),
    "jump_length": Setting(10, "confs/test_c256_thick.yml:62"),
    "jump_n_sample": Setting(10, "confs/test_c256_thick.yml:63", "the same in every confs/test_*.yml"),
    "clip": Setting(True, "confs/test_c256_thick.yml:50", "clip_denoised")}
PAPER_PRESET = Preset(
    repository="github.com/andreas128/RePaint at 8e2a055",
    note="one schedule for every mask of the paper (thick, thin, ex64, genhalf, ev2li, nn2)",
    operators=families(_REPAINT_SETTING, {family: {} for family in ("inpaint-box", "inpaint-random")}))


@register_solver
@dataclass
class RePaint(Solver):
    """Reverse DDPM with the known pixels replaced by the noised measurement, optional resampling."""

    name = "repaint"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1 (the paper: 250)
    jump_length: int = param(10, range=AT_LEAST_ONE)  # the paper: 10
    jump_n_sample: int = param(1, range=AT_LEAST_ONE)  # passes over each jump point; 1 = no resampling (paper: 10)
    eta: float = param(1.0, range=UNIT)  # 1 = DDPM's ancestral step, as in the paper
    clip: bool = True  # clip x0_hat to [-1, 1] (clip_denoised in the official configurations)
    noisy_y: str = param("match", choices=("match", "ignore"), tune=Tune())  # see the module docstring

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        if not isinstance(op, Inpainting):
            return f"needs a mask (deepinv Inpainting), got {type(op).__name__}"
        return None

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        if self.jump_n_sample > 1:  # jump points are j = 0, L, 2L, ... < steps - L: none would mean no resampling
            check_count(f"solver {self.name}", "jump_length", self.jump_length, self.steps - 1,
                        f"resampling (jump_n_sample={self.jump_n_sample}) jumps back within steps={self.steps}")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        times = timestep_schedule(model.num_timesteps - 1, self.steps)[::-1]  # grid index i -> diffusion time
        alpha_bars = model.alphas_cumprod.double().cpu().tolist()
        ab = [alpha_bars[t] for t in times] + [1.0]  # ab[-1]: index -1 is the clean image
        mask = visible_mask(op, y)
        y_model = to_model(y)
        y_var = (2 * noise_level(op)) ** 2 if self.noisy_y == "match" else 0.0  # model units

        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        schedule = jump_schedule(len(times), self.jump_length, self.jump_n_sample)
        for i, j in zip(schedule[:-1], schedule[1:]):
            noise = randn_per_image(x.shape, generators, x.device, x.dtype)
            if j > i:  # resampling: one forward step, x_j ~ N(sqrt(ab_j / ab_i) x_i, (1 - ab_j / ab_i) I)
                x = (ab[j] / ab[i]) ** 0.5 * x + (1 - ab[j] / ab[i]) ** 0.5 * noise
                continue
            x0 = predict_x0(model, x, times[i], ab[i], self.clip)
            self.report_step(times[i], x, x0)
            x = ddim_step(x, x0, ab[i], ab[j], self.eta, generators)
            extra = 1 - ab[j] - ab[j] * y_var  # variance to add to sqrt(ab) y for a sample of x_{t-1}
            if extra >= 0:
                known = ab[j] ** 0.5 * y_model + extra**0.5 * noise
                x = mask * known + (1 - mask) * x
        return to_image(x)
