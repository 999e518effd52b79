"""OT-ODE: the conditional-OT flow ODE with PiGDM's correction (Pokle, Muckley, Chen, Karrer 2024, TMLR,
"Training-free linear image inverses via flows", Algorithm 1), as the PnP-Flow authors' code implements it
(github.com/annegnx/PnP-Flow at ee5b159, pnpflow/methods/ot_ode.py; the OT-ODE authors released no code).

In the paper's time (x_t = t x1 + (1 - t) eps, t = 1 data) the prior's velocity v_t is corrected by PiGDM's
likelihood score (Song et al. 2023) converted to the OT path, and integrated by Euler steps of dt = 1 / N from t':

    x1_hat = x_t + (1 - t) v_t                                   Tweedie on the OT path (ot_ode.py:74)
    r_t^2 = (1 - t)^2 / ((1 - t)^2 + t^2)                        the posterior variance of x1 | x_t (:72-73)
    g = (d x1_hat / d x_t)^T A^T (r_t^2 A A^T + sigma^2 I)^-1 (y - A x1_hat)   (:77-141)
    x_{t + dt} = x_t + dt (v_t + (1 - t) / t gamma_t g)          the score's share of v on this path (:143-145)

gamma_t = 1 (`constant`) or sqrt(t / (t^2 + (1 - t)^2)) (`gamma_t`) (:133-136); the start is x_t' = t' A^+ y +
(1 - t') eps (:27-28, 51-52). ipbench's flow time is s = 1 - t (the same states; v = eps - x0 is minus the paper's),
so with x0_hat = x_s - s v(x_s, s), r^2 = s^2 / (s^2 + (1 - s)^2) and an Euler step from s to s' < s:

    x_s' = x_s + (s' - s) v + (s - s') s / (1 - s) gamma g,     gamma_t = sqrt((1 - s) / ((1 - s)^2 + s^2)),

from x_{s_start} = (1 - s_start) A^+ y + s_start eps. `steps` Euler steps run from s_start to 0 (the code's grid
at steps = N (1 - t'): 80 steps of 0.01 from s = 0.8), on every prior on the flow times of the model's VP grid from
the diffusion time nearest s_start (solvers/flow_steps.py; t = 527, s = 0.8001 for 0.8 on the linear schedule), as
flowdps and d-flow take theirs: a DDPM is evaluated where the flow view converts exactly.
NFE = steps, each a forward and a backward pass (the vector-Jacobian product through the network).

Units and the inverse, as in solvers/pigdm.py: model units, the residual 2 (y - A to_image(x0_hat)), sigma =
2 noise_level(op); A^T (r^2 A A^T + sigma^2 I)^-1 r = A^T (A A^T + sigma^2 / r^2 I)^-1 r / r^2 through A's SVD where
it has one, else conjugate gradients (`RegularizedInverse`), and A^+ as PiGDM's start takes it. Linear A only.

Defaults (config/method_config/ot_ode.yaml:2-4): steps_ode 100 with start_time 0.2, i.e. s_start = 0.8 and 80
steps; gamma constant. Deviations: the VP grid instead of uniform steps (not measured on a flow prior: none is
bundled); A^+ y at the start where the code takes H^T y (ot_ode.py:51-52), the same on
its masks, denoising and decimation (A A^T = I) but not on its FFT blur; the general inverse on every operator where
the code has a closed form per task (:81-128; its SR branch computes r_t^2 with t^2 misparenthesised, :96).

Preset `paper`: scripts/script_test.sh, the CelebA commands (as solvers/pnp_flow.py's preset): start_time 0.3 and
gamma_t for denoising, 0.4 and gamma_t for Gaussian deblurring, 0.1 and constant for SR, 0.1 and gamma_t for box
inpainting, 0.1 and constant for random inpainting, each with the steps it runs at steps_ode 100 (N (1 - t')).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image
from ipbench.models.flow import velocity
from ipbench.models.parametrization import vp_state_of_flow
from ipbench.operators.base import linear_problem, noise_level
from ipbench.params import STEPS, Range, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.flow_steps import check_steps, solver_times, vp_times
from ipbench.solvers.pigdm import RegularizedInverse, measurement_in_model_units
from ipbench.solvers.presets import PAPER, Preset, Setting

_SCRIPT = "scripts/script_test.sh"


def _task(line: int, start_time: float, gamma: str, problem: str) -> dict[str, Setting]:
    """One task's command: start_time t' as s_start = 1 - t', its steps N (1 - t') at steps_ode 100, gamma."""
    source, s_start = f"{_SCRIPT}:{line}", round(1 - start_time, 10)
    return {"s_start": Setting(s_start, source, f"start_time {start_time} ({problem}), s = 1 - t"),
            "steps": Setting(round(100 * s_start), source, f"steps_ode 100 (ot_ode.yaml:2) from t' = {start_time}"),
            "gamma": Setting(gamma, source, f"gamma {gamma}")}


PAPER_PRESET = Preset(
    repository="github.com/annegnx/PnP-Flow at ee5b159",
    note="the CelebA commands of scripts/script_test.sh; their tasks differ from ipbench's operator defaults "
         "(solvers/pnp_flow.py)",
    operators={"denoise": _task(27, 0.3, "gamma_t", "denoising"),
               "deblur-gauss": _task(29, 0.4, "gamma_t", "gaussian_deblurring_FFT"),
               "sr": _task(31, 0.1, "constant", "superresolution"),
               "inpaint-box": _task(33, 0.1, "gamma_t", "inpainting"),
               "inpaint-random": _task(37, 0.1, "constant", "random_inpainting")})


@register_solver
@dataclass
class OTODE(Solver):
    """The flow ODE from s_start with PiGDM's correction on the conditional OT path (OT-ODE, Alg. 1)."""

    name = "ot-ode"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(80, range=STEPS)  # Euler steps from s_start to 0 (steps_ode 100 from t' = 0.2)
    s_start: float = param(0.8, range=Range(0, 1, low_open=True, high_open=True),
                           tune=Tune(0.6, 0.9))  # 1 - start_time (ot_ode.yaml:3); the code's search: t' 0.1..0.4
    gamma: str = param("constant", choices=("constant", "gamma_t"), tune=Tune())  # ot_ode.yaml:4

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        check_steps(self.name, model, self.s_start, self.steps)

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "A^+ and A^T (r_t^2 A A^T + sigma^2 I)^-1 in its start and correction")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        like = torch.zeros((y.shape[0], *model.image_shape), device=y.device)
        inverse = RegularizedInverse(op, like)
        sigma2 = (2 * noise_level(op)) ** 2  # model units
        times = solver_times(model, self.s_start, self.steps)
        s0, noise = times[0], randn_per_image(like.shape, generators, y.device)
        pinv_y = inverse(measurement_in_model_units(op, y, like), 0.0)
        x = (1 - s0) * pinv_y + s0 * noise  # x_t' = t' A^+ y + (1 - t') eps
        for s, s_next, t in zip(times[:-1], times[1:], vp_times(model, times)):
            r2 = s**2 / (s**2 + (1 - s) ** 2)
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                v = velocity(model, x, s)
                x0 = x - s * v  # x1_hat = x_t + (1 - t) v_t
                with torch.no_grad():
                    # A^T (r^2 A A^T + sigma^2 I)^-1 (y - A x1_hat), model units
                    u = inverse(2 * (y - op.A(to_image(x0))), sigma2 / r2) / r2
                (g,) = torch.autograd.grad(x0, x, grad_outputs=u)  # (d x1_hat / d x_t)^T u; images independent
            self.report_step(t, vp_state_of_flow(x.detach(), s), x0.detach())
            gamma = 1.0 if self.gamma == "constant" else ((1 - s) / ((1 - s) ** 2 + s**2)) ** 0.5
            x = x.detach() + (s_next - s) * v.detach() + (s - s_next) * s / (1 - s) * gamma * g  # Euler step
        return to_image(x)
