"""Diffusion Posterior Sampling (Chung et al. 2023, ICLR, Algorithm 1).

Each step: one network evaluation gives x0_hat(x_t) (line 4); the ancestral step gives x'_{t-1}
(lines 5-7); then the measurement gradient (line 8)

    x_{t-1} = x'_{t-1} - zeta_t grad_{x_t} ||y - A(x0_hat(x_t))||^2,

with A applied to x0_hat in image units. `normalize` picks zeta_t, per image:
  grad      zeta / ||grad_{x_t} ||y - A(x0_hat)||^2||   (a step of norm zeta in x_t units)
  residual  zeta / ||y - A(x0_hat)||                    (the official code: scale * grad ||y - A x0_hat||,
            on [-1, 1] data, which is this with zeta = scale; see docs/solvers.md)
The x0_hat of the step and of the gradient come from the same forward pass (forward with grad, one backward).
Defaults: zeta = 1.0 with `grad`, the best of {0.1, 0.3, 1, 3} on fashion32 for box inpainting and blur
(configs/sweeps/dps-zeta-fashion32.toml, results/sweeps/dps-zeta-fashion32.md); 100 steps to keep CPU runs
short (the paper uses 1000); clipping as the DPS code does.

Poisson noise (operator `noise=poisson`). The paper (sec. 3.2, its Poisson case, and Algorithm 2, "DPS -
Poisson") approximates the Poisson likelihood by a Gaussian of variance y_j and steps by
grad ||y - A(x0_hat)||^2_Lambda with Lambda = diag(1 / (2 y_j)): a weight per measured value. The official code
does not: its Poisson branch (guided_diffusion/condition_methods.py:34-39) divides the residual norm
||y' - A(x0_hat)|| by |y'_j| elementwise and averages, which is the Gaussian branch's norm (:29-32) times one
number per image, c = mean_j 1 / |y'_j|, y' = 2 y - 1 the measurement on its [-1, 1] scale (its Poisson noise
maps the counts there, guided_diffusion/measurements.py:265). ipbench does what the code does: under
noise=poisson the step is c times the Gaussian one. Under normalize=grad (the default) the step is divided by
the gradient's norm, so c cancels and Poisson noise changes nothing; under normalize=residual (the code's rule,
preset `paper`) the step is c times as long. Deviation: |y'_j| is floored at 1 / rate, half the spacing 2 / rate
of the count levels, since a level at y = 1/2 would divide by zero (the code's levels k / 255 at rate 1 never
are). Poisson-Gaussian noise: neither the code (NotImplementedError, :41-42) nor the paper has a rule for it; DPS
steps as for Gaussian noise. Rows under either record the rule as `ran.likelihood`.

Preset `paper` (the official code's task configs, github.com/DPS2022/diffusion-posterior-sampling at effbde7):
the residual rule with zeta = the config's `scale` per task (0.3 for SR and both blurs, 0.5 for inpainting),
1000 DDPM steps, clipped x0_hat; nothing for denoising (no config). Its zeta values assume
normalize=residual: under the default `grad` rule they would mean another step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image
from ipbench.operators.noise import GAUSSIAN, POISSON, noise_kind, poisson_rate
from ipbench.params import NON_NEGATIVE, STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, per_image_norm, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, reverse_grid
from ipbench.solvers.presets import PAPER, Preset, Setting, families

CODE_POISSON = "poisson, the code's: the Gaussian step times the mean of 1 / abs(2 y - 1) per image"
_RESIDUAL = {"normalize": "residual"}  # the code's scale is a step of the residual rule (docs/solvers.md)


def poisson_factor(op: Physics, y: Tensor) -> Tensor | None:
    """The DPS code's Poisson factor c = mean_j 1 / |y'_j| per image, y' = 2 y - 1, |y'_j| floored at 1 / rate
    (module docstring), shaped (N, 1, 1, 1); None unless the operator's noise is pure Poisson."""
    if noise_kind(op.noise_model) != POISSON:
        return None
    floor = 1.0 / float(poisson_rate(op.noise_model))
    return (2 * y - 1).abs().clamp_min(floor).reciprocal().flatten(1).mean(1).view(-1, 1, 1, 1)


