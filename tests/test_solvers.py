"""Contract tests run against every registered solver (a new solver is tested once registered)."""
from __future__ import annotations

import pytest
import torch

from ipbench.models.counting import CountingModel
from ipbench.data import load_images
from ipbench.models import time_for_sigma
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.base import prior_problem
from tests.conftest import SMALL_SHAPE, generators, prior_for

OPERATOR_NAMES = ["inpaint-box", "inpaint-random", "deblur-gauss", "deblur-motion", "sr", "denoise"]
FEW_STEPS = {"steps": 8, "num_steps": 8}  # the contract does not need converged samples


def make_fast(name: str):
    """The solver with any step-count field set small, everything else at its default."""
    cls = SOLVERS.get(name)
    fields = {p.name for p in cls.params()}
    return cls.create({k: v for k, v in FEW_STEPS.items() if k in fields})


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("photos", SMALL_SHAPE, num_images=3).images


def _measured(name: str, x: torch.Tensor, seed: int = 0):
    gens = generators(x.shape[0], seed)
    physics = Operator.create(name).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


# Every registered solver, except the deliberately broken ones of the runner's failure tests.
CONTRACT_SOLVERS = [n for n in SOLVERS.names() if not SOLVERS.get(n).__module__.endswith("flaky_solvers")]


@pytest.mark.parametrize("solver_name", CONTRACT_SOLVERS)
@pytest.mark.parametrize("op_name", OPERATOR_NAMES)
def test_solver_contract(solver_name, op_name, images, small_model, small_latent_prior):
    solver = make_fast(solver_name)
    physics, y = _measured(op_name, images)
    reason = solver.unsupported(physics, torch.zeros_like(images))
    if reason is not None:  # a declared n/a: the runner records skipped rows and never calls solve
        assert isinstance(reason, str) and reason.strip()
        return
    model = CountingModel(prior_for(solver_name, small_model, small_latent_prior))  # a latent solver's: latent
    assert prior_problem(solver, model) is None

    x_hat = solver.solve(y, physics, model, generators(3, 100))
    assert x_hat.shape == images.shape
    assert x_hat.dtype == torch.float32
    assert torch.isfinite(x_hat).all()
    nfe = model.nfe

    again = solver.solve(y, physics, model, generators(3, 100))
    assert torch.equal(x_hat, again), "same generators must give the same output"
    assert model.nfe == 2 * nfe, "NFE must be the same on a repeat"

    # Batch invariance: image 1 solved alone gives what it gave inside the batch.
    physics_1, y_1 = _measured(op_name, images[1:2], seed=1)
    assert torch.equal(y_1, y[1:2])
    alone = solver.solve(y_1, physics_1, model, generators(1, 101))
    torch.testing.assert_close(alone, x_hat[1:2], rtol=0, atol=1e-6)


def test_tweedie_is_the_exact_posterior_mean_for_denoising(small_model):
    """For a Gaussian prior and y = x + n, one Tweedie step at the matched t is the exact posterior mean
    E[x | y] for noise of the matched std sqrt((1 - ab_t) / ab_t) / 2 (within 1% of sigma_y)."""
    sigma_y = 0.1
    x = small_model.sample(4, generators(4, 7)).clamp(0, 1)
    gens = generators(4, 11)
    physics = Operator.create("denoise", {"sigma_y": sigma_y}).build(SMALL_SHAPE, gens, torch.device("cpu"))
    y = measure(physics, x, gens)
    ab = small_model.alphas_cumprod[time_for_sigma(small_model.alphas_cumprod, sigma_y)]
    matched = float(((1 - ab) / ab).sqrt() / 2)
    assert abs(matched / sigma_y - 1) < 0.01
    x_hat = SOLVERS.get("tweedie").create().solve(y, physics, small_model, gens)
    exact = small_model.posterior_mean(y, physics.A, physics.A_adjoint, matched)
    torch.testing.assert_close(x_hat.double(), exact, rtol=0, atol=1e-5)  # float32 arithmetic in the solver


def test_hole_fill_fills_holes_and_keeps_known_pixels_close(images):
    physics, y = _measured("inpaint-box", images)
    x_hat = SOLVERS.get("hole-fill").create({"sigma": 0.5}).solve(y, physics, None, generators(3))
    known = physics.mask.bool().expand_as(y)
    # sigma 0.5 barely smooths: observed pixels stay near y; hole pixels are filled from neighbours
    assert float((x_hat - y)[known].abs().mean()) < 0.02
    hole = ~known
    assert float(x_hat[hole].std()) > 0.01  # not a flat fill
    assert float(x_hat[hole].min()) >= float(y[known].min()) - 1e-6


def test_unknown_solver_param_is_a_usage_error():
    from ipbench.errors import UsageError

    with pytest.raises(UsageError, match="tweedie.*zeta"):
        SOLVERS.get("tweedie").create({"zeta": "1"})
    with pytest.raises(UsageError, match="hole-fill.sigma"):
        SOLVERS.get("hole-fill").create({"sigma": "0"})


@pytest.mark.parametrize("solver_name", ["dps", "score-ald", "score-ald-ddpm", "ddnm", "ddrm", "sdedit", "ddpm", "diffpir"])
def test_diffusion_solvers_report_each_step(solver_name, images, small_model):
    """The built-in diffusion solvers call Solver.report_step once per step with model-unit x_t and x0_hat."""
    solver = make_fast(solver_name)
    physics, y = _measured("inpaint-box", images)
    seen = []
    solver.step_hook = lambda t, x_t, x0: seen.append((t, tuple(x_t.shape), tuple(x0.shape), x0.requires_grad))
    solver.solve(y, physics, small_model, generators(3, 100))
    assert len(seen) == min(8, seen[0][0] + 1), seen
    assert all(s[1] == s[2] == tuple(images.shape) and not s[3] for s in seen)
    assert [s[0] for s in seen] == sorted((s[0] for s in seen), reverse=True)  # times run down
