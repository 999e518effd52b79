"""PnP-Flow: plug-and-play image restoration with flow matching (Martin, Gagneux, Heitz, Kyriakidis 2025, ICLR,
Algorithm 1; official code github.com/annegnx/PnP-Flow at ee5b159, pnpflow/methods/pnp_flow.py).

A forward-backward splitting whose denoiser is the flow model's, at the time of an interpolation toward noise.
In the paper's time (t = 0 noise, t = 1 data, t_n = n / N) each of the N iterations is

    z_n = x_n - gamma_n grad F(x_n)                    gradient step on the fidelity (pnp_flow.py:111-112)
    z~_n = t_n z_n + (1 - t_n) eps,  eps ~ N(0, I)      interpolation toward noise along the path (:47-48)
    x_{n+1} = D_{t_n}(z~_n) = z~_n + (1 - t_n) v(z~_n, t_n)   the flow denoiser, E[x1 | x_t] (:50-52)

with gamma_n = lr (1 - t_n)^alpha (:29-37), and D averaged over `samples` draws of eps (num_samples, :114-120).
ipbench's flow time is s = 1 - t and its velocity v = eps - x0 is minus the paper's, so the same step reads

    z = x - lr s^alpha grad F(x),   z~ = (1 - s) z + s eps,   x = z~ - s v(z~, s) = x0_hat(z~, s)

at N times s_n: the paper's are s_n = 1 - n / N; ipbench's, on every prior, the flow times of the model's strided VP
grid from T - 1 (solvers/flow_steps.py; 0.9937 down to 0.0099 on the linear 1000-step schedule, against the code's 1
down to 0.01), as flowdps and d-flow take theirs: a DDPM is evaluated at noise levels it was trained on, where the
flow view converts exactly, and every family on the same levels. NFE = steps x samples, forward only.

Units. x, z and D are in model units [-1, 1], as the code's data are (pnpflow/dataloaders.py:30, Normalize 0.5).
The code's fidelity is ||H x - y||^2 / (2 sigma^2) with step sigma^2 lr_pnp (pnp_flow.py:41, 61): sigma cancels, and
the step is lr (1 - t)^alpha H^T (H x - y) in model units. With ipbench's y in image units the model-units residual
is 2 (A(to_image(x)) - y), so that gradient is 4 x `misfit_gradient` (grad of ||A(to_image(x)) - y||^2 / 2); by
autograd through A, so PnP-Flow runs on nonlinear operators too (the paper's F is any differentiable fidelity).

Defaults (config/method_config/pnp_flow.yaml:2-6): 100 steps, lr 1, alpha 1 (gamma_style alpha_1_minus_t), and one
denoiser draw per step where the code averages 5 (num_samples, :5): 100 network calls per image, a CPU budget like
the other solvers', where the code's 5 draws cost 500; on the Gaussian prior the 5 draws lower R (MSE / MMSE) from
18.9 / 2.65 / 2.25 to 11.8 / 1.78 / 1.59 (denoise / inpaint-box / inpaint-random, docs/solvers.md), so `samples=5`
(or the preset) is the paper's setting. Deviations: the VP grid above instead of the uniform one (not measured on
a flow prior: none is bundled); the start x_0 is 0 (mid-grey) where the code takes H^T 1 (pnp_flow.py:93), which its
first interpolation, at t = 0, discards, and the VP grid's first keeps 1 - s_0 = 0.006 of (H^T 1 is no image for CT
or a nonlinear operator). The code's Laplace-noise fidelity (pnp_flow.py:42-43) is not offered.

Preset `paper`: scripts/script_test.sh, the CelebA (128 px) commands, the ones the repository gives: alpha per task
(denoising 0.8, Gaussian deblurring 0.01, SR 0.3, box inpainting 0.5, random inpainting 0.01) with lr 1, 5 samples
and 100 steps for all. Their tasks (main.py:120-179): noise sigma 0.2 on [-1, 1] for denoising (sigma_y = 0.1 here),
0.05 (0.025) for blur, SR and box inpainting, 0.01 (0.005) for random inpainting; blur sigma 1 px, 61 px kernel,
circular; SR x2 by plain decimation; a 40 px box; 70% of pixels dropped. The paintbrush task has no ipbench family.
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
from ipbench.params import AT_LEAST_ONE, NON_NEGATIVE, STEPS, Tune, param
from ipbench.solvers.base import Solver, misfit_gradient, randn_per_image, register_solver
from ipbench.solvers.flow_steps import solver_times, vp_times
from ipbench.solvers.presets import PAPER, Preset, Setting, families

_SCRIPT = "scripts/script_test.sh"
_COMMON = {"steps": Setting(100, f"{_SCRIPT}:10-20", "steps_pnp 100"),
           "lr": Setting(1.0, f"{_SCRIPT}:10-20", "lr_pnp 1.0"),
           "samples": Setting(5, f"{_SCRIPT}:10-20", "num_samples 5")}
PAPER_PRESET = Preset(
    repository="github.com/annegnx/PnP-Flow at ee5b159",
    note="the CelebA commands of scripts/script_test.sh; their tasks' noise, blur, SR factor and box differ from "
         "ipbench's operator defaults (solvers/pnp_flow.py)",
    operators=families(_COMMON, {
        "denoise": {"alpha": Setting(0.8, f"{_SCRIPT}:10", "problem denoising, sigma 0.2 on [-1, 1]")},
        "deblur-gauss": {"alpha": Setting(0.01, f"{_SCRIPT}:12", "problem gaussian_deblurring_FFT")},
        "sr": {"alpha": Setting(0.3, f"{_SCRIPT}:14", "problem superresolution, x2 decimation")},
        "inpaint-box": {"alpha": Setting(0.5, f"{_SCRIPT}:16", "problem inpainting, a 40 px box at 128 px")},
        "inpaint-random": {"alpha": Setting(0.01, f"{_SCRIPT}:20", "problem random_inpainting, p = 0.7")}}))


@register_solver
@dataclass
class PnPFlow(Solver):
    """Forward-backward splitting with the flow denoiser at an interpolation toward noise (PnP-Flow, Alg. 1)."""

    name = "pnp-flow"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(100, range=STEPS)  # N iterations (steps_pnp, pnp_flow.yaml:2)
    lr: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.1, 10, log=True))  # lr_pnp (pnp_flow.yaml:3)
    alpha: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.01, 1.0))  # gamma = lr s^alpha (pnp_flow.yaml:6)
    samples: int = param(1, range=AT_LEAST_ONE)  # denoiser draws averaged per step (the code's 5: docstring)

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        times = solver_times(model, 1.0, self.steps)[:-1]  # s_n = 1 - t_n: T - 1's flow time down to t = 0's
        x = torch.zeros((y.shape[0], *model.image_shape), device=y.device)  # x_0 (module docstring)
        for s, t in zip(times, vp_times(model, times)):
            z = x - self.lr * s**self.alpha * 4 * misfit_gradient(op, y, x)  # gradient step, model units (docstring)
            x = torch.zeros_like(z)
            with torch.no_grad():
                for _ in range(self.samples):
                    z_s = (1 - s) * z + s * randn_per_image(z.shape, generators, z.device)  # interpolation
                    x = x + (z_s - s * velocity(model, z_s, s)) / self.samples  # D(z~) = x0_hat(z~, s), averaged
            self.report_step(t, vp_state_of_flow(z_s, s), x)
        return to_image(x)
