"""D-Flow (solvers/dflow.py): the chi regulariser and the ODE steps against closed forms, the optimisation lowering
its loss, NFE as counted, batch invariance, the flow view of a DDPM and of a flow prior, nonlinear operators and
the error against the Gaussian prior's MMSE bound."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.data import load_images
from ipbench.models.counting import CountingModel
from ipbench.models.gaussian_flow import GaussianFlowModel
from ipbench.models.registry import load_model
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.dflow import chi_regulariser, ode_step
from tests.conftest import generators

SHAPE = (1, 16, 16)
FAST = {"steps": 2, "iterations": 1, "lbfgs_iter": 3, "line_search": "none"}  # a fixed NFE


@pytest.fixture(scope="module")
def gaussian():
    return gm.fit_model(SHAPE)


@pytest.fixture(scope="module")
def fashion32():
    return load_model("fashion32")


def _problem(shape, name="inpaint-box", n=2, seed=3):
    gens = generators(n, seed)
    physics = Operator.create(name, {"sigma_y": 0.025}).build(shape, gens, torch.device("cpu"))
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))
    return physics, measure(physics, x, gens)


def test_the_regulariser_is_the_chi_negative_log_density():
    """R(z) = -log chi_d(||z||) + const: differences of R equal differences of the chi log-density written out
    here, (d - 1) log r - r^2 / 2, and R is least at r = sqrt(d - 1)."""
    d = 256
    radii = torch.tensor([4.0, 15.0, math.sqrt(d - 1), 17.0, 30.0], dtype=torch.float64)
    z = torch.zeros(len(radii), 1, 16, 16, dtype=torch.float64)
    z[:, 0, 0, 0] = radii
    r = chi_regulariser(z)
    log_density = (d - 1) * torch.log(radii) - radii.square() / 2
    # the code's log(r + 1e-5) moves each value by at most (d - 1) 1e-5 / r <= 6.4e-4 at r >= 4
    torch.testing.assert_close(r - r[0], -(log_density - log_density[0]), rtol=0, atol=2 * 6.4e-4)
    assert int(r.argmin()) == 2


def test_the_midpoint_and_euler_steps_are_their_formulas_on_a_linear_field():
    """On dx/ds = a x: Euler gives x (1 + a h), the midpoint rule x (1 + a h + (a h)^2 / 2), in either direction."""
    x = torch.tensor([1.5, -2.0], dtype=torch.float64)
    a = -0.8
    field = lambda x, s: a * x  # noqa: E731
    for s, s_next in ((0.9, 0.4), (0.1, 0.6)):
        h = s_next - s
        torch.testing.assert_close(ode_step(field, x, s, s_next, "euler"), x * (1 + a * h))
        torch.testing.assert_close(ode_step(field, x, s, s_next, "midpoint"), x * (1 + a * h + (a * h) ** 2 / 2))


def test_the_optimisation_lowers_the_objective_and_counts_each_forward_evaluation(gaussian):
    """More L-BFGS iterations fit the measurement better (lam = 0: the misfit alone; measured 15.3 -> 8.6 from 1 to 4
    step calls, asserted: below 0.75 x); NFE is exactly the passes' count without a line search: the inversion,
    iterations x lbfgs_iter closure calls and the final pass, each 2 x steps evaluations (midpoint)."""
    flow = GaussianFlowModel(gaussian)
    physics, y = _problem(SHAPE, n=1)
    misfit = []
    for iterations in (1, 4):
        counted = CountingModel(flow)
        solver = SOLVERS.get("d-flow").create({**FAST, "iterations": iterations, "lam": 0.0})
        x_hat = solver.solve(y, physics, counted, generators(1, 20))
        misfit.append(float((physics.A(x_hat) - y).square().sum()))
        assert counted.images == (iterations * FAST["lbfgs_iter"] + 2) * 2 * FAST["steps"]
    assert misfit[1] < 0.75 * misfit[0], misfit


def test_a_batch_gives_each_image_its_own_result(gaussian):
    """Per-image random masks: image 1 alone gives what it gave in a batch of 3 (one L-BFGS per image)."""
    flow = GaussianFlowModel(gaussian)
    physics, y = _problem(SHAPE, "inpaint-random", n=3, seed=5)
    solver = SOLVERS.get("d-flow").create(FAST)
    batch = solver.solve(y, physics, flow, generators(3, 60))
    one = Operator.create("inpaint-random", {"sigma_y": 0.025}).build(SHAPE, generators(3, 5)[1:2], torch.device("cpu"))
    alone = solver.solve(y[1:2], one, flow, generators(3, 60)[1:2])
    torch.testing.assert_close(alone, batch[1:2], rtol=0, atol=1e-6)
    assert torch.equal(batch, solver.solve(y, physics, flow, generators(3, 60)))  # deterministic given generators


@pytest.mark.parametrize("op_name", ["inpaint-box", "deblur-gauss", "phase-retrieval", "hdr", "jpeg"])
def test_runs_on_fashion32_through_the_flow_view(fashion32, op_name):
    """The DDPM seen as a flow, on linear A (the start inverts A^T y) and nonlinear A (it inverts the operator's own
    A^+ y): a finite image batch."""
    images = load_images("fashion32-test", tuple(fashion32.image_shape), num_images=1).images
    gens = generators(1, 30)
    physics = Operator.create(op_name).build(tuple(images.shape[1:]), gens, torch.device("cpu"))
    y = measure(physics, images, gens)
    solver = SOLVERS.get("d-flow").create(FAST)
    assert solver.unsupported(physics, torch.zeros_like(images)) is None
    x_hat = solver.solve(y, physics, fashion32, generators(1, 40))
    assert x_hat.shape == images.shape and torch.isfinite(x_hat).all()


# Measured at the defaults (seed 1, n = 32, the 3 x 16 x 16 Gaussian prior of gaussian_truth.fit_model, sigma_y
# 0.025), R = the solver's MSE over the MMSE, VP / flow parametrisation: denoise 1.90 / 1.88 (SE 0.03), inpaint-box
# 1.84 / 1.84 (0.11), inpaint-random 1.74 / 1.74 (0.05); an exact posterior sample has R = 2. Asserted: R within
# 1.25 x the measured value (a regression bound, not a derived one) and R >= 1 - 3 SE.
MEASURED_R = {"denoise": 1.90, "inpaint-box": 1.84, "inpaint-random": 1.74}


@pytest.mark.parametrize("op", sorted(MEASURED_R))
def test_error_near_the_mmse_bound_on_the_gaussian_prior(op):
    model = gm.fit_model()
    p = gm.make_problem(model, op, op, {"sigma_y": 0.025}, 32, 1)
    s = gm.run_solver("d-flow", SOLVERS.get("d-flow").create(), p, GaussianFlowModel(model), 32)
    assert s.finite == s.n and 1 - 3 * s.se <= s.ratio <= 1.25 * MEASURED_R[op], s
