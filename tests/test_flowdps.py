"""FlowDPS (solvers/flowdps.py): one step against the code's formula computed here, the flow view of a DDPM and
of a flow prior, nonlinear operators, and the error against the Gaussian prior's MMSE bound."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.data import load_images
from ipbench.models.gaussian_flow import GaussianFlowModel
from ipbench.models.parametrization import flow_time_of_alpha_bar
from ipbench.models.registry import load_model
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.diffusion import timestep_schedule
from tests.conftest import generators

SHAPE = (1, 16, 16)


@pytest.fixture(scope="module")
def gaussian():
    return gm.fit_model(SHAPE)


@pytest.fixture(scope="module")
def fashion32():
    return load_model("fashion32")


def _problem(shape, name="inpaint-box", n=2, seed=3, params=None):
    gens = generators(n, seed)
    physics = Operator.create(name, {"sigma_y": 0.025, **(params or {})}).build(shape, gens, torch.device("cpu"))
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))
    return physics, measure(physics, x, gens)


def test_two_steps_are_the_codes_update_computed_independently(gaussian):
    """steps=2 on the Gaussian flow prior and a box mask: s0 > s1 > 0, written out here from sd3_sampler.py:318-329
    with the velocity of the closed form and the mask's gradient m r / ||r|| (r = m (x + 1) - 2 y on the [-1, 1]
    scale), the same noise drawn in the same order."""
    flow = GaussianFlowModel(gaussian)
    physics, y = _problem(SHAPE)
    m = physics.mask.expand_as(y).double()
    solver = SOLVERS.get("flowdps").create({"steps": 2, "step_size": 0.7, "dc_steps": 3})
    out = solver.solve(y, physics, flow, generators(2, 50))

    ab = gaussian.alphas_cumprod.double()
    t0, t1 = timestep_schedule(gaussian.num_timesteps - 1, 2)
    s0, s1 = float(flow_time_of_alpha_bar(ab[t0])), float(flow_time_of_alpha_bar(ab[t1]))
    gens = generators(2, 50)
    draw = lambda: torch.stack([torch.randn(SHAPE, generator=g) for g in gens]).double()  # noqa: E731
    x = draw() / (ab[t0].sqrt() + (1 - ab[t0]).sqrt())  # x_T as the flow state of its level

    def dc(x0):
        for _ in range(3):
            r = m * (x0 + 1) - 2 * y.double()
            norm = r.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x0 = x0 - 0.7 * m * r / norm
        return x0

    for s, s_next in ((s0, s1), (s1, 0.0)):
        v = flow.velocity(x.float(), torch.full((2,), s)).double()
        x0_hat, eps_hat = x - s * v, x + (1 - s) * v
        x0_y = (1 - s) * x0_hat + s * dc(x0_hat)
        if s_next == 0.0:
            break
        eps_tilde = math.sqrt(s_next) * eps_hat + math.sqrt(1 - s_next) * draw()
        x = (1 - s_next) * x0_y + s_next * eps_tilde
    torch.testing.assert_close(out.double(), (x0_y + 1) / 2, rtol=0, atol=2e-5)  # float32 in the solver


def test_without_data_consistency_the_deterministic_part_is_the_flow_ode(gaussian):
    """dc_steps = 0 and a grid of one step: x_hat = to_image(x0_hat) at the first time, the flow's Tweedie estimate."""
    flow = GaussianFlowModel(gaussian)
    physics, y = _problem(SHAPE)
    out = SOLVERS.get("flowdps").create({"steps": 1, "dc_steps": 0}).solve(y, physics, flow, generators(2, 8))
    ab = float(gaussian.alphas_cumprod[-1])
    s = float(flow_time_of_alpha_bar(torch.tensor(ab, dtype=torch.float64)))
    x = torch.stack([torch.randn(SHAPE, generator=g) for g in generators(2, 8)]) / (ab**0.5 + (1 - ab) ** 0.5)
    x0 = x - s * flow.velocity(x, torch.full((2,), s))
    torch.testing.assert_close(out, (x0 + 1) / 2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("op_name", ["inpaint-box", "deblur-gauss", "sr", "phase-retrieval", "hdr", "jpeg"])
def test_runs_on_fashion32_through_the_flow_view(fashion32, op_name):
    """The DDPM seen as a flow (models/flow.velocity) on linear and nonlinear A (the measurement residual through
    autograd): a finite image batch, one network evaluation per step, and the same result from the same generators."""
    images = load_images("fashion32-test", tuple(fashion32.image_shape), num_images=2).images
    gens = generators(2, 30)
    physics = Operator.create(op_name).build(tuple(images.shape[1:]), gens, torch.device("cpu"))
    y = measure(physics, images, gens)
    solver = SOLVERS.get("flowdps").create({"steps": 6})
    assert solver.unsupported(physics, torch.zeros_like(images)) is None
    x_hat = solver.solve(y, physics, fashion32, generators(2, 40))
    assert x_hat.shape == images.shape and torch.isfinite(x_hat).all()
    assert torch.equal(x_hat, solver.solve(y, physics, fashion32, generators(2, 40)))


def test_the_codes_adjoint_and_pinv_rules_need_a_linear_operator(fashion32):
    images = torch.rand(1, *fashion32.image_shape)
    phase = Operator.create("phase-retrieval").build(tuple(images.shape[1:]), generators(1), torch.device("cpu"))
    for rule in ("adjoint", "pinv"):
        reason = SOLVERS.get("flowdps").create({"residual": rule}).unsupported(phase, images)
        assert reason and "linear" in reason
    box, y = _problem(SHAPE)
    for rule in ("adjoint", "pinv"):
        assert SOLVERS.get("flowdps").create({"residual": rule}).unsupported(box, y) is None


def test_runs_on_a_flow_prior_and_a_batch_gives_each_image_its_own_result(gaussian):
    """On the Gaussian flow model with per-image random masks: image 1 alone gives what it gave in the batch."""
    flow = GaussianFlowModel(gaussian)
    physics, y = _problem(SHAPE, "inpaint-random", n=3, seed=5)
    solver = SOLVERS.get("flowdps").create({"steps": 10})
    batch = solver.solve(y, physics, flow, generators(3, 60))
    gens = generators(3, 5)
    one = Operator.create("inpaint-random", {"sigma_y": 0.025}).build(SHAPE, gens[1:2], torch.device("cpu"))
    torch.testing.assert_close(one.mask, physics.mask[1:2])
    alone = solver.solve(y[1:2], one, flow, generators(3, 60)[1:2])
    torch.testing.assert_close(alone, batch[1:2], rtol=0, atol=1e-6)


# Measured at the defaults (seed 1, n = 32, the 3 x 16 x 16 Gaussian prior of gaussian_truth.fit_model, sigma_y 0.025), R = the solver's MSE over
# the MMSE, VP and flow parametrisation alike: denoise 2.92 (SE 0.05), inpaint-box 1.81 (0.10), inpaint-random 1.80
# (0.04); an exact posterior sample has R = 2. Asserted: R within 1.25 x the measured value (a regression bound,
# not a derived one), and R >= 1 - 3 SE (tests/test_gaussian_mmse.py checks that for every solver).
MEASURED_R = {"denoise": 2.92, "inpaint-box": 1.81, "inpaint-random": 1.80}


@pytest.mark.parametrize("op", sorted(MEASURED_R))
def test_error_near_the_mmse_bound_on_the_gaussian_prior(op):
    model = gm.fit_model()
    p = gm.make_problem(model, op, op, {"sigma_y": 0.025}, 32, 1)
    for prior in (model, GaussianFlowModel(model)):
        s = gm.run_solver("flowdps", SOLVERS.get("flowdps").create(), p, prior, 32)
        assert s.finite == s.n and 1 - 3 * s.se <= s.ratio <= 1.25 * MEASURED_R[op], s
