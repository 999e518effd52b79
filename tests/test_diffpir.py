"""DiffPIR (ipbench/solvers/diffpir.py): its time grid, its data step in closed form and by CG, the measurement
kept for noiseless masks, and the relation of its lambda to deepinv's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from deepinv.optim import L2
from deepinv.physics import Physics
from deepinv.sampling import DiffPIR as DeepinvDiffPIR

from ipbench.linalg import conjugate_gradient
from ipbench.operators import Operator, measure
from ipbench.operators.svd import operator_svd
from ipbench.solvers import SOLVERS
from ipbench.solvers.diffpir import SIGMA_FLOOR, data_step, quad_times
from tests.conftest import SMALL_SHAPE, generators

SHAPE = (3, 16, 16)


def _problem(name: str, params: dict | None = None, n: int = 3, shape=SHAPE):
    gens = generators(n, 5)
    physics = Operator.create(name, params or {}).build(shape, gens, torch.device("cpu"))
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(3))
    return physics, x, measure(physics, x, gens)


@pytest.mark.parametrize("steps", [2, 3, 7, 20, 100, 1000])
def test_quad_grid_is_the_official_codes(steps):
    """The code's grid: seq = int(sqrt(linspace(0, T^2, steps))), seq[-1] -= 1, t = T - 1 - seq (numpy, as
    written there), which deepinv's DiffPIR also computes (in float32 torch)."""
    seq = [int(s) for s in np.sqrt(np.linspace(0, 1000**2, steps))]
    seq[-1] -= 1
    assert quad_times(1000, steps) == [999 - s for s in seq]
    deepinv_seq = DeepinvDiffPIR(model=None, data_fidelity=L2(), max_iter=steps).seq
    assert quad_times(1000, steps) == [999 - int(s) for s in deepinv_seq]
    assert quad_times(1000, 100)[:3] == [999, 899, 857] and quad_times(1000, 100)[-2:] == [5, 0]
    assert quad_times(1000, 1) == [999]


def _normal_solution(physics, y, z, rho):
    """(A^T A + rho I)^-1 (A^T y + rho z) in float64 by CG to 1e-10 (an independent reference)."""
    y, z = y.double(), z.double()
    physics = physics.to(torch.float64)
    normal = lambda v: physics.A_adjoint(physics.A(v)) + rho * v  # noqa: E731
    return conjugate_gradient(normal, physics.A_adjoint(y) + rho * z, tol=1e-10, max_iter=5000)


@pytest.mark.filterwarnings("ignore:Casting complex values")  # the float64 copy of deepinv's Downsampling
@pytest.mark.parametrize("name, params", [
    ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0}),  # reflect padding: an FFT would not be exact
    ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0, "padding": "circular"}),
    ("sr", {"factor": 2}),
    ("inpaint-random", {}),
    ("denoise", {}),
])
@pytest.mark.parametrize("rho", [1e-3, 0.1, 10.0])
def test_closed_form_data_step_is_the_normal_equations_solution(name, params, rho):
    """The SVD form V (s U^T y + rho V^T z) / (s^2 + rho) solves (A^T A + rho I) x = A^T y + rho z: it equals a
    float64 CG solve of those equations to float32 round-off (amplified by at most 1 / rho for small rho)."""
    physics, x, y = _problem(name, params)
    z = torch.rand_like(x)
    svd = operator_svd(physics, torch.zeros_like(x))
    assert svd is not None
    got = data_step(physics, y, svd)(z, rho)
    expected = _normal_solution(physics, y, z, rho)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-5 * max(1.0, 1e-2 / rho))


def test_mask_data_step_is_the_codes_formula():
    """For masks the closed form is the code's (mask y + rho x0) / (mask + rho), elementwise."""
    physics, x, y = _problem("inpaint-box")
    z = torch.rand_like(x)
    got = data_step(physics, y, operator_svd(physics, z))(z, 0.3)
    torch.testing.assert_close(got, (physics.mask * y + 0.3 * z) / (physics.mask + 0.3), rtol=0, atol=1e-6)


def test_cg_data_step_for_motion_blur_solves_the_normal_equations():
    """Motion blur has no SVD here; the CG step (warm-started at x0) meets its 1e-4 relative tolerance
    on the correction's equation, and agrees with the float64 solution where the system is well conditioned."""
    physics, x, y = _problem("deblur-motion")
    z = torch.rand_like(x)
    assert operator_svd(physics, z) is None
    got = data_step(physics, y, None)(z, 1.0)
    torch.testing.assert_close(got.double(), _normal_solution(physics, y, z, 1.0), rtol=0, atol=1e-4)


def test_deepinv_lambda_is_half_of_ours():
    """deepinv's DiffPIR takes prox_{gamma f}, f = ||A x - y||^2 / 2, with gamma = 1 / (2 rho): that is
    argmin ||A x - y||^2 + 2 rho ||x - z||^2, our (and the official code's) step with 2 rho. So deepinv's
    lambda L equals lambda 2 L here (benchmarks/deepinv_diffpir_check.py relies on it)."""
    for name in ("inpaint-random", "deblur-gauss"):
        physics, x, y = _problem(name)
        z = torch.rand_like(x)
        ours = data_step(physics, y, operator_svd(physics, z))(z, 2 * 0.5)
        theirs = L2().prox(z, y, physics, gamma=1 / (2 * 0.5))
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-3 if name == "deblur-gauss" else 1e-6)


