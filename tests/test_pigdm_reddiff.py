"""PiGDM and RED-diff: the measurement-space inverse, the guidance step and the Adam step against dense
references on small images, the network never differentiated by RED-diff, and the measurement honoured."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.data import load_images
from ipbench.models import GaussianScoreModel
from ipbench.models.base import ScoreModel, to_image, to_model, tweedie_x0
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.pigdm import PINV_RCOND, RegularizedInverse
from ipbench.solvers.base import randn_per_image
from tests.conftest import SMALL_SHAPE, generators

TINY = (3, 8, 8)  # dense matrices of A and of the Jacobian are 192 x 192
SHAPE12 = (3, 12, 12)


def build(op_name: str, shape, n: int = 2, seed: int = 0, **params):
    gens = generators(n, seed)
    return Operator.create(op_name, params).build(shape, gens, torch.device("cpu")), gens


def dense(fn, n: int, shape) -> torch.Tensor:
    """(n, m, d) float64: column k of image i's matrix is fn applied to the k-th unit image."""
    d = math.prod(shape)
    cols = []
    for k in range(d):
        e = torch.zeros(n, d)
        e[:, k] = 1
        cols.append(fn(e.view(n, *shape)).reshape(n, -1).double())
    return torch.stack(cols, dim=-1)


# -- the measurement-space inverse u = A^T (A A^T + c I)^-1 r ------------------------------------------------
@pytest.mark.parametrize("op_name,params", [("inpaint-box", {}), ("inpaint-random", {}), ("denoise", {}),
                                            ("deblur-gauss", {}), ("sr", {"factor": 2}), ("deblur-motion", {})])
def test_inverse_matches_the_dense_solve(op_name, params):
    """Closed form (SVD) or CG, against A^T (A A^T + c I)^-1 r from dense float64 matrices, per image; at
    c = 0 against the dense pseudo-inverse (singular values below PINV_RCOND of the largest dropped)."""
    physics, gens = build(op_name, SHAPE12, **params)
    like = torch.zeros(2, *SHAPE12)
    inverse = RegularizedInverse(physics, like)
    assert (inverse.svd is None) == (op_name == "deblur-motion")  # motion blur is not separable
    r = torch.randn(physics.A(like).shape, generator=torch.Generator().manual_seed(3))
    A = dense(physics.A, 2, SHAPE12)
    c = 0.05
    ref = A.transpose(1, 2) @ torch.linalg.solve(A @ A.transpose(1, 2) + c * torch.eye(A.shape[1], dtype=A.dtype),
                                                 r.reshape(2, -1, 1).double())
    for got in (inverse(r, c), inverse.solve_cg(r, c)):  # both paths (one of them CG for motion)
        err = (got.reshape(2, -1, 1).double() - ref).norm(dim=(1, 2)) / ref.norm(dim=(1, 2))
        assert float(err.max()) < 1e-4, err
    if inverse.svd is not None:
        pinv = torch.linalg.pinv(A, rtol=PINV_RCOND)
        ref0 = pinv @ r.reshape(2, -1, 1).double()
        err = (inverse(r, 0.0).reshape(2, -1, 1).double() - ref0).norm(dim=(1, 2)) / ref0.norm(dim=(1, 2))
        assert float(err.max()) < 1e-4, err


# -- PiGDM ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_model() -> GaussianScoreModel:
    """The photos' Gaussian prior on 8 x 8 images with a 10-step schedule ending at ab = 0.3: a step from
    T-1 then carries a guidance term far above float32 round-off (at ab = 4e-5 it would not)."""
    fitted = GaussianScoreModel.fit(load_images("photos", TINY).images)
    return GaussianScoreModel(fitted.mean.flatten(), fitted.colour_basis, fitted.spectrum,
                              alphas_cumprod=torch.linspace(0.99, 0.3, 10, dtype=torch.float64))


