"""DDRM (ipbench/solvers/ddrm.py): its time grid, exact limits, its expected error on a Gaussian prior in
closed form, and where it applies."""
from __future__ import annotations

import pytest
import torch
from deepinv.physics import GaussianNoise, Inpainting

from ipbench.checks import gaussian_truth as gm
from ipbench.checks.ddrm_gaussian import error_variance_denoising, output_variance_nothing_seen, whitened_z
from ipbench.data import load_images
from ipbench.operators import Operator, measure, noise_level
from ipbench.solvers import SOLVERS
from ipbench.solvers.ddrm import ddrm_grid, ve_sigma
from tests.conftest import SMALL_SHAPE, generators


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("photos", SMALL_SHAPE, num_images=3).images


def _measured(name: str, x: torch.Tensor, params: dict, seed: int = 0):
    gens = generators(x.shape[0], seed)
    physics = Operator.create(name, params).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


def test_grid_is_the_official_codes_uniform_skip(small_model):
    """runners/diffusion.py: skip = T // steps, times range(0, T, skip) run backwards; the last step goes to ab = 1."""
    grid = ddrm_grid(small_model, 20)
    assert [t for t, _, _ in grid] == list(range(950, -1, -50))
    assert grid[-1][2] == 1.0 and grid[0][2] == grid[1][1]  # each step's target is the next step's time
    assert [t for t, _, _ in ddrm_grid(small_model, 3)] == [999, 666, 333, 0]  # 1000 // 3 = 333: four times
    assert [t for t, _, _ in ddrm_grid(small_model, 5000)] == list(range(999, -1, -1))


def test_one_network_call_and_one_reported_step_per_time(images, small_model):
    physics, y = _measured("inpaint-box", images, {})
    solver = SOLVERS.get("ddrm").create({"steps": 8})
    seen = []
    solver.step_hook = lambda t, x_t, x0: seen.append(t)
    solver.solve(y, physics, small_model, generators(3, 100))
    assert seen == [t for t, _, _ in ddrm_grid(small_model, 8)] == list(range(875, -1, -125))


@pytest.mark.parametrize("op", ["inpaint-box", "inpaint-random"])
def test_noiseless_inpainting_keeps_the_observed_pixels(op, images, small_model):
    """sigma_y = 0: every observed pixel is in the third case (s sigma_t >= 0) down to sigma = 0, where eq. 8
    with eta_b = 1 returns y_bar = y itself (the code's strict inequality would return x0_hat there)."""
    physics, y = _measured(op, images, {"sigma_y": 0.0})
    x_hat = SOLVERS.get("ddrm").create().solve(y, physics, small_model, generators(3, 100))
    known = physics.mask.bool().expand_as(y)
    assert float((x_hat - y)[known].abs().max()) < 1e-5  # float32 round-off of the +-1 unit conversion
    assert float((x_hat - y)[~known].abs().mean()) > 0.01  # the holes are filled, not left at y's zeros


def test_noiseless_super_resolution_fits_the_measurement(images, small_model):
    """Through the separable SVD: with sigma_y = 0 the output's spectral coordinates that A sees are U^T y_m / s,
    so A x_hat = y (bicubic x4 on 32 px: no factor singular value is cut, the smallest is 0.6 of the largest)."""
    physics, y = _measured("sr", images, {"sigma_y": 0.0})
    x_hat = SOLVERS.get("ddrm").create().solve(y, physics, small_model, generators(3, 100))
    assert float((physics.A(x_hat) - y).abs().max()) < 1e-4
    assert float((x_hat - images).abs().mean()) > 1e-3  # not the truth: the null space comes from the prior