def _scale(value: float, config: str, note: str = "") -> Setting:
    """zeta = the task config's conditioning scale (line 4 of each configs/*_config.yaml)."""
    why = "the code's `scale` on [-1, 1] data equals ipbench's zeta under normalize=residual (docs/solvers.md)"
    return Setting(value, f"configs/{config}:4", f"{why}{'; ' + note if note else ''}", assumes=_RESIDUAL)


PAPER_PRESET = Preset(
    repository="github.com/DPS2022/diffusion-posterior-sampling at effbde7",
    note="no denoising, HDR, JPEG, CT or MRI config: those keep the defaults",
    operators=families(
        {"steps": Setting(1000, "configs/diffusion_config.yaml:2", "timestep_respacing 1000 (:9): every time"),
         "normalize": Setting("residual", "guided_diffusion/condition_methods.py:30-32, 86",
                              "method ps (configs/*_config.yaml:2) steps by scale * grad ||y - A x0_hat||"),
         "eta": Setting(1.0, "configs/diffusion_config.yaml:1", "sampler ddpm: the ancestral step (the code's "
                        "variance is learned, model_var_type :5; ipbench's models predict eps only)"),
         "clip": Setting(True, "configs/diffusion_config.yaml:7", "clip_denoised")},
        {"sr": {"zeta": _scale(0.3, "super_resolution_config.yaml")},
         "deblur-gauss": {"zeta": _scale(0.3, "gaussian_deblur_config.yaml")},
         "deblur-motion": {"zeta": _scale(0.3, "motion_deblur_config.yaml")},
         "inpaint-random": {"zeta": _scale(0.5, "inpainting_config.yaml", "mask_type random (:14)")},
         "inpaint-box": {"zeta": _scale(0.5, "inpainting_config.yaml", "the one inpainting config; its box mask "
                                        "(mask_len_range, :15) is the commented-out alternative to random")},
         "phase-retrieval": {"zeta": _scale(1.0, "phase_retrieval_config.yaml", "oversample 2.0 (:13), "
                                            "phase-retrieval's convention=dps (the default)")},
         "deblur-nonlinear": {"zeta": _scale(0.3, "nonlinear_deblur_config.yaml", "the bkse blur, its output "
                                             "mapped back to [-1, 1] (guided_diffusion/measurements.py:197-199)")}}))


@register_solver
@dataclass
class DPS(Solver):
    """Diffusion posterior sampling with a normalised step zeta_t."""

    name = "dps"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1 (the paper: 1000)
    zeta: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.01, 10, log=True))
    normalize: str = param("grad", choices=("grad", "residual"))
    eta: float = param(1.0, range=UNIT)  # 1 = DDPM ancestral step as in the paper, 0 = DDIM
    clip: bool = True  # clip x0_hat to [-1, 1], as the DPS code does

    def as_run(self, op: Physics, model: ScoreModel) -> dict[str, Any]:
        """Under non-Gaussian noise, the rule DPS steps by (module docstring); nothing under Gaussian noise."""
        kind = noise_kind(op.noise_model)
        return {} if kind == GAUSSIAN else {"likelihood": CODE_POISSON if kind == POISSON else GAUSSIAN}

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        poisson = poisson_factor(op, y)  # None under Gaussian or Poisson-Gaussian noise
        x = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)  # line 1: x_T ~ N(0, I)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                x0 = predict_x0(model, x, t, ab, self.clip)  # line 4: the one network evaluation
                residual = op.A(self.image_of(x0, model)) - y
                loss = residual.flatten(1).square().sum(1)  # ||y - A(x0_hat)||^2 per image
                (grad,) = torch.autograd.grad(loss.sum(), x)  # images are independent: per-image grads
            self.report_step(t, x, x0)
            x_prev = ddim_step(x.detach(), x0.detach(), ab, ab_prev, self.eta, generators)  # lines 5-7
            size = per_image_norm(grad if self.normalize == "grad" else residual.detach())
            step = self.zeta / size.clamp_min(1e-12)
            if poisson is not None and self.normalize == "residual":  # under `grad` the factor cancels
                step = step * poisson
            x = x_prev - step * grad  # line 8
        with torch.no_grad():
            return self.image_of(x.detach(), model)

    def image_of(self, x0: Tensor, model: ScoreModel) -> Tensor:
        """The image (in [0, 1] units) that x0 in the model's units stands for, differentiably: the state itself
        for a pixel prior (latent-dps decodes a latent instead)."""
        return to_image(x0)
