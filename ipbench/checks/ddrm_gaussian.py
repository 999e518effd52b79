"""DDRM's output distribution on the analytic Gaussian prior, in closed form (ipbench/solvers/ddrm.py).

For the analytic Gaussian prior, Tweedie's x0_hat is a multiplier lam / (lam + sigma_t^2) on each centred
prior eigen-coordinate (eigenvalue lam, model units). When every coordinate of x takes the same DDRM case
(denoising: s = 1; a mask of zeros: s = 0), each step applies one scalar rule to every pixel, so it acts on
each eigen-coordinate separately and the output's error there is Gaussian with a variance that a scalar
recursion gives exactly. Written in the prior's basis, independently of the solver's pixel-basis code.
The tests (tests/test_ddrm.py) and benchmarks/deepinv_ddrm_check.py compare sampled outputs with it through
`whitened_z`.
"""
from __future__ import annotations

import math

import torch

from ipbench.models import GaussianScoreModel
from ipbench.solvers.ddrm import ddrm_grid, ve_sigma


def error_variance_denoising(model: GaussianScoreModel, steps: int, eta: float, eta_b: float,
                             sigma_y: float) -> torch.Tensor:
    """Var of (x_hat - x) per eigen-coordinate, model units, for y = x + n (image units, noise sigma_y).

    The iterate is a y' + independent noise of variance v (y' = x' + n' the centred measurement); (a, v)
    follow eq. 8's second and third cases; the error is (a - 1) x' + a n' + noise."""
    sy, lam = 2 * sigma_y, model.spectrum
    grid = ddrm_grid(model, steps)
    scale = 1 / math.sqrt(1 - grid[0][1])  # the code's start: V z_T / sigma_T
    a, v = torch.full_like(lam, scale), torch.full_like(lam, (ve_sigma(grid[0][1]) ** 2 - sy**2) * scale**2)
    for _, ab, ab_next in grid:
        w = lam / (lam + ve_sigma(ab) ** 2)  # x0_hat = w z
        sigma_next = ve_sigma(ab_next)
        if sigma_next >= sy:  # third case
            a, v = eta_b + (1 - eta_b) * w * a, (1 - eta_b) ** 2 * w**2 * v + sigma_next**2 - eta_b**2 * sy**2
        else:  # second case: z0 + r (y' - z0) + eta sigma' xi
            r = math.sqrt(1 - eta**2) * sigma_next / sy
            a, v = (1 - r) * w * a + r, (1 - r) ** 2 * w**2 * v + eta**2 * sigma_next**2
    return (a - 1) ** 2 * lam + a**2 * sy**2 + v


def output_variance_nothing_seen(model: GaussianScoreModel, steps: int, eta: float) -> torch.Tensor:
    """Var of x_hat - mu per eigen-coordinate when A sees nothing (s = 0 everywhere): the first case,
    z' = z0 + sigma' (sqrt(1 - eta^2) ze + eta xi), ze = (z - z0) / sigma, i.e. z' = g z + eta sigma' xi with
    g = w + sqrt(1 - eta^2) sigma' (1 - w) / sigma, from z_T of variance sigma_T^2 / (1 - ab_T)."""
    lam = model.spectrum
    grid = ddrm_grid(model, steps)
    v = torch.full_like(lam, ve_sigma(grid[0][1]) ** 2 / (1 - grid[0][1]))
    for _, ab, ab_next in grid:
        sigma, sigma_next = ve_sigma(ab), ve_sigma(ab_next)
        w = lam / (lam + sigma**2)
        v = (w + math.sqrt(1 - eta**2) * sigma_next * (1 - w) / sigma) ** 2 * v + eta**2 * sigma_next**2
    return v


def whitened_energy(model: GaussianScoreModel, d: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """Per image, the mean over the prior's eigen-coordinates of |coefficient of d|^2 / variance (model units):
    its expectation is 1 if d ~ N(0, diag(variance)) in that basis."""
    w = torch.einsum("ck,nchw->nkhw", model.colour_basis, d.double())
    return (torch.fft.fft2(w, norm="ortho").abs().square() / variance).flatten(1).mean(1)


def whitened_z(model: GaussianScoreModel, d: torch.Tensor, variance: torch.Tensor) -> float:
    """z-score of the claim d_i ~ N(0, diag(variance)): (mean whitened energy over images - 1) / its SE."""
    energy = whitened_energy(model, d, variance)
    return (float(energy.mean()) - 1) / (float(energy.std()) / math.sqrt(len(energy)))
