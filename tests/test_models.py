"""The analytic Gaussian prior and the score-model helpers, checked against independent ground truth.

Ground truth used here, never the package's own output:
- the prior covariance Sigma built densely from its definition (colour basis (x) circulant of the power
  spectrum, with the DFT written out as explicit sums, not torch.fft);
- closed forms: E[eps | x_t], the Gaussian posterior in information form, the denoising posterior
  variance as a spectral average;
- Monte Carlo, with tolerances derived from the sample size (a per-check z-score threshold chosen by a
  Bonferroni bound so that the family-wise false-alarm probability is about 1e-3 under the null).
"""
from __future__ import annotations

import math
import pickle
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch

from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.models import (MODELS, GaussianScoreModel, linear_alphas_cumprod, load_model, save_checkpoint,
                            time_for_sigma, to_image, to_model, tweedie_x0)
from ipbench.models.base import diffuse_measurement
from ipbench.models.registry import CHECKPOINT_FORMAT
from ipbench.operators import Operator, measure
from tests.conftest import ShellPayload

from .conftest import generators

F64 = torch.float64


# --- independent ground truth ----------------------------------------------------------------------------


def z_threshold(num_tests: int, family_alpha: float = 1e-3) -> float:
    """Two-sided z threshold with a Bonferroni correction over `num_tests` (approximately normal) statistics."""
    return NormalDist().inv_cdf(1.0 - family_alpha / (2.0 * num_tests))


def autocovariance(spectrum: torch.Tensor) -> torch.Tensor:
    """r(dy, dx) = (1 / HW) sum_{u,v} S(u, v) exp(2 pi i (u dy / H + v dx / W)), by explicit sums."""
    height, width = spectrum.shape
    ky, kx = torch.arange(height, dtype=F64), torch.arange(width, dtype=F64)
    e_h = torch.exp(2j * math.pi * torch.outer(ky, ky) / height)
    e_w = torch.exp(2j * math.pi * torch.outer(kx, kx) / width)
    r = e_h @ spectrum.to(torch.complex128) @ e_w.T / (height * width)
    # A real covariance needs S(u, v) = S(-u, -v); the imaginary part measures how far that fails.
    assert r.imag.abs().max() <= 1e-12 * max(1.0, float(r.real.abs().max()))
    return r.real


def dense_cov(model: GaussianScoreModel) -> torch.Tensor:
    """Sigma (model units, D x D, D = C*H*W in C, H, W order) from the definition (P (x) I) F^H diag(S) F (P^T (x) I).

    F^H diag(S_k) F is the circulant matrix of the autocovariance r_k: entry (p, q) = r_k(p - q mod (H, W)).
    """
    channels, height, width = model.image_shape
    iy, ix = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    iy, ix = iy.flatten(), ix.flatten()
    dy = (iy[:, None] - iy[None, :]) % height
    dx = (ix[:, None] - ix[None, :]) % width
    blocks = torch.stack([autocovariance(model.spectrum[k])[dy, dx] for k in range(channels)])  # (K, HW, HW)
    basis = model.colour_basis
    sigma = torch.einsum("ck,dk,kpq->cpdq", basis, basis, blocks)
    size = channels * height * width
    return sigma.reshape(size, size)


