"""Score-ALD (annealed Langevin and DDPM form), SDEdit's guide and the two classical baselines.

The Langevin checks use the analytic Gaussian prior, whose score is exact, so the stationary law of the
discretised chain is known in closed form (derivations in the docstrings); none of the bounds is a number
the code produced.
"""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.errors import UsageError
from ipbench.models.base import to_image, to_model
from ipbench.models.denoiser import sigma_grid, time_of_sigma
from ipbench.operators import Operator, back_project, measure, measurement_image
from ipbench.solvers import SOLVERS, randn_per_image
from ipbench.solvers.score_ald import CODE_SIGMA_START, langevin_levels
from tests.conftest import generators

SIGMA_Y = 0.025


@pytest.fixture(scope="module")
def model():
    return gm.fit_model((3, 8, 8))


def _measured(op: str, x: torch.Tensor, seed: int = 0, **params):
    gens = generators(x.shape[0], seed)
    physics = Operator.create(op, {"sigma_y": SIGMA_Y, **params}).build(tuple(x.shape[1:]), gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


# -- Score-ALD (annealed Langevin) ---------------------------------------------------------------------------
def test_langevin_at_one_level_samples_its_gaussian_target(model):
    """Denoising (A = I) at the last level sigma alone, K steps from the uniform start. In model units the drift
    is the exact prior score -(Sigma + sigma^2)^-1 (x - mu) plus the annealed likelihood (y' - x) / s^2,
    y' = 2 y - 1, s^2 = 4 sigma_y^2 + sigma^2 (the solver's image-units form, converted). Per prior eigenvalue
    S_k the drift is linear with precision P_k = 1 / (S_k + sigma^2) + 1 / s^2, so the chain
    x <- x - alpha P (x - m) + sqrt(2 alpha) z has the stationary law N(m, C) exactly, with
    m = mu + (Sigma + sigma^2) (Sigma + sigma^2 + s^2)^-1 (y' - mu) and C_k = 1 / (P_k (1 - alpha P_k / 2)).
    n independent chains (one per 'image', all given the same y): E||mean - m||^2 = tr(C) / n with
    SD sqrt(2 tr(C^2)) / n, and the summed sample variance has mean tr(C) (n-1)/n, SD about sqrt(2 tr(C^2) / n).
    alpha = 1.5 sigma^2 (alpha P_max = 1.56 < 2); K = 250 is 14 e-folds of the slowest mode (alpha P_min >=
    alpha / s^2 = 0.058), where the start is 1 / 0.02 = e^4 posterior stds away at most."""
    n, steps_each = 128, 250
    sigma = sigma_grid(model)[0]
    truth = model.sample(1, generators(1, 3))
    physics, y = _measured("denoise", truth)
    solver = SOLVERS.get("score-ald").create({"steps": 1, "steps_each": steps_each, "sigma_max": sigma, "eps": 1.5 * sigma**2,
                                             "likelihood": "annealed", "clip": False, "denoise": False})
    x = to_model(solver.solve(y.expand(n, -1, -1, -1), physics, model, generators(n, 1000)).double())

    alpha, s2 = 1.5 * sigma**2, 4 * SIGMA_Y**2 + sigma**2
    spectrum = model.spectrum
    precision = 1 / (spectrum + sigma**2) + 1 / s2
    cov = 1 / (precision * (1 - alpha * precision / 2))
    mean = model.mean + model.apply_spectral(to_model(y.double()) - model.mean, (spectrum + sigma**2) / (spectrum + sigma**2 + s2))
    trace, trace2 = float(cov.sum()), float(cov.square().sum())

    error = float((x.mean(0) - mean[0]).square().sum())
    assert abs(error - trace / n) < 4 * math.sqrt(2 * trace2) / n, (error, trace / n)
    spread = float((x - x.mean(0)).square().sum() / n)
    assert abs(spread - trace * (n - 1) / n) < 4 * math.sqrt(2 * trace2 / n), (spread, trace)
    # the same check is sharp enough to see the likelihood's scale: with s^2 doubled the mean moves by far more
    mean_off = model.mean + model.apply_spectral(to_model(y.double()) - model.mean,
                                                 (spectrum + sigma**2) / (spectrum + sigma**2 + 2 * s2))
    assert float((mean_off - mean).square().sum()) > 20 * math.sqrt(2 * trace2) / n


def test_annealed_likelihood_in_model_units(model):
    """g = A^T (y - A to_image(x)) / (2 (sigma_y^2 + sigma^2 / 4)) equals the model-units form
    A^T (y' - A x) / (sigma_y'^2 + sigma^2) with y' = 2 y - A 1 and sigma_y' = 2 sigma_y, for a blur."""
    truth = model.sample(2, generators(2, 5))
    physics, y = _measured("deblur-gauss", truth, kernel_size=5, sigma=1.0)
    x = to_model(truth) + 0.3 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    solver = SOLVERS.get("score-ald").create()
    sigma = 0.2
    g = solver.data_term(x, y, physics, SIGMA_Y, sigma, torch.zeros_like(x))
    y_model = 2 * y - physics.A(torch.ones_like(x))
    expected = physics.A_adjoint(y_model - physics.A(x)) / (4 * SIGMA_Y**2 + sigma**2)
    torch.testing.assert_close(g, expected, rtol=1e-4, atol=1e-4)


def test_normalized_likelihood_has_mse_times_the_prior_norm(model):
    """The official code's data term: per image, norm mse ||s||, direction A^T (y - A to_image(x))."""
    truth = model.sample(2, generators(2, 5))
    physics, y = _measured("inpaint-box", truth)
    x = to_model(truth) + 0.3 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    prior = torch.randn(truth.shape, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 7.0]).view(2, 1, 1, 1)
    g = SOLVERS.get("score-ald").create({"likelihood": "normalized", "mse": 5.0}).data_term(x, y, physics, SIGMA_Y, 0.2, prior)
    torch.testing.assert_close(g.flatten(1).norm(dim=1), 5 * prior.flatten(1).norm(dim=1))
    direction = physics.A_adjoint(y - physics.A(to_image(x)))
    cosine = torch.nn.functional.cosine_similarity(g.flatten(1), direction.flatten(1))
    torch.testing.assert_close(cosine, torch.ones(2))


