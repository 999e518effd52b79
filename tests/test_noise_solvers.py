"""Solvers under Poisson noise: every solver states its noise assumption (docs/operators.md shows them), every
solver runs on a Poisson measurement with sigma_y = 0 (finite, per image), and DPS takes its official code's
Poisson step (guided_diffusion/condition_methods.py:34-39), recomputed here from its definition."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ipbench.data import load_images
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.dps import CODE_POISSON, poisson_factor
from ipbench.solvers.noise_assumed import NOISE_ASSUMED, markdown_table, noise_assumption
from tests.conftest import SMALL_SHAPE, generators, prior_for
from tests.test_solvers import CONTRACT_SOLVERS, make_fast

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = [n for n in SOLVERS.names() if SOLVERS.get(n).__module__.startswith("ipbench.solvers.")]
POISSON = {"noise": "poisson", "sigma_y": 0.0, "rate": 60.0}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("photos", SMALL_SHAPE, num_images=3).images


def _measured(name: str, params: dict, x: torch.Tensor, seed: int = 0):
    gens = generators(x.shape[0], seed)
    physics = Operator.create(name, params).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


def test_every_built_in_solver_states_its_noise_assumption_and_the_docs_show_it() -> None:
    assert sorted(NOISE_ASSUMED) == sorted(BUILT_IN)
    for name in BUILT_IN:
        assert noise_assumption(SOLVERS.get(name)) == NOISE_ASSUMED[name]
        assert "|" not in NOISE_ASSUMED[name]  # it would end the docs table's cell
    assert markdown_table(sorted(BUILT_IN)) in (ROOT / "docs" / "operators.md").read_text()


@pytest.mark.parametrize("solver_name", CONTRACT_SOLVERS)
@pytest.mark.parametrize("op_name", ["denoise", "inpaint-box"])
def test_every_solver_runs_on_poisson_noise_without_sigma_y(solver_name, op_name, images, small_model,
                                                            small_latent_prior) -> None:
    """sigma_y = 0 with Poisson noise: finite reconstructions, and image 1 alone as inside its batch."""
    solver = make_fast(solver_name)
    physics, y = _measured(op_name, POISSON, images)
    if solver.unsupported(physics, torch.zeros_like(images)) is not None:
        return
    prior = prior_for(solver_name, small_model, small_latent_prior)
    x_hat = solver.solve(y, physics, prior, generators(3, 100))
    assert x_hat.shape == images.shape and torch.isfinite(x_hat).all()
    physics_1, y_1 = _measured(op_name, POISSON, images[1:2], seed=1)
    assert torch.equal(y_1, y[1:2])
    alone = solver.solve(y_1, physics_1, prior, generators(1, 101))
    torch.testing.assert_close(alone, x_hat[1:2], rtol=0, atol=1e-6)


def test_dps_poisson_factor_is_the_codes_mean_inverse_magnitude(images) -> None:
    """c_i = mean_j 1 / max(|2 y_ij - 1|, 1 / rate), per image; none under Gaussian or Poisson-Gaussian noise."""
    physics, y = _measured("denoise", POISSON, images)
    expected = torch.stack([(1 / torch.clamp((2 * y[i] - 1).abs(), min=1 / 60.0)).mean() for i in range(3)])
    torch.testing.assert_close(poisson_factor(physics, y).flatten(), expected)
    assert float((expected - 1).abs().min()) > 0.1  # not vacuous: the factor is not 1
    for params in ({}, {"noise": "poisson-gaussian", "sigma_y": 0.01}):
        other, y_other = _measured("denoise", params, images)
        assert poisson_factor(other, y_other) is None


def test_dps_under_poisson_noise_steps_as_the_code_does(images, small_model) -> None:
    """The code's Poisson step is c times its Gaussian one. With normalize=residual, DPS on a Poisson
    measurement is therefore DPS with zeta c_i on the same y under Gaussian noise, image by image; with
    normalize=grad the step is normalised, c cancels, and the result is the Gaussian one."""
    dps = SOLVERS.get("dps")
    poisson, y = _measured("inpaint-box", POISSON, images)
    gaussian = Operator.create("inpaint-box", {"sigma_y": 0.0}).build(SMALL_SHAPE, generators(3), torch.device("cpu"))
    factor = poisson_factor(poisson, y).flatten()
    for i in range(3):
        one = y[i:i + 1]
        ours = dps.create({"steps": 4, "normalize": "residual", "zeta": 0.3}).solve(one, poisson, small_model,
                                                                                     generators(1, 50 + i))
        scaled = dps.create({"steps": 4, "normalize": "residual", "zeta": 0.3 * float(factor[i])})
        reference = scaled.solve(one, gaussian, small_model, generators(1, 50 + i))
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
        unscaled = dps.create({"steps": 4, "normalize": "residual", "zeta": 0.3}).solve(one, gaussian, small_model,
                                                                                         generators(1, 50 + i))
        assert float((ours - unscaled).abs().max()) > 1e-3  # the factor does change the residual rule's step
    grad = dps.create({"steps": 4})
    assert torch.equal(grad.solve(y, poisson, small_model, generators(3, 9)),
                       grad.solve(y, gaussian, small_model, generators(3, 9)))


def test_dps_records_its_rule_only_under_non_gaussian_noise(images, small_model) -> None:
    dps = SOLVERS.get("dps").create()
    assert dps.as_run(_measured("denoise", {}, images)[0], small_model) == {}
    assert dps.as_run(_measured("denoise", POISSON, images)[0], small_model) == {"likelihood": CODE_POISSON}
    mixed = _measured("denoise", {"noise": "poisson-gaussian", "sigma_y": 0.01}, images)[0]
    assert dps.as_run(mixed, small_model) == {"likelihood": "gaussian"}
