"""D-Flow (Ben-Hamu, Puny, Gat, Karrer, Singer & Lipman 2024, ICML, "D-Flow: Differentiating through Flows for
Controlled Generation", Sec. 3-4): optimise the source noise of the flow ODE so that the image it generates fits
the measurement. Reference implementation: github annegnx/PnP-Flow at ee5b159, pnpflow/methods/d_flow.py, which
benchmarks D-Flow as a baseline (Martin et al. 2025, "PnP-Flow").

Time convention. ipbench's flow time s runs from s = 0 (the clean image) to s = 1 (noise); PnP-Flow integrates
from t = 0 (noise) to t = 1 (data), so t_code = 1 - s.

With T(z) the flow ODE's map from the source z ~ N(0, I) to the clean image (model units), D-Flow solves

    min_z  ||2 (A(to_image T(z)) - y)||^2 + lam R(z),   R(z) = ||z||^2 / 2 - (d - 1) log ||z||,

d the number of pixels: the data term is the code's squared residual on [-1, 1] data (d_flow.py:116-117; for a
linear A, A x_model - y_model = 2 (A x_image - y_image)), R the negative log-density of ||z|| under the chi
distribution with d degrees of freedom, the paper's regulariser that keeps z at the typical radius of N(0, I)
(d_flow.py:112-114). The loss is differentiated through every ODE step (the network's backward included) and
minimised by L-BFGS with a strong-Wolfe line search (d_flow.py:94-95, 110-121), `iterations` calls of its step
of at most `lbfgs_iter` iterations each; the result is to_image(T(z)) (d_flow.py:156).

Initialisation (the paper's blend, d_flow.py:85-90): z0 = the ODE run backwards from the back-projection
x = A^T y_model (the code's H_adj of the [-1, 1] measurement, for a linear A; a nonlinear A's own A^+ y where
it has one), then z = sqrt(alpha) z0 + sqrt(1 - alpha) n, n ~ N(0, I). A nonlinear A without an A^+ of its own
starts from z = n (the inverted part is all the blend takes from y; alpha = 0.1 leaves it 10% of the variance).

Grid. The ODE runs on the flow times of the model's VP grid (`flow_steps.flow_times`: `steps` strided times from
T - 1, then s = 0), so a DDPM is evaluated at the noise levels it was trained on; z is the VP x_T, its flow state
z / (sqrt(ab) + sqrt(1 - ab)) at the first time (DDIM's start). `ode=euler`: one evaluation per step, no snapping;
`ode=midpoint` (the code's method, d_flow.py:41-49): two per step, the half-step times between grid times (a
discrete model snaps them to its nearest time, models/denoiser.py). The code's grid is uniform in t from 0 to 1
(d_flow.py:42-46, start_time 0); at s = 1 a DDPM's flow view is undefined (sigma infinite), so the VP grid is
used for every model. The backward ODE of the initialisation runs the same grid and method in reverse, its first
evaluation at the smallest positive grid time instead of s = 0 (a DDPM has no level there; DDIM inversion does the
same); the code integrates it by dopri5 at tolerance 1e-5 (d_flow.py:51-60), not available here.

NFE: every network evaluation of the forward ODE, each also backpropagated (counted once, as DPS's forward +
backward step is), plus the backward ODE of the initialisation and the final forward pass: (closure calls + 2) x
the ODE's NFE per image, (iterations x lbfgs_iter + 2) x 2 steps = 192 under `line_search=none`; under the default
`line_search=strong-wolfe` the closure calls are set by the line search.

Defaults: a cheap CPU setting, 3 midpoint steps, 3 L-BFGS step calls of 10 iterations (seconds per 32 x 32 image),
lam = 0.001 and alpha = 0.1 (the code's test commands, scripts/script_test.sh:60-70; d_flow.yaml:3-4 has lam = 0.01).
Preset `paper`: the code's test settings per task: midpoint with steps_euler = 6 grid points (5 steps, 10 NFE per
pass, d_flow.yaml:2), L-BFGS max_iter 20 (d_flow.yaml:6) with the strong-Wolfe line search for max_iter step calls
= 3 (denoising), 7 (Gaussian deblurring), 10 (SR), 9 (box inpainting), 20 (random inpainting)
(script_test.sh:60-70), lam 0.001, alpha 0.1.

Line search. The code's L-BFGS uses a strong-Wolfe line search (d_flow.py:95), the default here too: its closure
calls, and so the NFE, depend on the image (`nfe_depends_on_data`; a row's NFE is its batch's mean). The option
`line_search=none` takes L-BFGS's own step (lr 1) without a line search or early stop, exactly lbfgs_iter closure
calls per step call, a fixed cost; on the Gaussian prior the two give the same error to within its SE, on
fashion32-val (8 images) it costs 2.9 dB on box inpainting and 6.3 dB on Gaussian deblurring (docs/solvers.md).

Deviations: the VP grid (above); the backward ODE by fixed steps instead
of dopri5; L-BFGS runs per image (the code runs one L-BFGS on the batch's summed loss, whose line search couples the
images), so a result does not depend on its batch. The effect of the last three was not measured.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.models.flow import velocity
from ipbench.models.parametrization import flow_state_of_vp, vp_state_of_flow
from ipbench.operators.base import is_linear
from ipbench.params import AT_LEAST_ONE, NON_NEGATIVE, STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import timestep_schedule
from ipbench.solvers.flow_steps import flow_times
from ipbench.solvers.pigdm import measurement_in_model_units
from ipbench.solvers.presets import PAPER, Preset, Setting, families
from ipbench.solvers.reddiff import has_own_inverse

HISTORY = 100  # L-BFGS history_size (d_flow.py:95)
Velocity = Callable[[Tensor, float], Tensor]


def chi_regulariser(z: Tensor) -> Tensor:
    """R(z) = ||z||^2 / 2 - (d - 1) log ||z|| per image (d_flow.py:112-114: the chi density's -log, up to a
    constant; its minimum is at ||z|| = sqrt(d - 1), the typical radius of N(0, I_d))."""
    d = z[0].numel()
    norm = z.flatten(1).norm(dim=1)
    return 0.5 * norm.square() - (d - 1) * torch.log(norm + 1e-5)


def ode_step(v: Velocity, x: Tensor, s: float, s_next: float, method: str) -> Tensor:
    """One step of dx/ds = v(x, s) from s to s_next (either direction): Euler, or the explicit midpoint rule."""
    h = s_next - s
    if method == "euler":
        return x + h * v(x, s)
    return x + h * v(x + h / 2 * v(x, s), s + h / 2)


def integrate(v: Velocity, x: Tensor, times: Sequence[float], method: str) -> Tensor:
    """x carried along `times` (decreasing: the generative direction; increasing: the inversion)."""
    for s, s_next in zip(times[:-1], times[1:]):
        x = ode_step(v, x, s, s_next, method)
    return x


PAPER_PRESET = Preset(
    repository="github.com/annegnx/PnP-Flow at ee5b159",
    note="PnP-Flow's D-Flow baseline (CelebA, AFHQ-Cat); no motion blur or nonlinear task",
    operators=families(
        {"ode": Setting("midpoint", "pnpflow/methods/d_flow.py:41-49", "forward_flow_matching's midpoint rule"),
         "steps": Setting(5, "config/method_config/d_flow.yaml:2", "steps_euler = 6 grid points: 5 midpoint steps"),
         "lbfgs_iter": Setting(20, "config/method_config/d_flow.yaml:6", "LBFGS_iter, L-BFGS max_iter"),
         "lam": Setting(0.001, "scripts/script_test.sh:60-70", "lmbda of every test command"),
         "alpha": Setting(0.1, "scripts/script_test.sh:60-70"),
         "line_search": Setting("strong-wolfe", "pnpflow/methods/d_flow.py:94-95", "line_search_fn='strong_wolfe'")},
        {family: {"iterations": Setting(n, f"scripts/script_test.sh:{line}", f"max_iter, problem {problem}")}
         for family, n, line, problem in (("denoise", 3, 60, "denoising"),
                                          ("deblur-gauss", 7, 62, "gaussian_deblurring_FFT"),
                                          ("sr", 10, 64, "superresolution"),
                                          ("inpaint-box", 9, 66, "inpainting"),
                                          ("inpaint-random", 20, 70, "random_inpainting"))}))


@register_solver
@dataclass
class DFlow(Solver):
    """L-BFGS on the source noise through the flow ODE, with the chi regulariser on its norm."""

    name = "d-flow"
    aliases = ("dflow",)
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(3, range=STEPS)  # ODE steps on the VP grid's flow times (the code: 5 midpoint steps)
    ode: str = param("midpoint", choices=("euler", "midpoint"))  # the code's midpoint rule: 2 NFE per step
    iterations: int = param(3, range=AT_LEAST_ONE)  # L-BFGS step calls (the code's max_iter: 3-20 per task)
    lbfgs_iter: int = param(10, range=AT_LEAST_ONE)  # iterations per step call (the code: 20)
    lam: float = param(0.001, range=NON_NEGATIVE, tune=Tune(1e-5, 0.1, log=True))  # weight of R (script_test.sh)
    alpha: float = param(0.1, range=UNIT, tune=Tune(0.0, 1.0))  # share of the inverted start in the blend
    line_search: str = param("strong-wolfe", choices=("none", "strong-wolfe"))  # the code's (d_flow.py:95)

    def nfe_depends_on_data(self) -> bool:
        return self.line_search == "strong-wolfe"  # the line search's closure calls depend on the image

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        t_start = model.num_timesteps - 1
        times = flow_times(model, t_start, self.steps)
        ab_start = float(model.alphas_cumprod[timestep_schedule(t_start, self.steps)[0]])
        positive = min(s for s in times if s > 0)

        def v(x: Tensor, s: float) -> Tensor:
            return velocity(model, x, max(s, positive))  # the inversion's first step starts at s = 0

        like = torch.zeros((y.shape[0], *model.image_shape), device=y.device)
        start = self.back_projection(op, y, like)
        noise = randn_per_image(like.shape, generators, y.device)
        out = []
        for i in range(y.shape[0]):  # one L-BFGS per image: its line search would couple a batch's images
            z0 = noise[i:i + 1]
            if start is not None and self.alpha > 0:
                with torch.no_grad():
                    inverted = vp_state_of_flow(integrate(v, start[i:i + 1], times[::-1], self.ode), times[0])
                z0 = math.sqrt(self.alpha) * inverted + math.sqrt(1 - self.alpha) * z0
            out.append(self.optimise(v, op, y, i, z0, times, ab_start))
        return torch.cat(out)

    def back_projection(self, op: Physics, y: Tensor, like: Tensor) -> Tensor | None:
        """The image (model units) the initialisation inverts: A^T y_model (the code's H_adj), or a nonlinear A's
        own A^+ y; None where there is neither."""
        if is_linear(op):
            return op.A_adjoint(measurement_in_model_units(op, y, like))
        return to_model(op.A_dagger(y)) if has_own_inverse(op) else None

    def optimise(self, v: Velocity, op: Physics, y: Tensor, i: int, z0: Tensor, times: list[float],
                 ab_start: float) -> Tensor:
        """L-BFGS on image i's source z from z0; returns to_image(T(z)) (d_flow.py:93-121, 156)."""
        y_i = y[i:i + 1]
        forward = image_operator(op, i, y.shape[0], torch.rand(y.shape[0], *z0.shape[1:], device=y.device,
                                                                generator=torch.Generator(device=y.device).manual_seed(0)))
        z = z0.detach().clone().requires_grad_(True)
        if self.line_search == "strong-wolfe":  # the code's: closure calls (and NFE) depend on the image
            lbfgs = torch.optim.LBFGS([z], max_iter=self.lbfgs_iter, history_size=HISTORY, line_search_fn="strong_wolfe")
        else:  # no line search and no early stop: exactly lbfgs_iter closure calls per step call
            lbfgs = torch.optim.LBFGS([z], max_iter=self.lbfgs_iter, history_size=HISTORY, tolerance_grad=-1.0,
                                      tolerance_change=-1.0)

        def generate(source: Tensor) -> Tensor:
            return integrate(v, flow_state_of_vp(source, ab_start), times, self.ode)

        def closure() -> Tensor:
            lbfgs.zero_grad()
            with torch.enable_grad():
                misfit = (2 * (forward(to_image(generate(z))) - y_i)).square().sum()
                loss = misfit + self.lam * chi_regulariser(z).sum()
                loss.backward()
            return loss.detach()

        for _ in range(self.iterations):
            lbfgs.step(closure)
        with torch.no_grad():
            x0 = generate(z.detach())
            self.report_step(0, vp_state_of_flow(flow_state_of_vp(z.detach(), ab_start), times[0]), x0)
        return to_image(x0)


def image_operator(op: Physics, i: int, batch: int, like: Tensor) -> Callable[[Tensor], Tensor]:
    """x (1, C, H, W) -> A(x) for image i of the batch `op` was built for.

    Preferably the operator itself with its per-image tensors (masks, kernels: those whose first dimension is the
    batch) sliced to image i, so that the image sees the same arithmetic, bit for bit, as when it is solved alone
    (L-BFGS's line search turns last-bit differences into other iterates). The slice is accepted only if it
    reproduces row i of A on `like`; otherwise A is applied to the batch with x in row i and zeros elsewhere."""
    if batch == 1:
        return op.A

    def padded(x: Tensor) -> Tensor:
        return op.A(torch.cat([x if j == i else torch.zeros_like(x) for j in range(batch)]))[i:i + 1]

    sliced = copy.deepcopy(op)
    for module in sliced.modules():
        for store in (module._buffers, module._parameters, module.__dict__):
            for name, value in list(store.items()):
                if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
                    store[name] = value[i:i + 1] if store is not module._parameters else \
                        torch.nn.Parameter(value[i:i + 1].detach(), requires_grad=value.requires_grad)
    probe = like[i:i + 1]
    try:
        ok = torch.allclose(sliced.A(probe), padded(probe), rtol=1e-5, atol=1e-6)
    except (RuntimeError, ValueError, IndexError):
        ok = False
    return sliced.A if ok else padded