@pytest.mark.filterwarnings("ignore:Casting complex values")  # deepinv's Downsampling holds complex buffers
@pytest.mark.parametrize("name, atol", [("inpaint-box", 1e-4), ("denoise", 1e-4), ("deblur-gauss", 2e-3), ("sr", 2e-3)])
def test_same_trajectory_as_deepinv_with_half_the_lambda(small_model, name, atol):
    """With zeta = 0 the only draw is x_T. deepinv's DiffPIR started at x_init = 0.5 with sigma = 0 draws
    x_T = sqrt(ab_T) sigma_bar_T z = sqrt(1 - ab_T) z, z the first draw of the global generator; ipbench's
    x_T is z from a generator seeded alike. From there, ipbench (lambda 14) and deepinv (lambda_ 7) must
    pass through the same states: ipbench's state at t = 0 (what deepinv returns; ipbench goes on to
    return its last data step) equals deepinv's output up to float32 round-off and, for blur and SR,
    deepinv's CG data step (relative tolerance 1e-4) where ipbench's is exact."""
    from ipbench.models.deepinv_adapter import ScoreModelDenoiser

    physics, x, y = _problem(name, n=1, shape=SMALL_SHAPE)
    torch.manual_seed(11)
    sampler = DeepinvDiffPIR(model=ScoreModelDenoiser(small_model), data_fidelity=L2(), sigma=0.0, max_iter=20,
                             zeta=0.0, lambda_=7.0)
    theirs = sampler(y, physics, x_init=torch.full_like(x, 0.5))
    solver = SOLVERS.get("diffpir").create({"steps": 20, "zeta": 0.0, "lambda_": 14.0})
    states = []
    solver.step_hook = lambda t, x_t, x0: states.append(x_t)
    solver.solve(y, physics, small_model, [torch.Generator().manual_seed(11)])
    torch.testing.assert_close((states[-1] + 1) / 2, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("lambda_", [7.0, 1e-3])
def test_noiseless_inpainting_keeps_observed_pixels(small_model, lambda_):
    """With sigma_y = 0 (the code's floor sigma_n = 0.001), the output is the last data step,
    x = (y + rho_0 z) / (1 + rho_0) on observed pixels, with z the clipped x0 in [0, 1] and y in [0, 1]:
    so |x - y| <= rho_0 / (1 + rho_0), rho_0 = lambda sigma_n^2 ab_0 / (1 - ab_0) (0.065 at lambda 7,
    1e-5 at lambda 1e-3). The hole is filled from the prior, not left at y's zeros."""
    gens = generators(3, 0)
    physics = Operator.create("inpaint-box", {"sigma_y": 0.0}).build(SMALL_SHAPE, gens, torch.device("cpu"))
    x = small_model.sample(3, generators(3, 9)).clamp(0, 1)
    y = measure(physics, x, gens)
    x_hat = SOLVERS.get("diffpir").create({"steps": 20, "lambda_": lambda_}).solve(y, physics, small_model, generators(3, 1))
    ab0 = float(small_model.alphas_cumprod[0])
    rho0 = lambda_ * SIGMA_FLOOR**2 * ab0 / (1 - ab0)
    seen = physics.mask.bool().expand_as(y)
    assert float((x_hat - y)[seen].abs().max()) <= rho0 / (1 + rho0) + 1e-6
    assert float(x_hat[~seen].std()) > 0.05


def test_each_step_is_reported_and_the_output_is_the_last_x0(small_model):
    """report_step sees every grid time in order; the output is the last step's data-consistent x0_hat."""
    physics, x, y = _problem("deblur-gauss", shape=SMALL_SHAPE)
    solver = SOLVERS.get("diffpir").create({"steps": 8})
    seen = []
    solver.step_hook = lambda t, x_t, x0: seen.append((t, x0))
    x_hat = solver.solve(y, physics, small_model, generators(3, 2))
    assert [t for t, _ in seen] == quad_times(small_model.num_timesteps, 8)
    torch.testing.assert_close(x_hat, (seen[-1][1] + 1) / 2, rtol=0, atol=0)


def test_rho_follows_the_noise_level(small_model):
    """rho_t = lambda sigma_n^2 / sigma_bar_t^2: at the first step (sigma_bar ~ 156) rho is ~1e-7, so the
    step's x0_hat nearly solves A x = y; checked on denoising, where x0_hat = (y + rho x0) / (1 + rho)."""
    physics, x, y = _problem("denoise", shape=SMALL_SHAPE)
    solver = SOLVERS.get("diffpir").create({"steps": 4, "zeta": 0.0})
    seen = []
    solver.step_hook = lambda t, x_t, x0: seen.append(x0)
    solver.solve(y, physics, small_model, generators(3, 2))
    ab = float(small_model.alphas_cumprod[-1])
    rho = 7.0 * 0.025**2 * ab / (1 - ab)
    assert rho < 1e-6
    assert float(((seen[0] + 1) / 2 - y).abs().max()) < 2 * rho / (1 + rho) + 1e-6


def test_declares_non_linear_operators_unsupported():
    solver = SOLVERS.get("diffpir").create()
    like = torch.zeros(1, *SHAPE)
    assert "linear operator" in solver.unsupported(Physics(A=lambda v: v.square()), like)
    for name in ("inpaint-box", "deblur-gauss", "deblur-motion", "sr", "denoise"):
        assert solver.unsupported(_problem(name)[0], like) is None