def test_denoising_at_the_grids_smallest_noise_is_the_posterior_mean(images, small_model):
    """If 2 sigma_y (model units) is just below sigma_0 = sigma at t = 0, the smallest noise of the grid, every
    step is in the third case: z = y_m + sqrt(sigma_t^2 - 4 sigma_y^2) xi, which at t = 0 is y_m up to noise of
    std sigma_0 sqrt(2e-5) ~ 5e-5; the last step returns x0_hat at t = 0, i.e. Tweedie's E[x | y] for noise
    sigma_0 / 2 (exact for the Gaussian model). Whatever eta and the number of steps."""
    sigma_0 = ve_sigma(float(small_model.alphas_cumprod[0]))
    physics, y = _measured("denoise", images, {"sigma_y": sigma_0 / 2 * (1 - 1e-5)})
    assert 2 * noise_level(physics) <= sigma_0  # after deepinv's float32 rounding of sigma_y
    exact = small_model.posterior_mean(y, physics.A, physics.A_adjoint, sigma_0 / 2).float()
    for params in ({}, {"eta": 0.0, "steps": 7}):
        x_hat = SOLVERS.get("ddrm").create(params).solve(y, physics, small_model, generators(3, 100))
        assert float((x_hat - exact).abs().max()) < 1e-4, params
    assert float((y - exact).abs().mean()) > 1e-3  # the posterior mean is not y itself


# -- the Gaussian prior: DDRM's output distribution in closed form (ipbench/checks/ddrm_gaussian.py) ------
@pytest.mark.parametrize("params", [{}, {"eta": 0.0, "eta_b": 0.7, "steps": 50}])
def test_gaussian_denoising_error_has_the_closed_form_variance(params):
    """x_hat - x on 64 prior draws, whitened by the closed-form variance: within 3 SE of it (SE about 0.3%).
    A wrong unit conversion (y_m off by A 1), case boundary or noise level is off by far more: at the
    defaults the expected MSE is 5.7 times the MMSE, with 100 steps 1.7 times."""
    model = gm.fit_model()
    p = gm.make_problem(model, "denoise", "denoise", {"sigma_y": 0.025}, 64, 1)
    gens = [gm.solver_generator(p.seed, i, p.label, "ddrm") for i in p.ids]
    x_hat = SOLVERS.get("ddrm").create(params).solve(p.y, p.physics, model, gens)
    s = {"steps": 20, "eta": 0.85, "eta_b": 1.0, **params}
    variance = error_variance_denoising(model, s["steps"], s["eta"], s["eta_b"], 0.025)
    z = whitened_z(model, 2 * (x_hat.double() - p.x.double()), variance)
    assert abs(z) < 3, z


@pytest.mark.parametrize("eta", [0.85, 0.0])
def test_output_with_nothing_seen_has_the_closed_form_variance(eta):
    """The first case alone (a mask of zeros), 64 outputs whitened by the closed form: within 3 SE of it.
    At eta = 0 the start's noise is carried to the output, so this also checks the start's scale."""
    model = gm.fit_model()
    physics = Inpainting(img_size=gm.SHAPE, mask=torch.zeros(1, 1, *gm.SHAPE[1:]))
    physics.noise_model = GaussianNoise(sigma=0.025)
    ids = gm.image_ids(64)
    gens = [gm.solver_generator(1, i, "nothing-seen", "ddrm") for i in ids]
    y = torch.zeros(len(ids), *gm.SHAPE)  # A x = 0: y carries nothing DDRM can use
    x_hat = SOLVERS.get("ddrm").create({"eta": eta}).solve(y, physics, model, gens)
    z = whitened_z(model, 2 * x_hat.double() - 1 - model.mean, output_variance_nothing_seen(model, 20, eta))
    assert abs(z) < 3, z


@pytest.mark.parametrize("op,supported", [("deblur-motion", False), ("sr", True), ("deblur-gauss", True),
                                          ("inpaint-box", True), ("inpaint-random", True), ("denoise", True)])
def test_applies_where_the_operator_has_an_svd(op, supported, images):
    physics, _ = _measured(op, images, {})
    reason = SOLVERS.get("ddrm").create().unsupported(physics, torch.zeros_like(images))
    if supported:
        assert reason is None
    else:
        assert isinstance(reason, str) and "SVD" in reason
