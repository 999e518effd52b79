"""The flow-ODE pieces that flow-native solvers share: their time grids and the Euler step of dx_s/ds = v(x_s, s).

On the linear path x_s = (1 - s) x0 + s eps (models/flow.py) an Euler step from s to s' with the velocity
v = eps_hat - x0_hat gives x_s' = (1 - s') x0_hat + s' eps_hat: exactly DDIM's deterministic step (Song et al.
2021, eq. 12 with eta = 0) between the same noise levels, in flow coordinates. So sampling any prior's flow
view on the flow times of a VP grid reproduces DDIM (tests/test_flow_prior.py checks it to float precision).

A flow solver with a start time (pnp-flow, ot-ode) takes its times from `solver_times`: the flow times of the
model's VP grid from the diffusion time nearest its start, for every prior, as `flow_times` gives them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.flow import velocity
from ipbench.models.parametrization import flow_time_of_alpha_bar
from ipbench.params import check_count
from ipbench.solvers.base import randn_per_image
from ipbench.solvers.diffusion import timestep_schedule

FlowStepHook = Callable[[float, Tensor, Tensor], None]  # (s, x_s, x0_hat)


def flow_times(model: ScoreModel, t_start: int, steps: int) -> list[float]:
    """The flow times of the strided VP grid from t_start (diffusion.timestep_schedule), then 0 (the clean image):
    the noise levels the network was trained on, for a discrete model, so the flow view needs no snapping."""
    alpha_bars = model.alphas_cumprod.double().cpu()
    return [float(flow_time_of_alpha_bar(alpha_bars[t])) for t in timestep_schedule(t_start, steps)] + [0.0]


def vp_times(model: ScoreModel, times: Sequence[float]) -> list[int]:
    """For each flow time, the model's diffusion time nearest to it in flow time (s = 1, pure noise: T - 1)."""
    grid = flow_time_of_alpha_bar(model.alphas_cumprod.double().cpu())
    return [int((grid - s).abs().argmin()) for s in times]


def solver_times(model: ScoreModel, s_start: float, steps: int) -> list[float]:
    """`steps` + 1 flow times from s_start down to 0: those of the model's strided VP grid (`flow_times`) from the
    diffusion time nearest s_start, whose flow time is the first (within half a grid step of s_start; 0.9937 for
    s_start = 1 on the linear 1000-step schedule). It has at most t_start + 1 steps: `check_steps` refuses more."""
    return flow_times(model, vp_times(model, [s_start])[0], steps)


def check_steps(solver: str, model: ScoreModel, s_start: float, steps: int) -> None:
    """Refuse a step count that the model's VP grid from s_start cannot hold (it would be cut silently)."""
    (t_start,) = vp_times(model, [s_start])
    check_count(f"solver {solver}", "steps", steps, t_start + 1,
                f"the model's diffusion times from t={t_start}, the nearest to s_start={s_start:g}, down to 0")


def flow_ode(model: ScoreModel, x_s: Tensor, times: list[float], on_step: FlowStepHook | None = None) -> Tensor:
    """Integrate dx_s/ds = v(x_s, s) by Euler steps along `times` (decreasing); returns x at times[-1]."""
    for s, s_next in zip(times[:-1], times[1:]):
        v = velocity(model, x_s, s)
        if on_step is not None:
            on_step(s, x_s, x_s - s * v)
        x_s = x_s + (s_next - s) * v
    return x_s


def sample_flow(model: ScoreModel, generators: Sequence[torch.Generator], steps: int) -> Tensor:
    """Prior samples in model units by the flow ODE from x_1 = eps ~ N(0, I), `steps` Euler steps uniform in s
    (the rectified-flow sampler, Liu et al. 2023, sec. 2.1). For a flow model: its own velocity at s = 1."""
    device = model.alphas_cumprod.device
    x = randn_per_image((len(generators), *model.image_shape), generators, device)
    return flow_ode(model, x, [1.0 - i / steps for i in range(steps + 1)])