def test_pigdm_step_is_the_guidance_formula(short_model):
    """The first of 3 steps (t = 9 to s = 4, eta = 0), read through the step hook: x_s = sqrt(ab_s) x0_hat +
    sqrt(1 - ab_s) eps_hat + sqrt(ab_s ab_t) J^T A^T (A A^T + 4 sigma_y^2 / (1 - ab_t))^-1 2 (y - A
    to_image(x0_hat)) in model units, J = d x0_hat / d x_t; A and J dense, float64, from x_T =
    sqrt(ab_t) A^+ (2 y - A 1) + sqrt(1 - ab_t) z."""
    sigma_y = 0.05
    physics, gens = build("inpaint-random", TINY, n=2, sigma_y=sigma_y)
    x = short_model.sample(2, generators(2, 5)).clamp(0, 1)
    y = measure(physics, x, gens)
    solver = SOLVERS.get("pigdm").create({"steps": 3, "eta": 0.0})
    states = {}
    solver.step_hook = lambda t, x_t, x0: states.setdefault(t, x_t)
    solver.solve(y, physics, short_model, generators(2, 9))
    assert sorted(states) == [0, 4, 9]

    ab_t, ab_s = (float(short_model.alphas_cumprod[t]) for t in (9, 4))
    A = dense(physics.A, 2, TINY)
    z = randn_per_image(x.shape, generators(2, 9), "cpu")
    start = (ab_t**0.5 * (to_model(y) * physics.mask) + (1 - ab_t) ** 0.5 * z).double()  # A^+ of a mask
    tt = torch.full((2,), 9, dtype=torch.long)
    x0_of = lambda xt: tweedie_x0(xt, short_model.eps(xt, tt), ab_t)  # noqa: E731  (float64 in, float64 out)
    x0 = x0_of(start).reshape(2, -1, 1)
    J = dense(lambda v: x0_of(start + v.double()) - x0_of(start), 2, TINY)  # x0_hat is affine in x_t
    residual = 2 * (y.reshape(2, -1, 1).double() - A @ ((x0 + 1) / 2))
    gram = A @ A.transpose(1, 2) + 4 * sigma_y**2 / (1 - ab_t) * torch.eye(A.shape[1], dtype=A.dtype)
    guidance = (ab_s * ab_t) ** 0.5 * J.transpose(1, 2) @ A.transpose(1, 2) @ torch.linalg.solve(gram, residual)
    eps_hat = (start.reshape(2, -1, 1) - ab_t**0.5 * x0) / (1 - ab_t) ** 0.5
    expected = ab_s**0.5 * x0 + (1 - ab_s) ** 0.5 * eps_hat + guidance
    assert float(guidance.abs().max()) > 0.05  # the guidance is what is being checked
    torch.testing.assert_close(states[4].double(), expected.reshape(x.shape), rtol=0, atol=1e-5)


def test_pigdm_noiseless_inpainting_keeps_the_observed_pixels(small_model):
    """sigma_y = 0: the last steps add J^T A^+ (y - A x0_hat), and J ~ I on the components the prior allows,
    so observed pixels end near y. Measured when written: mean error 0.001 (max 0.006) on the observed
    pixels, 0.17 in the hole; DPS 0.06 on the observed pixels."""
    x = small_model.sample(3, generators(3, 21))  # unclamped: a clamped image has components the prior has not
    physics, gens = build("inpaint-box", SMALL_SHAPE, n=3, sigma_y=0.0)
    y = measure(physics, x, gens)
    x_hat = SOLVERS.get("pigdm").create({"steps": 50}).solve(y, physics, small_model, generators(3, 1))
    seen = physics.mask.bool().expand_as(x)
    error = (x_hat - x).abs()
    assert float(error[seen].mean()) < 3e-3 and float(error[seen].max()) < 0.02
    assert float(error[~seen].mean()) > 0.05  # the hole is inferred, not copied


# -- RED-diff -------------------------------------------------------------------------------------------------
class GradientWatch(ScoreModel):
    """Records, per network call, whether autograd could see it (grad mode on and an input needing grad)."""

    def __init__(self, inner: ScoreModel) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        self.inner = inner
        self.tracked: list[bool] = []

    def eps(self, x_t, t):
        self.tracked.append(torch.is_grad_enabled() and x_t.requires_grad)
        return self.inner.eps(x_t, t)


def test_reddiff_never_differentiates_the_network_and_pigdm_does(small_model):
    physics, gens = build("inpaint-box", SMALL_SHAPE, n=2)
    y = measure(physics, small_model.sample(2, generators(2, 4)).clamp(0, 1), gens)
    for name, tracked, calls in (("reddiff", False, 5), ("pigdm", True, 6)):
        watch = GradientWatch(small_model)
        SOLVERS.get(name).create({"steps": 6}).solve(y, physics, watch, generators(2))
        assert watch.tracked == [tracked] * calls, name  # one call per step (RED-diff skips its last)


