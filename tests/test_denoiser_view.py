"""models/denoiser.py: a VP-DDPM ScoreModel seen as a continuous-sigma VE denoiser D(x, sigma)."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.models.base import tweedie_x0
from ipbench.models.base import to_image, to_model
from ipbench.models.deepinv_adapter import ScoreModelDenoiser
from ipbench.models.denoiser import denoise, karras_sigmas, score, sigma_grid, snap_sigmas, time_of_sigma, times_of_sigmas
from ipbench.models.gaussian import GaussianScoreModel


@pytest.fixture(scope="module")
def model():
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return GaussianScoreModel.fit(images)


def test_on_the_grid_the_denoiser_is_tweedie_at_that_time(model):
    """x = x0 + sigma_t n is x_t / sqrt(ab_t); D(x, sigma_t) must equal Tweedie at t on x_t, exactly."""
    t = 300
    ab = float(model.alphas_cumprod[t])
    x_t = torch.randn(2, *model.image_shape, generator=torch.Generator().manual_seed(1))
    expected = tweedie_x0(x_t, model.eps(x_t, torch.full((2,), t)), ab)
    got = denoise(model, x_t / ab**0.5, sigma_grid(model)[t])
    assert torch.allclose(got, expected, atol=1e-5)
    assert time_of_sigma(model, sigma_grid(model)[t]) == t


def test_an_off_grid_sigma_snaps_to_the_nearest_in_log_sigma(model):
    grid = sigma_grid(model)
    between = math.sqrt(grid[500] * grid[501])  # the geometric midpoint, nudged to either side
    assert time_of_sigma(model, between * 0.999) == 500 and time_of_sigma(model, between * 1.001) == 501
    assert time_of_sigma(model, 1e-9) == 0 and time_of_sigma(model, 1e9) == len(grid) - 1  # clamped to the ends
    with pytest.raises(ValueError):
        time_of_sigma(model, 0.0)
    sigmas = torch.tensor([between * 0.999, between * 1.001, 1e-9, 1e9])
    assert times_of_sigmas(model, sigmas).tolist() == [500, 501, 0, len(grid) - 1]


def test_deepinvs_view_is_the_same_denoiser_in_image_units(model):
    """ScoreModelDenoiser(x, sigma) on [0, 1] images is D(2x - 1, 2 sigma) mapped back, per image."""
    grid = sigma_grid(model)
    x0 = torch.rand(2, *model.image_shape, generator=torch.Generator().manual_seed(3))
    sigma = torch.tensor([grid[200] / 2, grid[700] / 2 * 1.002])  # image units; the second off the grid
    x = x0 + sigma.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    got = ScoreModelDenoiser(model)(x, sigma)
    for i, t in enumerate((200, 700)):
        assert ScoreModelDenoiser(model).time_for(sigma)[i] == t
        expected = to_image(denoise(model, to_model(x[i:i + 1]), float(2 * sigma[i])))
        assert torch.allclose(got[i:i + 1], expected, atol=1e-5)


def test_schedules_are_snapped_onto_the_grid(model):
    grid = set(sigma_grid(model))
    sigmas = karras_sigmas(model, 20, sigma_max=80.0, sigma_min=0.01)
    assert len(sigmas) == 20 and all(s in grid for s in sigmas)
    assert sigmas == sorted(sigmas, reverse=True)
    assert sigmas[0] == snap_sigmas(model, [80.0])[0] and sigmas[-1] == min(grid)  # 0.01 is the grid's sigma_0
    assert abs(math.log(sigmas[0] / 80.0)) < 0.01


def test_the_score_is_the_gaussian_prior_score(model):
    """For the analytic Gaussian prior N(mu, S), x = x0 + sigma n has score -(S + sigma^2 I)^-1 (x - mu) (a
    spectral multiplier); the VE view must reproduce it from the network's eps through Tweedie, on the grid."""
    sigma = sigma_grid(model)[200]
    x = torch.randn(1, *model.image_shape, generator=torch.Generator().manual_seed(2)).double()
    expected = model.apply_spectral(x - model.mean, -1.0 / (model.spectrum + sigma**2))
    got = score(model, x, sigma)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-8)