def test_levels_map_the_codes_schedule_onto_the_model_grid(model):
    """Geometric: from the grid sigma nearest the code's first level (1.232) to the grid's smallest, the given
    count, non-increasing, each on the grid. Strided: evenly spaced times from that level's time to 0."""
    grid = sigma_grid(model)
    levels = langevin_levels(model, CODE_SIGMA_START, 100, "geometric")
    assert len(levels) == 100 and levels[0] == grid[time_of_sigma(model, CODE_SIGMA_START)] and levels[-1] == grid[0]
    assert all(a >= b for a, b in zip(levels, levels[1:])) and set(levels) <= set(grid)
    assert abs(math.log(levels[0] / CODE_SIGMA_START)) < 0.01  # the grid is fine there: t = 300 on the linear schedule
    strided = [time_of_sigma(model, s) for s in langevin_levels(model, CODE_SIGMA_START, 31, "strided")]
    assert strided[0] == time_of_sigma(model, CODE_SIGMA_START) and strided[-1] == 0 and len(strided) == 31
    assert {a - b for a, b in zip(strided, strided[1:])} <= {9, 10}  # 299 / 30 rounded


def test_a_step_that_diverges_is_refused(model):
    truth = model.sample(1, generators(1))
    physics, y = _measured("denoise", truth)
    sigma_last = sigma_grid(model)[0]
    with pytest.raises(UsageError, match="score-ald.eps"):
        SOLVERS.get("score-ald").create({"steps": 2, "eps": 2.01 * sigma_last**2}).solve(y, physics, model, generators(1))


# -- Score-ALD in DDPM form: the literal step ---------------------------------------------------------------
@pytest.mark.parametrize("op", ["denoise", "inpaint-random", "deblur-gauss"])
def test_literal_unit_step_is_stable_above_the_bound_and_diverges_below(model, op, monkeypatch):
    """x_{t-1} = P(x_t) + A^T (y' - A x_t) / s'^2 (model units, s'^2 = 4 (sigma_y^2 + gamma^2)): on what A sees
    (A A^T = I on the seen rows; the default deblur kernel at 8 px is the identity to 1e-6) the linear part is (gain of P) - 1 / s'^2, with P's gain close
    to 1, so the chain is stable iff |1 - 1 / s'^2| < 1, i.e. s'^2 > 1/2 (docstring of score_ald_ddpm).
    - default gamma (s'^2 = 1): finite, fits y (rho <= 1.5, the band of test_gaussian_mmse) and uses it
      (R below the prior mean's, which ignores y);
    - s'^2 = 0.55 (factor -0.82 per step): finite (stable, though biased: see docs/solvers.md);
    - s'^2 = 0.45 (factor -1.22 per step, 100 steps: 1.22^100 ~ 4e8), let past the check: diverges."""
    from ipbench.solvers import score_ald_ddpm

    p = gm.make_problem(model, op, op, {"sigma_y": SIGMA_Y}, 8, 1)
    prior_mean = gm.score("prior mean", p, gm.prior_references(model, p)["prior mean (ignores y)"])
    default = gm.run_solver("unit", SOLVERS.get("score-ald-ddpm").create({"weighting": "unit"}), p, model)
    assert default.finite == default.n and default.residual <= 1.5 and default.ratio < prior_mean.ratio, default

    def run(s2: float):
        return gm.run_solver("unit", SOLVERS.get("score-ald-ddpm").create(
            {"weighting": "unit", "gamma": math.sqrt(s2 / 4 - SIGMA_Y**2)}), p, model)

    near = run(0.55)
    assert near.finite == near.n, near
    monkeypatch.setattr(score_ald_ddpm, "unit_gamma", lambda sigma_y, gamma: gamma)  # no check
    beyond = run(0.45)
    assert beyond.finite == 0, beyond


