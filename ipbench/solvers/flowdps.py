"""Flow-Driven Posterior Sampling (Kim, Kim & Ye 2025, ICCV, "FlowDPS: Flow-Driven Posterior Sampling for
Inverse Problems", Sec. 4 and its Algorithm; official code github FlowDPS-Inverse/FlowDPS at 8361843,
sd3_sampler.py:246-334, the `flowdps` solver on Stable Diffusion 3).

Time convention. ipbench's flow time s runs from s = 0 (the clean image) to s = 1 (pure noise):
x_s = (1 - s) x0 + s eps, v = eps - x0 (models/flow.py). The paper writes t = 1 for data and t = 0 for noise,
so t_paper = 1 - s. The official code uses the scheduler's sigma, which is ipbench's s exactly (x = (1 - sigma)
x0 + sigma eps, sd3_sampler.py:319-320), so the code's lines carry over symbol for symbol.

One step from s to s' < s (the code's lines 308-329), in model units, on any prior's flow view:

1. v = v(x_s, s) (one network evaluation), split by the flow's Tweedie formula into the clean estimate
   x0_hat = x_s - s v and the noise estimate eps_hat = x_s + (1 - s) v (lines 319-320);
2. data consistency on the clean estimate alone, no network backward: `dc_steps` gradient steps
   x0 <- x0 - step_size grad_x0 ||r(x0)|| from x0_hat (the code's `data_consistency`, lines 248-260; the
   norm, not its square, so each step moves x0 by at most step_size ||A|| in model units), with r one of
      measurement   2 (A(to_image x0) - y), the residual on the [-1, 1] scale; any differentiable A
      adjoint       2 A^T (A(to_image x0) - y), the code's ||A^T y - A^T A x|| (line 256); linear A only
      pinv          2 A^+ (A(to_image x0) - y), the code's rule for super-resolution (line 254); linear A only
   then the mix x0_y = (1 - s) x0_hat + s x0 (line 325): early (s near 1) mostly the data-consistent
   estimate, late mostly the prior's;
3. stochastic noise in the noise component: eps_tilde = sqrt(s') eps_hat + sqrt(1 - s') z, z ~ N(0, I)
   (line 328), unit variance for any s';
4. x_s' = (1 - s') x0_y + s' eps_tilde (line 329: z0y + (sigma - delta)(noise - z0y) with sigma - delta =
   s'); the last step (s' = 0) returns x0_y.

Without data consistency and noise (dc_steps = 0, s' -> the deterministic eps_hat) step 4 is the Euler step of the
flow ODE (solvers/flow_steps.py), i.e. DDIM's deterministic step.

Defaults:
- dc_steps = 3: the code's num_iters (sd3_sampler.py:250).
- The time grid is the flow times of the model's VP grid (`flow_steps.flow_times`, `steps` strided times from
  T - 1, then s = 0): a DDPM is evaluated only at noise levels it was trained on, with no snapping. The code uses
  SD3's scheduler with shift 4 (sd3_sampler.py:298-301) and NFE = 28 (solve.py:116), a schedule of a latent
  model at 768 px; it is not taken (a deviation, not measured).
- steps = 50, a CPU budget (one network evaluation per step, no backward through the network).
- step_size = 10 (model units), the best of {1, 3, 10, 30} on fashion32-val (8 images, box inpainting and
  Gaussian deblurring, docs/solvers.md); the code's step_size 15 (solve.py:135) is a step on SD3's latent through
  its decoder and does not carry over to pixels. A step is a distance, so its useful size grows with the image
  (the residual's norm does).
- residual = measurement, the one rule that applies to nonlinear A (phase retrieval, HDR, JPEG: A through
  autograd). On a mask it steps in the direction `adjoint` does (A^T A A^T = A^T) and differs only in the norm that
  divides the step, which also counts y's noise in the hidden pixels.

Preset `paper`: the code's residual rule per task (pinv for SR, adjoint for deblurring, where the code's tasks are
sr_avgpool, sr_bicubic, deblur_gauss and deblur_motion, README.md:100; adjoint too for its inpainting and denoising
degradations, functions/degradation.py:45, 61, which the README does not list), dc_steps 3 and NFE 28 as the
step count. step_size is not set by it (latent units, above).

Deviations from the code: pixel space (no VAE decoder in the data-consistency gradient); the VP grid instead of
SD3's shifted schedule; no classifier-free guidance or text prompt (an unconditional prior); the residual's norm
taken per image (the code's batch is one image), so a result does not depend on its batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image
from ipbench.models.flow import velocity
from ipbench.models.parametrization import eps_of_velocity, flow_state_of_vp, vp_state_of_flow, x0_of_velocity
from ipbench.operators.base import linear_problem
from ipbench.params import NON_NEGATIVE, STEPS, Tune, param
from ipbench.solvers.base import Solver, per_image_norm, randn_per_image, register_solver
from ipbench.solvers.diffusion import timestep_schedule
from ipbench.solvers.flow_steps import flow_times
from ipbench.solvers.presets import PAPER, Preset, Setting, families

RESIDUALS = ("measurement", "adjoint", "pinv")


def residual(rule: str, op: Physics, y: Tensor, x0: Tensor) -> Tensor:
    """r(x0) of the data-consistency loss ||r|| on the [-1, 1] scale (module docstring, step 2)."""
    misfit = 2 * (op.A(to_image(x0)) - y)
    if rule == "measurement":
        return misfit
    return op.A_adjoint(misfit) if rule == "adjoint" else op.A_dagger(misfit)


def data_consistency(rule: str, op: Physics, y: Tensor, x0_hat: Tensor, step_size: float, steps: int) -> Tensor:
    """`steps` steps x0 <- x0 - step_size grad ||r(x0)|| from x0_hat, per image (sd3_sampler.py:248-260).

    grad ||r|| = J^T r / ||r||, from autograd of ||r||^2 / 2 and the norm, so a zero residual gives a zero step
    (the norm's own gradient is undefined there). Images are independent: each gradient is its image's own."""
    x0 = x0_hat.detach()
    for _ in range(steps):
        with torch.enable_grad():
            x_var = x0.requires_grad_(True)
            r = residual(rule, op, y, x_var)
            (grad,) = torch.autograd.grad(r.square().sum() / 2, x_var)
        x0 = (x0.detach() - step_size * grad / per_image_norm(r.detach()).clamp_min(1e-12)).detach()
    return x0


def _rule(value: str, source: str, note: str) -> Setting:
    return Setting(value, source, note)


PAPER_PRESET = Preset(
    repository="github.com/FlowDPS-Inverse/FlowDPS at 8361843",
    note="the code's tasks are SR and deblurring on Stable Diffusion 3 (README.md:100); step_size is a step in "
         "its latent space and is not set; no nonlinear task",
    operators=families(
        {"steps": Setting(28, "solve.py:116", "NFE 28, on the model's VP grid here (not SD3's shift-4 schedule)"),
         "dc_steps": Setting(3, "sd3_sampler.py:250", "num_iters of data_consistency")},
        {"sr": {"residual": _rule("pinv", "sd3_sampler.py:253-254", "tasks sr_avgpool and sr_bicubic: "
                                  "||A^+ y - A^+ A x||")},
         "deblur-gauss": {"residual": _rule("adjoint", "sd3_sampler.py:255-256", "task deblur_gauss: "
                                            "||A^T y - A^T A x||")},
         "deblur-motion": {"residual": _rule("adjoint", "sd3_sampler.py:255-256", "task deblur_motion: "
                                             "||A^T y - A^T A x||")},
         **{family: {"residual": _rule("adjoint", "sd3_sampler.py:255-256", f"the code's `{task}` degradation "
                                       f"(functions/degradation.py:{line}), not among the README's tasks: every "
                                       "task but SR steps by ||A^T y - A^T A x||")}
            for family, task, line in (("inpaint-box", "inpainting", 45), ("inpaint-random", "inpainting", 45),
                                       ("denoise", "denoising", 61))}}))


@register_solver
@dataclass
class FlowDPS(Solver):
    """Flow ODE steps with a likelihood-corrected clean estimate and stochastic noise mixing."""

    name = "flowdps"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(50, range=STEPS)  # flow times of the VP grid from T-1, one NFE each (the code: 28)
    step_size: float = param(10.0, range=NON_NEGATIVE, tune=Tune(0.3, 100, log=True))  # model units per DC step
    dc_steps: int = param(3, range=NON_NEGATIVE)  # data-consistency steps per flow step (sd3_sampler.py:250)
    residual: str = param("measurement", choices=RESIDUALS)  # the loss of data_consistency

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        if self.residual == "measurement":
            return None
        return linear_problem(op, "A^T" if self.residual == "adjoint" else "A^+")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        t_start = model.num_timesteps - 1
        times = flow_times(model, t_start, self.steps)
        vp_times = timestep_schedule(t_start, self.steps)
        ab_start = float(model.alphas_cumprod[vp_times[0]])
        # x_T ~ N(0, I) of the VP view, as the flow state of the same noise level (DDIM's start, in flow units)
        x = flow_state_of_vp(randn_per_image((y.shape[0], *model.image_shape), generators, y.device), ab_start)
        for t, s, s_next in zip(vp_times, times[:-1], times[1:]):
            with torch.no_grad():
                v = velocity(model, x, s)
            x0_hat, eps_hat = x0_of_velocity(x, v, s), eps_of_velocity(x, v, s)
            self.report_step(t, vp_state_of_flow(x, s), x0_hat)
            x0 = data_consistency(self.residual, op, y, x0_hat, self.step_size, self.dc_steps)
            x0_y = (1 - s) * x0_hat + s * x0
            if s_next == 0.0:
                return to_image(x0_y)
            noise = randn_per_image(x.shape, generators, x.device)
            eps_tilde = math.sqrt(s_next) * eps_hat + math.sqrt(1 - s_next) * noise
            x = (1 - s_next) * x0_y + s_next * eps_tilde
        raise AssertionError("flow_times ends at s = 0")  # unreachable: the grid's last time is the clean image