def smooth_images(n: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """Random smooth, colour-correlated images in [0, 1]: circular low-pass of white noise, mixed across channels."""
    g = torch.Generator().manual_seed(seed)
    channels = shape[0]
    z = torch.randn(n, *shape, generator=g, dtype=F64)
    for _ in range(2):
        z = (z + z.roll(1, -1) + z.roll(-1, -1) + z.roll(1, -2) + z.roll(-1, -2)) / 5
    mix = torch.randn(channels, channels, generator=g, dtype=F64) + 2 * torch.eye(channels, dtype=F64)
    z = torch.einsum("cd,ndhw->nchw", mix, z)
    offsets = torch.linspace(-0.1, 0.1, channels, dtype=F64).view(1, -1, 1, 1)
    return (0.5 + offsets + 0.15 * z / z.std()).clamp(0, 1).float()


@lru_cache(maxsize=None)
def _toy_model(key: str) -> GaussianScoreModel:
    if key == "rgb-4x4":
        return GaussianScoreModel.fit(smooth_images(16, (3, 4, 4), seed=1))
    if key == "grey-6x6":
        return GaussianScoreModel.fit(smooth_images(16, (1, 6, 6), seed=2))
    if key == "rgb-5x7-nonradial":  # odd, non-square, per-frequency spectrum
        return GaussianScoreModel.fit(smooth_images(16, (3, 5, 7), seed=3), radial=False)
    if key == "photos-3x8x8":
        return GaussianScoreModel.fit(load_images("photos", (3, 8, 8)).images)
    if key == "photos-1x7x10":
        return GaussianScoreModel.fit(load_images("photos", (1, 7, 10)).images)
    raise KeyError(key)


@pytest.fixture
def model(request: pytest.FixtureRequest) -> GaussianScoreModel:
    """Indirectly parametrised: a toy model by key, or the shared 3x32x32 `small_model`."""
    if request.param == "photos-3x32x32":
        return request.getfixturevalue("small_model")
    return _toy_model(request.param)


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to(F64)


def sample_model_units(model: GaussianScoreModel, n: int, seed: int) -> torch.Tensor:
    return to_model(model.sample(n, generators(n, seed)).to(F64))


# --- the covariance and eps in closed form ---------------------------------------------------------------


@pytest.mark.parametrize("model", ["rgb-4x4", "grey-6x6", "rgb-5x7-nonradial", "photos-3x32x32"], indirect=True)
def test_eps_matches_dense_closed_form(model: GaussianScoreModel) -> None:
    """eps(x_t, t) = sqrt(1-ab) (ab Sigma + (1-ab) I)^{-1} (x_t - sqrt(ab) mu), per image with its own t."""
    sigma = dense_cov(model)
    size = sigma.shape[0]
    # The model's spectral covariance applied to basis vectors is the same dense matrix.
    basis = torch.eye(size, dtype=F64).view(size, *model.image_shape)
    applied = flat(model.apply_spectral(basis, model.spectrum))
    assert torch.allclose(applied, sigma, rtol=0, atol=1e-12 * float(sigma.abs().max()))

    times = torch.tensor([0, 10, 500, 999])
    g = torch.Generator().manual_seed(7)
    x_t = torch.randn(len(times), *model.image_shape, generator=g, dtype=F64) * 1.5
    got = flat(model.eps(x_t, times))
    mu = model.mean.expand(model.image_shape).reshape(-1)
    for i, t in enumerate(times.tolist()):
        ab = float(model.alphas_cumprod[t])
        matrix = ab * sigma + (1 - ab) * torch.eye(size, dtype=F64)
        want = math.sqrt(1 - ab) * torch.linalg.solve(matrix, flat(x_t)[i] - math.sqrt(ab) * mu)
        assert torch.linalg.norm(got[i] - want) <= 1e-6 * torch.linalg.norm(want), f"t={t}"
    # float32 in, float32 out, same values to float32 precision.
    got32 = model.eps(x_t.float(), times)
    assert got32.dtype == torch.float32
    assert torch.allclose(flat(got32), got, rtol=1e-5, atol=1e-5 * float(got.abs().max()))


@pytest.mark.parametrize("model", ["rgb-4x4", "grey-6x6", "rgb-5x7-nonradial", "photos-3x32x32"], indirect=True)
def test_fitted_spectrum_is_conjugate_symmetric_and_positive(model: GaussianScoreModel) -> None:
    """Sigma is real only if S(u, v) = S(-u, -v); the colour basis is orthogonal; S > 0."""
    s = model.spectrum
    flipped = torch.roll(torch.flip(s, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # index k -> -k mod n
    assert torch.allclose(s, flipped, rtol=1e-12, atol=0)
    assert (s > 0).all()
    p = model.colour_basis
    assert torch.allclose(p.T @ p, torch.eye(p.shape[0], dtype=F64), atol=1e-12)


def test_registered_gaussian_eps_on_fourier_modes() -> None:
    """At full size (no dense matrix possible): a colour-eigenvector times a real Fourier mode is an
    eigenvector of Sigma with eigenvalue S_k(u, v), so eps multiplies it by sqrt(1-ab) / (ab S + 1 - ab)."""
    model = load_model("gaussian")
    channels, height, width = model.image_shape
    iy = torch.arange(height, dtype=F64).view(-1, 1)
    ix = torch.arange(width, dtype=F64).view(1, -1)
    for k, u, v, t in [(0, 0, 0, 0), (1, 3, 5, 100), (2, 17, -40, 500), (0, 128, 128, 999), (2, 1, 0, 250)]:
        mode = torch.cos(2 * math.pi * (u * iy / height + v * ix / width))
        direction = model.colour_basis[:, k].view(channels, 1, 1) * mode
        ab = float(model.alphas_cumprod[t])
        x_t = (math.sqrt(ab) * model.mean + direction).unsqueeze(0)
        s = float(model.spectrum[k, u % height, v % width])
        want = math.sqrt(1 - ab) / (ab * s + 1 - ab) * direction
        got = model.eps(x_t, torch.tensor([t]))[0]
        assert torch.allclose(got, want, rtol=0, atol=1e-9 * float(want.abs().max())), (k, u, v, t)


# --- Monte Carlo: eps is the MMSE estimator, sample has covariance Sigma, fit recovers a model -------------


def _orthogonality_max_z(model: GaussianScoreModel, truth: GaussianScoreModel, t: int, n: int, seed: int) -> float:
    """Largest |z| over E[r] = 0 and E[r (x_t - E x_t)^T] = 0 for r = eps - model.eps(x_t), data from `truth`."""
    g = torch.Generator().manual_seed(seed + 1)
    x0 = sample_model_units(truth, n, seed)
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    ab = float(truth.alphas_cumprod[t])
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    r = flat(eps - model.eps(x_t, torch.full((n,), t)))
    xc = flat(x_t - math.sqrt(ab) * truth.mean)
    # If r is independent of x_t (jointly Gaussian and uncorrelated), r_j xc_k has variance E[r_j^2] E[xc_k^2].
    r2, x2 = r.square().mean(0), xc.square().mean(0)
    z_cross = (r.T @ xc / n) / torch.sqrt(torch.outer(r2, x2) / n)
    z_mean = r.mean(0) / torch.sqrt(r2 / n)
    return float(torch.cat([z_cross.flatten(), z_mean]).abs().max())


@pytest.mark.parametrize("t", [30, 150, 400])
def test_eps_residual_is_orthogonal_to_x_t_monte_carlo(t: int) -> None:
    """Orthogonality principle: r = eps - E[eps | x_t] has mean 0 and is uncorrelated with x_t.

    For an estimator affine in x_t these two conditions characterise E[eps | x_t], so this checks eps
    without using its formula. A model with the spectrum doubled must fail the same check.
    """
    truth = _toy_model("grey-6x6")
    n, size = 20000, 36
    threshold = z_threshold(size * size + size)
    assert _orthogonality_max_z(truth, truth, t, n, seed=100 + t) < threshold
    wrong = GaussianScoreModel(truth.mean.flatten(), truth.colour_basis, 2 * truth.spectrum)
    assert _orthogonality_max_z(wrong, truth, t, n, seed=100 + t) > threshold


def test_sample_covariance_and_mean_match_sigma_monte_carlo() -> None:
    """Empirical mean and covariance of `sample` (model units) against mu and the dense Sigma.

    With the known mean, C_hat_jk = mean((x_j - mu_j)(x_k - mu_k)) has variance (S_jk^2 + S_jj S_kk) / n.
    """
    model = _toy_model("rgb-4x4")
    n = 20000
    x = flat(sample_model_units(model, n, seed=11))
    sigma = dense_cov(model)
    size = sigma.shape[0]
    mu = model.mean.expand(model.image_shape).reshape(-1)
    xc = x - mu
    cov_hat = xc.T @ xc / n
    diag = sigma.diagonal()
    sd_cov = torch.sqrt((sigma.square() + torch.outer(diag, diag)) / n)
    z_cov = ((cov_hat - sigma) / sd_cov).triu()
    z_mean = xc.mean(0) / torch.sqrt(diag / n)
    threshold = z_threshold(size * (size + 1) // 2 + size)
    assert float(z_cov.abs().max()) < threshold
    assert float(z_mean.abs().max()) < threshold
    # Power: the same statistic rejects a covariance 10% off.
    assert float(((cov_hat - 1.1 * sigma) / sd_cov).triu().abs().max()) > threshold


def test_sample_is_per_generator() -> None:
    """Each sample comes from its own generator: batch does not matter, same seed same sample."""
    model = _toy_model("rgb-4x4")
    batch = model.sample(3, generators(3, seed=40))
    for i in range(3):
        assert torch.equal(batch[i], model.sample(1, generators(1, seed=40 + i))[0]), i
    assert torch.equal(batch, model.sample(3, generators(3, seed=40)))
    assert not torch.allclose(batch[0], batch[1])


def test_sample_with_too_few_generators_is_an_error() -> None:
    model = _toy_model("rgb-4x4")
    try:
        out = model.sample(5, generators(3))
    except (ValueError, IndexError):
        return
    assert out.shape[0] == 5


def ring_index(height: int, width: int) -> torch.Tensor:
    """Frequency ring of each (u, v): |f| in cycles per pixel times max(H, W), rounded to the nearest integer
    (fit's documented "rings of equal frequency radius")."""
    fy = torch.tensor([(k + height // 2) % height - height // 2 for k in range(height)], dtype=F64) / height
    fx = torch.tensor([(k + width // 2) % width - width // 2 for k in range(width)], dtype=F64) / width
    return ((fy.view(-1, 1) ** 2 + fx.view(1, -1) ** 2).sqrt() * max(height, width)).round().long()


def test_fit_recovers_a_known_model_monte_carlo() -> None:
    """fit on n samples of a known model (a ring-constant spectrum defined here, a random colour basis with
    well separated channel variances) recovers its mean, colour basis and spectrum within sampling error.

    Mean of channel c: the average over n*H*W correlated pixels, variance e_c^T Sigma e_c / n.
    Spectrum: each estimate averages n values of |F|^2 / S ~ Exp(1) (chi2_1 for self-conjugate
    frequencies), so its relative sd is <= sqrt(2 / n), ring averaging only lowering it.
    """
    shape = (3, 8, 8)
    channels, height, width = shape
    g = torch.Generator().manual_seed(5)
    basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    ring = ring_index(height, width).to(F64)
    scales = torch.tensor([0.05, 0.3, 2.0], dtype=F64).view(3, 1, 1)  # ascending variance, as eigh orders
    spectrum = scales * (1.0 + ring) ** -2.0
    truth = GaussianScoreModel(torch.tensor([-0.3, 0.1, 0.4], dtype=F64), basis, spectrum)
    n = 4000
    samples = truth.sample(n, generators(n, seed=500))
    fitted = GaussianScoreModel.fit(samples, radial=True)
    per_frequency = GaussianScoreModel.fit(samples, radial=False)

    sigma = dense_cov(truth)
    for c in range(channels):
        e = torch.zeros(shape, dtype=F64)
        e[c] = 1.0 / (height * width)
        sd = math.sqrt(float(e.flatten() @ sigma @ e.flatten()) / n)
        assert abs(float(fitted.mean[c] - truth.mean[c])) < 5 * sd, c

    # The basis is recovered up to the sign of each column.
    overlap = (fitted.colour_basis.T @ truth.colour_basis).abs()
    assert torch.allclose(overlap, torch.eye(3, dtype=F64), atol=0.05)
    tolerance = z_threshold(truth.spectrum.numel()) * math.sqrt(2 / n)
    for estimate in (fitted, per_frequency):
        assert float((estimate.spectrum / truth.spectrum - 1).abs().max()) < tolerance
    # Power: a spectrum off by 20% would not pass.
    assert float((fitted.spectrum / (1.2 * truth.spectrum) - 1).abs().max()) > tolerance
    # radial=True is exactly the ring average of the per-frequency estimate.
    flat_ring = ring.long().flatten()
    counts = torch.bincount(flat_ring).to(F64)
    for k in range(channels):
        ring_mean = torch.bincount(flat_ring, weights=per_frequency.spectrum[k].flatten()) / counts.clamp_min(1)
        assert torch.allclose(fitted.spectrum[k], ring_mean[flat_ring].view(height, width), rtol=1e-10, atol=0)


# --- exact posteriors for linear operators -----------------------------------------------------------------

POSTERIOR_OPS = [
    ("inpaint-random", {"p": 0.5}),
    ("inpaint-box", {}),
    ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0, "padding": "reflect"}),
    ("deblur-gauss", {"kernel_size": 3, "sigma": 0.8, "padding": "valid"}),  # fewer measurements than pixels
    ("denoise", {}),
]
POSTERIOR_IDS = ["inpaint-random", "inpaint-box", "deblur-reflect", "deblur-valid", "denoise"]
SIGMA_Y = 0.05


class _Maps:
    """A built operator as float64 maps for the posterior code, and its dense matrix (M x D).

    The matrix is read off the operator as built (float32) by applying it to basis images: exact for
    masks and the identity, and for a blur exact up to float32 rounding of a sum of at most a few taps.
    The posterior code works in float64; masks and the identity accept float64 input, so their own
    A / A_adjoint are used. A float32 Blur filter cannot convolve float64 input (the package bug in
    test_posterior_accepts_operators_as_built), and deepinv's float64 grouped convolution is very slow on
    CPU, so a blur is applied through its matrix instead.
    """

    def __init__(self, physics, image_shape: tuple[int, int, int]) -> None:
        size = int(np.prod(image_shape))
        basis = torch.eye(size, dtype=torch.float32).view(size, *image_shape)
        out = physics.A(basis)
        self.out_shape = tuple(out.shape[1:])
        self.image_shape = image_shape
        self.matrix = flat(out).T.contiguous()  # (M, D) float64
        try:
            physics.A(torch.zeros(1, *image_shape, dtype=F64))
            self.A, self.A_adjoint = physics.A, physics.A_adjoint
        except RuntimeError:
            self.A, self.A_adjoint = self._a, self._a_adjoint

    def _a(self, x: torch.Tensor) -> torch.Tensor:
        return (flat(x) @ self.matrix.T).view(x.shape[0], *self.out_shape)

    def _a_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (flat(y) @ self.matrix).view(y.shape[0], *self.image_shape)


def _physics(name: str, params: dict, shape: tuple[int, int, int], seed: int = 3):
    """(physics as built by Operator.build, its float64 maps)."""
    physics = Operator.create(name, {"sigma_y": SIGMA_Y, **params}).build(shape, generators(1, seed), "cpu")
    return physics, _Maps(physics, shape)


def _dense_posterior(model: GaussianScoreModel, maps: _Maps, y: torch.Tensor, sigma_y: float):
    """Information form, independent of the package's gain form: with L = Sigma^{1/2},
    Cov = L (I + L A^T A L / s^2)^{-1} L and mean = m + Cov A^T (y - A m) / s^2 (image units)."""
    sigma_img = dense_cov(model) / 4.0
    size = sigma_img.shape[0]
    evals, evecs = torch.linalg.eigh(sigma_img)
    root = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T
    a = maps.matrix
    cov = root @ torch.linalg.inv(torch.eye(size, dtype=F64) + root @ a.T @ a @ root / sigma_y**2) @ root
    m = ((model.mean + 1) / 2).expand(model.image_shape).reshape(-1)
    mean = m + (flat(y) - a @ m) @ a @ cov.T / sigma_y**2  # cov symmetric
    return mean, cov


@pytest.mark.parametrize("shape_key", ["photos-3x8x8", "photos-1x7x10"])
@pytest.mark.parametrize(("op_name", "op_params"), POSTERIOR_OPS, ids=POSTERIOR_IDS)
def test_posterior_cg_dense_and_information_form_agree(op_name: str, op_params: dict, shape_key: str) -> None:
    model = _toy_model(shape_key)
    physics, maps = _physics(op_name, op_params, model.image_shape)
    x = model.sample(3, generators(3, seed=21))
    y = measure(physics, x, generators(3, seed=31))
    mean_dense, var_dense = model.posterior_dense(y, maps.A, SIGMA_Y)
    mean_cg = model.posterior_mean(y, maps.A, maps.A_adjoint, SIGMA_Y)
    mean_ref, cov_ref = _dense_posterior(model, maps, y, SIGMA_Y)

    assert mean_dense.shape == var_dense.shape == mean_cg.shape == x.shape
    scale = float(torch.linalg.norm(mean_ref))
    assert float(torch.linalg.norm(flat(mean_dense) - mean_ref)) <= 1e-9 * scale
    assert float(torch.linalg.norm(flat(mean_cg) - mean_ref)) <= 1e-6 * scale
    # The posterior is informative: its mean is not the prior mean (guards against a vacuous comparison).
    prior_mean = ((model.mean + 1) / 2).expand(model.image_shape).reshape(-1)
    assert float(torch.linalg.norm(mean_ref - prior_mean)) > 1e-3 * scale
    # Variance: the same for every image (it does not depend on y), equal to the reference diagonal.
    ref_var = cov_ref.diagonal()
    for i in range(3):
        assert torch.allclose(flat(var_dense)[i], ref_var, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize(("op_name", "op_params"), POSTERIOR_OPS, ids=POSTERIOR_IDS)
def test_posterior_variance_bounds(op_name: str, op_params: dict) -> None:
    """Exact inequalities: posterior variance <= prior variance; on a directly observed pixel it is also
    <= sigma_y^2 (y_i alone is an estimator with that error, and the posterior mean is optimal)."""
    model = _toy_model("photos-3x8x8")
    physics, maps = _physics(op_name, op_params, model.image_shape)
    y = measure(physics, model.sample(1, generators(1, 2)), generators(1, 3))
    _, var = model.posterior_dense(y, maps.A, SIGMA_Y)
    prior_var = (dense_cov(model) / 4.0).diagonal().view(model.image_shape)
    assert (var[0] <= prior_var * (1 + 1e-10)).all()
    assert (var[0] > 0).all()
    if op_name.startswith("inpaint"):
        observed = physics.A(torch.ones(1, *model.image_shape)).bool()[0]
        assert observed.any() and not observed.all()
        assert (var[0][observed] <= SIGMA_Y**2 * (1 + 1e-10)).all()
        assert (var[0][~observed] > SIGMA_Y**2).all()  # unobserved pixels stay uncertain in this prior


def test_posterior_variance_grows_when_observations_are_removed() -> None:
    """Fewer observed pixels (a sub-mask) can only increase every posterior variance."""
    model = _toy_model("photos-3x8x8")
    many, _ = _physics("inpaint-random", {"p": 0.3}, model.image_shape)
    seen = many.A(torch.ones(1, *model.image_shape))
    keep = seen * (torch.rand(seen.shape, generator=torch.Generator().manual_seed(9)) < 0.5)
    fewer = lambda x: keep * x  # noqa: E731
    y = many.A(model.sample(1, generators(1, 4)))
    _, var_many = model.posterior_dense(y, many.A, SIGMA_Y)
    _, var_fewer = model.posterior_dense(fewer(y), fewer, SIGMA_Y)
    assert (var_fewer >= var_many * (1 - 1e-10)).all()
    assert (var_fewer > var_many * (1 + 1e-6)).any()


def test_denoising_posterior_variance_closed_form() -> None:
    """A = I: Cov = s^2 Sigma (Sigma + s^2 I)^{-1}, diagonal in the spectral basis, so the variance of pixel
    (c, i, j) is sum_k P_ck^2 mean_{u,v} [s^2 S_k / (S_k + s^2)] with S_k the image-units spectrum."""
    model = _toy_model("photos-3x8x8")
    physics, _ = _physics("denoise", {}, model.image_shape)
    y = torch.rand(2, *model.image_shape, generator=torch.Generator().manual_seed(1))
    _, var = model.posterior_dense(y, physics.A, SIGMA_Y)
    s_img = model.spectrum / 4.0
    per_k = (SIGMA_Y**2 * s_img / (s_img + SIGMA_Y**2)).mean(dim=(1, 2))
    want = (model.colour_basis.square() @ per_k).view(-1, 1, 1).expand(model.image_shape)
    assert torch.allclose(var[0], want, rtol=1e-9, atol=0)
    assert torch.allclose(var[1], want, rtol=1e-9, atol=0)


@pytest.mark.parametrize(("op_name", "op_params"), POSTERIOR_OPS, ids=POSTERIOR_IDS)
def test_posterior_mean_error_matches_posterior_variance_monte_carlo(op_name: str, op_params: dict) -> None:
    """x from the prior, y = A x + noise: the posterior mean's squared error, averaged over draws, is the
    posterior variance. Per draw ||x_hat - x||^2 has mean tr C and variance 2 tr C^2; per pixel
    (x_hat - x)_j^2 has mean C_jj and variance 2 C_jj^2."""
    model = _toy_model("photos-3x8x8")
    physics, maps = _physics(op_name, op_params, model.image_shape)
    n = 4000
    x = model.sample(n, generators(n, seed=1000))
    y = measure(physics, x, generators(n, seed=9000))
    mean, _ = model.posterior_dense(y, maps.A, SIGMA_Y)
    _, cov = _dense_posterior(model, maps, y[:1], SIGMA_Y)
    err2 = (flat(mean) - flat(x)).square()

    total = err2.sum(1)
    sd_total = math.sqrt(2 * float(torch.trace(cov @ cov)) / n)
    assert abs(float(total.mean()) - float(torch.trace(cov))) < 5 * sd_total

    var = cov.diagonal()
    z = (err2.mean(0) - var) / (math.sqrt(2 / n) * var)
    assert float(z.abs().max()) < z_threshold(var.numel())


@pytest.mark.parametrize("which", ["posterior_dense", "posterior_mean"])
def test_posterior_accepts_operators_as_built_in_float64(which: str) -> None:
    """Operators as Operator.build makes them (float32 kernels) work through `as_float64`."""
    from ipbench.operators import as_float64

    model = _toy_model("photos-3x8x8")
    physics, maps = _physics("deblur-gauss", {"kernel_size": 5, "sigma": 1.0}, model.image_shape)
    y = measure(physics, model.sample(2, generators(2, seed=21)), generators(2, seed=31))
    want, _ = model.posterior_dense(y, maps.A, SIGMA_Y)
    exact = as_float64(physics)
    if which == "posterior_dense":
        got, _ = model.posterior_dense(y, exact.A, SIGMA_Y)
    else:
        got = model.posterior_mean(y, exact.A, exact.A_adjoint, SIGMA_Y)
    assert torch.allclose(got, want, rtol=0, atol=1e-5)


def test_posterior_refuses_bad_inputs() -> None:
    model = _toy_model("photos-3x8x8")
    physics, _ = _physics("denoise", {}, model.image_shape)
    y = torch.rand(1, *model.image_shape)
    for bad in (0.0, -0.1):
        with pytest.raises(UsageError, match="sigma_y"):
            model.posterior_mean(y, physics.A, physics.A_adjoint, bad)
    big = GaussianScoreModel(torch.zeros(3), torch.eye(3), torch.ones(3, 64, 64))
    with pytest.raises(UsageError, match="posterior_mean"):
        big.posterior_dense(torch.rand(1, 3, 64, 64), lambda v: v, 0.1)


# --- time_for_sigma, schedules, unit conversion, Tweedie --------------------------------------------------


def test_linear_schedule_is_ddpm() -> None:
    """alpha_bar = prod(1 - beta), beta linear from 1e-4 to 0.02 over 1000 steps (Ho et al. 2020)."""
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = linear_alphas_cumprod()
    assert ab.dtype == F64 and ab.shape == (1000,)
    assert np.allclose(ab.numpy(), np.cumprod(1 - betas), rtol=1e-12, atol=0)


def test_time_for_sigma_is_nearest_in_log_sigma() -> None:
    ab = linear_alphas_cumprod()
    sig = np.sqrt((1 - ab.numpy()) / ab.numpy())  # model-units noise std of x_t / sqrt(ab)
    assert (np.diff(sig) > 0).all()  # monotone, so no closer neighbour means globally nearest
    for sigma_y in np.geomspace(1e-3, 20.0, 97):
        t = time_for_sigma(ab, float(sigma_y))
        d = np.abs(np.log(sig) - np.log(2 * sigma_y))
        if t > 0:
            assert d[t] <= d[t - 1], sigma_y
        if t < len(sig) - 1:
            assert d[t] <= d[t + 1], sigma_y
    for t in (0, 1, 37, 500, 999):  # exact hits: sigma_y = sig[t] / 2
        assert time_for_sigma(ab, float(sig[t] / 2)) == t
    assert time_for_sigma(ab, 1e-9) == 0
    assert time_for_sigma(ab, 1e6) == 999
    assert time_for_sigma(ab, 0.0) == 0


@pytest.mark.parametrize("bad", [-1e-6, -0.5, float("nan"), float("inf")])
def test_time_for_sigma_rejects_bad_sigma(bad: float) -> None:
    with pytest.raises(ValueError, match="sigma_y"):
        time_for_sigma(linear_alphas_cumprod(), bad)


def test_diffuse_measurement_noise_matches_the_forward_process() -> None:
    """Image noise sigma_y, diffused at t = time_for_sigma(sigma_y), has std 2 sigma_y sqrt(ab[t]) in model
    units, which must equal sqrt(1 - ab[t]) up to the half gap of the discrete log-sigma grid."""
    ab = linear_alphas_cumprod()
    log_sig = 0.5 * torch.log((1 - ab) / ab)
    for sigma_y in (0.005, 0.025, 0.05, 0.1, 0.3):
        t = time_for_sigma(ab, sigma_y)
        a = ab[t].view(1, 1, 1, 1)
        x0 = torch.full((1, 1, 1, 1), 0.5, dtype=F64)
        noise_std = float(diffuse_measurement(x0 + sigma_y, a) - diffuse_measurement(x0, a)) / 1.0
        half_gap = 0.5 * float(max(log_sig[t] - log_sig[max(t - 1, 0)], log_sig[min(t + 1, 999)] - log_sig[t]))
        assert abs(math.log(noise_std) - 0.5 * math.log((1 - float(ab[t])))) <= half_gap + 1e-12, sigma_y


def test_to_model_and_to_image_are_inverse_affine_maps() -> None:
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(to_image(to_model(x)), x, rtol=0, atol=1e-15)
    assert torch.allclose(to_model(to_image(x)), x, rtol=0, atol=1e-15)
    x32 = x.float()
    assert torch.allclose(to_image(to_model(x32)), x32, rtol=0, atol=2e-7)
    ends = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(to_model(ends), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(to_image(torch.tensor([-1.0, 0.0, 1.0])), ends)


def test_tweedie_inverts_the_forward_process_and_gives_the_posterior_mean() -> None:
    """With the true eps, Tweedie returns x0 exactly; with the Gaussian model's eps it returns the closed-form
    E[x0 | x_t] = mu + sqrt(ab) Sigma (ab Sigma + (1-ab) I)^{-1} (x_t - sqrt(ab) mu)."""
    model = _toy_model("rgb-4x4")
    g = torch.Generator().manual_seed(3)
    times = torch.tensor([0, 1, 250, 700, 999])
    x0 = torch.randn(len(times), *model.image_shape, generator=g, dtype=F64)
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    ab = model.alpha_bar(times, x0)
    assert ab.shape == (len(times), 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    assert torch.allclose(tweedie_x0(x_t, eps, ab), x0, rtol=0, atol=1e-9)

    sigma = dense_cov(model)
    size = sigma.shape[0]
    mu = model.mean.expand(model.image_shape).reshape(-1)
    x0_hat = flat(tweedie_x0(x_t, model.eps(x_t, times), ab))
    for i, t in enumerate(times.tolist()):
        a = float(model.alphas_cumprod[t])
        want = mu + math.sqrt(a) * sigma @ torch.linalg.solve(a * sigma + (1 - a) * torch.eye(size, dtype=F64),
                                                              flat(x_t)[i] - math.sqrt(a) * mu)
        assert torch.allclose(x0_hat[i], want, rtol=0, atol=1e-8 * float(want.abs().max())), t


# --- checkpoints and the model registry ----------------------------------------------------------------------


def test_checkpoint_round_trip_gives_identical_eps(small_model: GaussianScoreModel, small_model_path: Path) -> None:
    loaded = load_model(str(small_model_path))
    assert isinstance(loaded, GaussianScoreModel)
    assert loaded.image_shape == small_model.image_shape
    assert not loaded.training
    x_t = torch.randn(3, *small_model.image_shape, generator=torch.Generator().manual_seed(0))
    times = torch.tensor([0, 400, 999])
    assert torch.equal(loaded.eps(x_t, times), small_model.eps(x_t, times))
    assert torch.equal(loaded.alphas_cumprod, small_model.alphas_cumprod)


def test_checkpoint_keeps_a_custom_schedule(tmp_path: Path) -> None:
    source = _toy_model("rgb-4x4")
    custom = GaussianScoreModel(source.mean.flatten(), source.colour_basis, source.spectrum,
                                alphas_cumprod=linear_alphas_cumprod(500, 1e-4, 0.04))
    path = tmp_path / "custom.pt"
    save_checkpoint(custom, path)
    loaded = load_model(str(path))
    assert loaded.num_timesteps == 500
    x_t = torch.randn(1, *custom.image_shape, dtype=F64)
    assert torch.equal(loaded.eps(x_t, torch.tensor([300])), custom.eps(x_t, torch.tensor([300])))


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip-as-checkpoint"])
def test_load_model_refuses_a_malicious_pickle_without_running_it(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if kind == "raw-pickle":
        with open(path, "wb") as f:
            pickle.dump(ShellPayload(marker), f)
    else:  # a well-formed-looking ipbench checkpoint that smuggles the payload in its config
        blob = {"format": CHECKPOINT_FORMAT, "arch": "gaussian", "config": ShellPayload(marker), "state_dict": {}}
        torch.save(blob, path)
    with pytest.raises(UsageError, match="evil.pt"):
        load_model(str(path))
    assert not marker.exists()
    # Control: the payload is live, so the assertion above is not vacuous.
    if kind == "raw-pickle":
        with open(path, "rb") as f:
            pickle.load(f)  # noqa: S301  (deliberate, creates the marker only)
        assert marker.exists()


def test_load_model_refuses_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(UsageError, match="junk.pt"):
        load_model(str(junk))
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(UsageError, match="not an ipbench checkpoint"):
        load_model(str(tensor_file))
    other_dict = tmp_path / "other.pt"
    torch.save({"state_dict": {"mean": torch.zeros(3)}, "format": "someone-else/1"}, other_dict)
    with pytest.raises(UsageError, match="not an ipbench checkpoint"):
        load_model(str(other_dict))
    unknown_arch = tmp_path / "arch.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": "no-such-arch", "config": {}, "state_dict": {}}, unknown_arch)
    with pytest.raises(UsageError, match="no-such-arch"):
        load_model(str(unknown_arch))


@pytest.mark.parametrize("blob", [{"format": CHECKPOINT_FORMAT},
                                  {"format": CHECKPOINT_FORMAT, "arch": "gaussian", "config": {}, "state_dict": {}}],
                         ids=["no-arch", "empty-state"])
def test_load_model_refuses_malformed_ipbench_checkpoints(tmp_path: Path, blob: dict) -> None:
    path = tmp_path / "broken.pt"
    torch.save(blob, path)
    with pytest.raises(UsageError, match="broken.pt"):
        load_model(str(path))


def test_unknown_model_name_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_model("no-such-model")
    message = str(info.value)
    assert "no-such-model" in message
    for name in MODELS.names():
        assert name in message
    with pytest.raises(UsageError, match="no-such-dir"):
        load_model(str(tmp_path / "no-such-dir"))


def test_registered_gaussian_model() -> None:
    assert "gaussian" in MODELS
    model = load_model("gaussian")
    assert isinstance(model, GaussianScoreModel)
    assert model.image_shape == (3, 256, 256)
    assert model.default_image_set == "photos"
    assert not model.training
    assert model.num_timesteps == 1000


def test_registered_gaussian_loads_are_independent() -> None:
    first = load_model("gaussian")
    reference = first.mean.clone()
    first.mean.add_(1.0)
    try:
        second = load_model("gaussian")
        assert torch.equal(second.mean, reference)
    finally:
        first.mean.copy_(reference)  # undo exactly, in case it did leak into the cached source