def test_literal_unit_step_refuses_an_unstable_gamma(model):
    """sigma_y^2 + gamma^2 <= 1/8 (image units) makes the residual's factor |1 - 1 / s'^2| >= 1 for a mask."""
    truth = model.sample(1, generators(1))
    physics, y = _measured("inpaint-box", truth)
    gamma = math.sqrt(1 / 8 - SIGMA_Y**2) * 0.99
    with pytest.raises(UsageError, match="1/8"):
        SOLVERS.get("score-ald-ddpm").create({"weighting": "unit", "gamma": gamma}).solve(y, physics, model, generators(1))


# -- SDEdit's guide -------------------------------------------------------------------------------------------
class ZeroEps(torch.nn.Module):
    """A model whose eps is 0: one reverse step from t0 then returns x_t0 / sqrt(ab_t0) = guide + sigma_t0 z."""

    def __init__(self, like):
        super().__init__()
        self.alphas_cumprod = like.alphas_cumprod
        self.image_shape = like.image_shape
        self.num_timesteps = like.num_timesteps

    def eps(self, x_t, t):
        return torch.zeros_like(x_t)


@pytest.mark.parametrize("guide", ["measurement", "back-projection"])
@pytest.mark.parametrize("op", ["deblur-gauss", "inpaint-box", "sr"])
def test_sdedit_noises_the_guide_it_names(model, guide, op):
    """With eps = 0, SDEdit (one step, no clipping) returns to_image(guide + sigma_t0 z), z its first draw:
    guide = y itself (measurement; for sr y upsampled bicubically) or A^T y / A^T 1 (back-projection)."""
    truth = model.sample(2, generators(2, 9))
    physics, y = _measured(op, truth, **({"factor": 2} if op == "sr" else {}))
    solver = SOLVERS.get("sdedit").create({"t0": 200, "steps": 1, "clip": False, "guide": guide})
    out = solver.solve(y, physics, ZeroEps(model), generators(2, 50))
    ab = float(model.alphas_cumprod[200])
    z = randn_per_image(truth.shape, generators(2, 50), torch.device("cpu"))
    image = measurement_image(physics, y) if guide == "measurement" else back_project(physics, y)
    torch.testing.assert_close(out, to_image(to_model(image) + ((1 - ab) / ab) ** 0.5 * z), rtol=0, atol=1e-5)
    if op != "sr" and guide == "measurement":
        assert torch.equal(image, y)  # the measurement itself, not a re-blurred or hole-filled copy
    if op == "sr":
        assert image.shape == truth.shape


# -- the classical baselines ------------------------------------------------------------------------------------
def test_gaussian_filter_is_torchvisions_3x3_gaussian_blur_of_y(model):
    """The seeds' baseline: 3 x 3, sigma 0.8, reflect padding, applied to y itself (deblur: no re-blurring)."""
    from torchvision.transforms.functional import gaussian_blur

    truth = model.sample(2, generators(2, 4))
    physics, y = _measured("deblur-gauss", truth)
    out = SOLVERS.get("gaussian-filter").create().solve(y, physics, model, generators(2))
    torch.testing.assert_close(out, gaussian_blur(y, [3, 3], [0.8, 0.8]), rtol=0, atol=1e-6)
    with pytest.raises(UsageError, match="must be odd"):
        SOLVERS.get("gaussian-filter").create({"kernel_size": 4})


def test_blur_is_the_hole_fillers_old_name():
    assert SOLVERS.canonical("blur") == "hole-fill"
    assert SOLVERS.get("blur") is SOLVERS.get("hole-fill")
    assert SOLVERS.get("gaussian-filter") is not SOLVERS.get("hole-fill")
