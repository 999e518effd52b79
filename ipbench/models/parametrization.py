"""The exact conversions between the three ways a Gaussian diffusion path is written, in model units.

One noise level, three coordinates (all the same path of marginals up to a scaling of the state):

    VE / EDM   x = x0 + sigma eps                        sigma in (0, inf)       (Karras et al. 2022, eq. 1)
    VP-DDPM    x_t = sqrt(ab) x0 + sqrt(1 - ab) eps      ab = 1 / (1 + sigma^2)   (Ho et al. 2020, eq. 4)
    flow       x_s = (1 - s) x0 + s eps                  s = sigma / (1 + sigma)  (Liu et al. 2023, rectified
                                                                                  flow; Lipman et al. 2023, eq. 20
                                                                                  with sigma_min = 0)

so x_t = sqrt(ab) x and x_s = (1 - s) x: the states differ by a scalar per noise level. What a network
predicts converts as exactly: eps, x0 and the flow velocity v = d x_s / ds = eps - x0 determine each other
given the state, e.g. x0 = x_s - s v and eps = x_s + (1 - s) v. Solvers written in one coordinate run on a
model trained in another through these identities; nothing here approximates.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

Number = float | Tensor


def _sqrt(value: Number) -> Number:
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def sigma_of_alpha_bar(alpha_bar: Number) -> Number:
    """VE sigma of a VP level: sqrt((1 - ab) / ab)."""
    return _sqrt((1.0 - alpha_bar) / alpha_bar)


def alpha_bar_of_sigma(sigma: Number) -> Number:
    """VP alpha_bar of a VE level: 1 / (1 + sigma^2)."""
    return 1.0 / (1.0 + sigma * sigma)


def flow_time_of_sigma(sigma: Number) -> Number:
    """Flow time of a VE level: s = sigma / (1 + sigma), in [0, 1)."""
    return sigma / (1.0 + sigma)


def sigma_of_flow_time(s: Number) -> Number:
    """VE sigma of a flow time s in [0, 1): s / (1 - s)."""
    return s / (1.0 - s)


def flow_time_of_alpha_bar(alpha_bar: Number) -> Number:
    """Flow time of a VP level: sqrt(1 - ab) / (sqrt(ab) + sqrt(1 - ab))."""
    root, rest = _sqrt(alpha_bar), _sqrt(1.0 - alpha_bar)
    return rest / (root + rest)


def flow_state_of_vp(x_t: Tensor, alpha_bar: Number) -> Tensor:
    """x_s of the same noise level as x_t: (1 - s) x_t / sqrt(ab) = x_t / (sqrt(ab) + sqrt(1 - ab))."""
    return x_t / (_sqrt(alpha_bar) + _sqrt(1.0 - alpha_bar))


def vp_state_of_flow(x_s: Tensor, s: Number) -> Tensor:
    """x_t of the same noise level as x_s: sqrt(ab) x_s / (1 - s) = x_s / sqrt((1 - s)^2 + s^2)."""
    return x_s / _sqrt((1.0 - s) * (1.0 - s) + s * s)


def eps_of_velocity(x_s: Tensor, v: Tensor, s: Number) -> Tensor:
    """eps = x_s + (1 - s) v (from x_s = (1 - s) x0 + s eps and v = eps - x0)."""
    return x_s + (1.0 - s) * v


def x0_of_velocity(x_s: Tensor, v: Tensor, s: Number) -> Tensor:
    """x0 = x_s - s v."""
    return x_s - s * v


def velocity_of_x0(x_s: Tensor, x0: Tensor, s: Number) -> Tensor:
    """v = (x_s - x0) / s, the velocity that an x0 prediction implies at flow time s > 0."""
    return (x_s - x0) / s


def per_image(value: Tensor) -> Tensor:
    """A (N,) tensor of levels shaped (N, 1, 1, 1), to broadcast against NCHW states."""
    return value.reshape(-1, 1, 1, 1)


def as_levels(value: float | Tensor, batch: int, like: Tensor) -> Tensor:
    """A float or (N,) / scalar tensor of levels as a (N,) tensor in the dtype and device of `like`."""
    levels = torch.as_tensor(value, dtype=like.dtype, device=like.device).flatten()
    return levels.expand(batch) if levels.numel() == 1 else levels
