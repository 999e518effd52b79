"""DAPS (solvers/daps.py): the Langevin chain against its known Gaussian answer, the ODE x0_hat against the
exact probability-flow map of the Gaussian prior, the schedules, NFE and the parameter checks."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.errors import UsageError
from ipbench.models.base import to_model
from ipbench.models.counting import CountingModel
from ipbench.models.denoiser import sigma_grid
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.daps import OFFICIAL_TAU, annealing_sigmas, langevin, ode_x0
from tests.conftest import SMALL_SHAPE, generators

N = 8  # images: 8 x 3 x 32 x 32 = 24576 independent coordinates per chain statistic


def _box(sigma_y: float = 0.0):
    gens = generators(N, 3)
    physics = Operator.create("inpaint-box", {"sigma_y": sigma_y}).build(SMALL_SHAPE, gens, torch.device("cpu"))
    x = torch.rand(N, *SMALL_SHAPE, generator=torch.Generator().manual_seed(5))
    return physics, measure(physics, x, gens)


def _per_pixel_target(physics, y, x0_hat, r: float, tau: float):
    """The Gaussian target of the chain, coordinate by coordinate (A a 0/1 mask): precision
    c = 1/r^2 + m/(2 tau)^2 and mean (x0_hat/r^2 + m y_model/(2 tau)^2) / c, in model units."""
    m = physics.mask.expand_as(y).to(torch.float64)
    s2 = (2 * tau) ** 2
    c = 1 / r**2 + m / s2
    mean = (x0_hat.double() / r**2 + m * to_model(y).double() / s2) / c
    return m, c, mean


def test_langevin_matches_the_exact_law_of_the_discretised_chain():
    """From a fixed start each coordinate of the chain is an AR(1): x_k - mu = (1 - eta c)(x_{k-1} - mu) +
    sqrt(2 eta) z, so after K steps it is Gaussian with mean mu + (1 - eta c)^K (x0 - mu) and variance
    2 eta (1 - (1 - eta c)^{2K}) / (1 - (1 - eta c)^2), exactly. Standardised by these, the chain's output
    must have mean 0 and variance 1 over 24576 coordinates (3 SE: 0.019 and 0.027)."""
    physics, y = _box()
    x0_hat = 0.3 * torch.randn(N, *SMALL_SHAPE, generator=torch.Generator().manual_seed(6))
    r, tau, steps = 0.05, 0.025, 20  # observed c = 800, hidden c = 400
    eta = 0.5 / 800
    x = langevin(x0_hat, y, physics, r, tau, eta, steps, generators(N, 9))
    _, c, mu = _per_pixel_target(physics, y, x0_hat, r, tau)
    a = 1 - eta * c
    mean = mu + a**steps * (x0_hat.double() - mu)
    var = 2 * eta * (1 - a ** (2 * steps)) / (1 - a**2)
    z = (x.double() - mean) / var.sqrt()
    n = z.numel()
    assert abs(float(z.mean())) < 3 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 3 * math.sqrt(2 / n)


def test_langevin_with_small_steps_samples_the_target():
    """With eta c <= 0.04 the chain's stationary variance is 1/(c (1 - eta c / 2)), within 2% of the
    target's 1/c: after 700 steps (start forgotten: 0.98^700 ~ 7e-7 for the hidden pixels, c = 400) the mean
    and variance of the standardised output must be those of N(target mean, 1/c) to 3 SE plus that 2% bias."""
    physics, y = _box(0.025)
    x0_hat = 0.3 * torch.randn(N, *SMALL_SHAPE, generator=torch.Generator().manual_seed(6))
    r, tau = 0.05, 0.025
    eta = 0.04 / 800
    x = langevin(x0_hat, y, physics, r, tau, eta, 700, generators(N, 10))
    _, c, mu = _per_pixel_target(physics, y, x0_hat, r, tau)
    z = (x.double() - mu) * c.sqrt()
    n = z.numel()
    assert abs(float(z.mean())) < 3 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 3 * math.sqrt(2 / n) + 0.02


def test_ode_x0_is_the_probability_flow_map_of_the_gaussian_prior(small_model):
    """For the prior N(mu, S) the probability-flow ODE maps x at sigma to mu + sqrt((S + s'^2)/(S + sigma^2))
    (x - mu) at s' (per eigenvalue of S): Euler with many steps must land on it. Euler's error is O(1/steps)
    and the snapped grid is exact here (every sigma is a grid sigma), so 400 steps give ~1%."""
    grid = sigma_grid(small_model)
    sigma, sigma_end = grid[600], grid[0]
    x = small_model.mean + sigma * torch.randn(2, *SMALL_SHAPE, generator=torch.Generator().manual_seed(8)).double()
    got = ode_x0(small_model, x.float(), sigma, 400, sigma_end, rho=7.0).double()
    spectrum = small_model.spectrum
    exact = small_model.mean + small_model.apply_spectral(x - small_model.mean,
                                                          ((spectrum + sigma_end**2) / (spectrum + sigma**2)).sqrt())
    assert float((got - exact).norm() / (exact - small_model.mean).norm()) < 0.02
    # one step is Tweedie's estimate plus (sigma_end / sigma) of the noise left in x: far from the ODE's answer
    one = ode_x0(small_model, x.float(), sigma, 1, sigma_end, rho=7.0).double()
    assert float((one - exact).norm() / (exact - small_model.mean).norm()) > 0.1


def test_annealing_schedule_follows_the_official_discretisation(small_model):
    """N levels: the first N of an (N + 1)-point EDM grid from sigma_max to sigma_min (the code's last point is
    dropped), snapped onto the model's grid, strictly decreasing for these settings."""
    sigmas = annealing_sigmas(small_model, 50, 100.0, 0.1, 7.0)
    assert len(sigmas) == 50
    assert set(sigmas) <= set(sigma_grid(small_model))
    assert sigmas == sorted(sigmas, reverse=True) and len(set(sigmas)) == 50
    assert abs(math.log(sigmas[0] / 100)) < 0.01
    assert sigmas[-1] > 0.1 * 1.05  # sigma_min itself is not a level
    assert annealing_sigmas(small_model, 1, 100.0, 0.1, 7.0) == sigmas[:1]


def test_nfe_is_steps_times_ode_steps(small_model):
    physics, y = _box(0.025)
    model = CountingModel(small_model)
    solver = SOLVERS.get("daps").create({"steps": 6, "ode_steps": 3, "langevin_steps": 2})
    solver.solve(y, physics, model, generators(N))
    assert model.nfe == 18


def test_measurement_is_fitted_and_reported_each_level(small_model):
    """On box inpainting with sigma_y = 0.025 the output's residual on the known pixels is of the order of
    the noise (a chain that ignored y would be off by the prior's spread, ~0.15), and report_step is called
    once per level with decreasing times."""
    physics, y = _box(0.025)
    seen = []
    solver = SOLVERS.get("daps").create({"steps": 10})
    solver.step_hook = lambda t, x_t, x0: seen.append(t)
    x_hat = solver.solve(y, physics, small_model, generators(N))
    known = physics.mask.bool().expand_as(y)
    rms = float((x_hat - y)[known].square().mean().sqrt())
    assert rms < 2 * 0.025, rms
    assert len(seen) == 10 and seen == sorted(seen, reverse=True)


def test_tau_defaults_to_the_official_likelihood_and_none_is_sigma_y():
    """The code's tau = 0.01 on [-1, 1] with a squared-norm gradient is a likelihood std of 0.01 / (2 sqrt 2)
    in image units; tau=none is sigma_y, and the official value again when there is no noise."""
    assert OFFICIAL_TAU == pytest.approx(0.01 / (2 * math.sqrt(2)), abs=5e-7)  # rounded to 6 decimals
    assert SOLVERS.get("daps").create().likelihood_std(_box(0.05)[0]) == OFFICIAL_TAU
    matched = SOLVERS.get("daps").create({"tau": "none"})
    assert matched.likelihood_std(_box(0.05)[0]) == pytest.approx(0.05)
    assert matched.likelihood_std(_box(0.0)[0]) == OFFICIAL_TAU


@pytest.mark.parametrize("values", [{"sigma_max": "0.05"}, {"sigma_min": "0.005"}, {"sigma_min": "200"}])
def test_schedule_order_is_checked(values):
    with pytest.raises(UsageError, match="sigma_max > sigma_min > ode_sigma_min"):
        SOLVERS.get("daps").create(values)
    with pytest.raises(UsageError, match="daps.lr=2.5"):
        SOLVERS.get("daps").create({"lr": "2.5"})