def test_reddiff_without_regulariser_converges_to_the_pseudo_inverse(small_model):
    """lambda = 0: mu starts at A^+ y, the least-squares minimiser. The hole gets no gradient (A^T zeroes it)
    and stays grey (0 in model units); on the observed pixels Adam's normalised steps turn round-off
    gradients into steps of up to lr (0.03 off after 2 Adam steps, measured), which its momentum brings back
    to y. For blur (full rank) A x_hat returns to y."""
    x = small_model.sample(2, generators(2, 8)).clamp(0, 1)
    solver = SOLVERS.get("reddiff").create({"steps": 100, "lam": 0.0})
    physics, gens = build("inpaint-box", SMALL_SHAPE)
    y = measure(physics, x, gens)
    x_hat = solver.solve(y, physics, small_model, generators(2))
    seen = physics.mask.bool().expand_as(x)
    assert float((x_hat - y)[seen].abs().max()) < 5e-3
    assert bool((x_hat[~seen] == 0.5).all())
    physics, gens = build("deblur-gauss", SMALL_SHAPE)
    y = measure(physics, x, gens)
    x_hat = solver.solve(y, physics, small_model, generators(2))
    assert float((physics.A(x_hat) - y).abs().max()) < 5e-3


def test_reddiff_first_step_is_adams_sign_step(small_model):
    """steps=2 (one Adam step, at T-1; the last time's is skipped): Adam's first step is lr g / (|g| + 1e-8)
    (bias-corrected), with g = -A^T e / m + lambda w_t (eps_hat - eps) / d per image at x0 = mu0 + sigma_x0 z,
    e = 2 (y - A to_image(x0)) (m entries in y, d in mu), w_t = sqrt(1 - ab) / sqrt(ab). SR (m = d / 4),
    sigma_x0 > 0 (else the measurement term's gradient vanishes at mu0 = A^+ y) and a small lambda make
    both terms decide signs."""
    x = small_model.sample(2, generators(2, 12)).clamp(0, 1)
    physics, gens = build("sr", SMALL_SHAPE, factor=2)
    y = measure(physics, x, gens)
    solver = SOLVERS.get("reddiff").create({"steps": 2, "lam": 0.002, "sigma_x0": 0.1})
    x_hat = solver.solve(y, physics, small_model, generators(2, 30))

    t = small_model.num_timesteps - 1
    ab = float(small_model.alphas_cumprod[t])
    like = torch.zeros_like(x)
    mu0 = RegularizedInverse(physics, like)(2 * y - physics.A(like + 1), 0.0)
    draws = generators(2, 30)
    x0 = mu0 + 0.1 * randn_per_image(x.shape, draws, "cpu")
    noise = randn_per_image(x.shape, draws, "cpu")
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * noise
    eps_hat = small_model.eps(x_t, torch.full((2,), t, dtype=torch.long))
    e = 2 * (y - physics.A(to_image(x0)))
    m, d = y[0].numel(), x[0].numel()
    g = -physics.A_adjoint(e) / m + solver.lam * ((1 - ab) / ab) ** 0.5 * (eps_hat - noise) / d
    expected = to_image(mu0 - solver.lr * g / (g.abs() + 1e-8))
    torch.testing.assert_close(x_hat, expected, rtol=0, atol=1e-5)


# -- the measurement is honoured (Gaussian prior, at defaults) --------------------------------------------------
@pytest.mark.parametrize("name", ["pigdm", "reddiff"])
def test_fit_to_the_measurement_at_defaults(name):
    """rho = ||A x_hat - y|| / (sigma_y sqrt(m)) on inpaint-random, the band of
    tests/test_gaussian_mmse.py::test_posterior_samplers_agree_with_the_measurement: no closer than E[x|y]
    less 3 SE, no farther than 1.5. Measured when written: pigdm 0.79, reddiff 0.53; E[x|y] 0.50."""
    torch.set_num_threads(1)
    model = gm.fit_model()
    p = gm.make_problem(model, "inpaint-random", "inpaint-random", {"sigma_y": 0.025}, 32, 1)
    s = gm.run_solver(name, SOLVERS.get(name).create(), p, model)
    mean_fit = gm.residual_ratio(p, p.posterior_mean)
    low = float(mean_fit.mean()) - 3 * math.hypot(float(mean_fit.std()) / math.sqrt(32), s.residual_se)
    assert low <= s.residual <= 1.5, (s, low)
