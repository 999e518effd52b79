"""The nonlinear operators (phase retrieval, HDR): A against the papers' code recomputed here in numpy, its
gradient against central finite differences, the linearity flag, and which solvers apply to them (these two for JPEG
too, whose value and gradient tests/test_jpeg_operator.py checks).

References are the authors' definitions on their [-1, 1] data, written again with numpy (no torch.fft):
DPS's PhaseRetrievalOperator (guided_diffusion/measurements.py:163-172), DAPS's PhaseRetrieval and
HighDynamicRange (forward_operator/__init__.py:300-314, 370-378), RED-diff's H_pinv of both
(utils/degredations.py:551-552, 895-898); the conversion to ipbench's units is y = y_m / 2 for phase
retrieval after DPS, y as it is after DAPS, and y = (y_m + 1) / 2 for HDR (docs/operators.md).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.data import load_images
from ipbench.models import load_model
from ipbench.models.linear_autoencoder import gaussian_latent_prior
from ipbench.operators import OPERATORS, Operator, is_linear, measure, shown_measurement
from ipbench.results.rows import run_rows
from ipbench.results.table import write_tables
from ipbench.solvers import SOLVERS
from tests.conftest import generators
from tests.test_solvers import CONTRACT_SOLVERS, make_fast

F64 = torch.float64
NONLINEAR = ["phase-retrieval", "hdr", "jpeg"]  # jpeg's value and gradient: tests/test_jpeg_operator.py
GRADIENT_SOLVERS = {"dps", "latent-dps", "daps", "latent-daps", "reddiff", "score-ald", "score-ald-ddpm", "deepinv-dps",
                    "flowdps", "d-flow", "pnp-flow", "resample"}  # A through autograd
LINEAR_ONLY = {"ddrm", "ddnm", "pigdm", "diffpir", "repaint", "tikhonov", "hole-fill", "gaussian-filter", "sdedit",
               "ddpm", "tweedie", "ot-ode", "psld"}  # A^T, A^+, an SVD or a mask in their derivation


def build(name: str, params: dict, shape: tuple[int, int, int], n: int = 2):
    return Operator.create(name, params).build(shape, generators(n), "cpu")


def rand64(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- numpy references on the codes' [-1, 1] data -------------------------------------------------------------


def fft2c(a: np.ndarray) -> np.ndarray:
    """fastMRI's fft2c_new (util/fastmri_utils.py:67-89): ifftshift, orthonormal 2-D DFT, fftshift."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a, axes=axes), norm="ortho", axes=axes), axes=axes)


def ifft2c(a: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(a, axes=axes), norm="ortho", axes=axes), axes=axes)


def zero_pad(a: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(pad_h, pad_h), (pad_w, pad_w)])


def dps_phase(x_m: np.ndarray, oversample: float, side: tuple[int, int]) -> np.ndarray:
    """DPS: |fft2c(pad(x_m))| on [-1, 1] data, pad = int(oversample / 8 * side) (the code's side is 256)."""
    pads = [int(oversample / 8.0 * s) for s in side]
    return np.abs(fft2c(zero_pad(x_m, *pads)))


def daps_phase(x_m: np.ndarray, oversample: float, side: tuple[int, int]) -> np.ndarray:
    """DAPS: the same after mapping x_m back to [0, 1] (forward_operator/__init__.py:307)."""
    return dps_phase(x_m * 0.5 + 0.5, oversample, side)


def reddiff_phase_pinv(y_m: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """RED-diff's H_pinv: |ifft2c(y_m)| with the padding cropped off (degredations.py:895-898)."""
    return np.abs(ifft2c(y_m))[..., pad_h:y_m.shape[-2] - pad_h, pad_w:y_m.shape[-1] - pad_w]


# --- phase retrieval ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 24), (1, 17, 23)])
@pytest.mark.parametrize("oversample", [2.0, 1.0, 0.0, 3.3])
@pytest.mark.parametrize("convention", ["dps", "daps"])
def test_phase_retrieval_is_the_codes_fourier_magnitude(shape, oversample, convention) -> None:
    """y = DPS's magnitude of 2 x - 1, halved (convention dps), or DAPS's of the same [-1, 1] input (daps), to
    float64 rounding; on random images of square and non-square sides."""
    x = rand64(2, *shape, seed=1)
    physics = build("phase-retrieval", {"oversample": oversample, "convention": convention}, shape).double()
    x_m = (2 * x - 1).numpy()
    side = shape[1:]
    want = dps_phase(x_m, oversample, side) / 2 if convention == "dps" else daps_phase(x_m, oversample, side)
    got = physics.A(x)
    assert got.dtype == F64 and tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_phase_retrieval_geometry_at_256_px_is_the_codes() -> None:
    """At 256 px oversample 2 pads 64 a side (int(2 / 8 * 256)): y is 384 x 384, and the magnitude of frequency
    0, at the centre (192, 192) after fftshift, is |sum(x - c)| / 384 (orthonormal DFT)."""
    x = rand64(1, 1, 256, 256, seed=2)
    physics = build("phase-retrieval", {}, (1, 256, 256), n=1).double()
    y = physics.A(x)
    assert y.shape == (1, 1, 384, 384)
    assert float(y[0, 0, 192, 192]) == pytest.approx(abs(float((x - 0.5).sum())) / 384, rel=1e-12)


@pytest.mark.parametrize("convention", ["dps", "daps"])
def test_phase_retrieval_keeps_the_energy(convention) -> None:
    """Parseval: the DFT is orthonormal and zero padding adds nothing, so ||A(x)|| = ||x - c|| per image."""
    x = rand64(3, 3, 32, 32, seed=3)
    offset = 0.5 if convention == "dps" else 0.0
    physics = build("phase-retrieval", {"convention": convention}, (3, 32, 32), n=3).double()
    torch.testing.assert_close(physics.A(x).flatten(1).norm(dim=1), (x - offset).flatten(1).norm(dim=1),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("convention", ["dps", "daps"])
def test_phase_retrieval_start_is_reddiffs_pinv(convention) -> None:
    """A_dagger(y) = (H_pinv(y_m) + 1) / 2 with y_m = 2 y (dps: RED-diff's own operator is DPS's), and
    H_pinv(y) + 0 on DAPS's image-unit y (the same formula without the offset)."""
    shape = (3, 32, 32)
    physics = build("phase-retrieval", {"convention": convention}, shape).double()
    y = physics.A(rand64(2, *shape, seed=4)) + 0.01 * torch.randn(2, 3, 48, 48, dtype=F64,
                                                                    generator=torch.Generator().manual_seed(5))
    if convention == "dps":
        want = (reddiff_phase_pinv(2 * y.numpy(), 8, 8) + 1) / 2
    else:
        want = reddiff_phase_pinv(y.numpy(), 8, 8)
    np.testing.assert_allclose(physics.A_dagger(y).numpy(), want, rtol=0, atol=1e-12)


def test_phase_retrieval_picture_is_an_image_of_the_spectrum() -> None:
    """What a run saves as the measurement: log(1 + |y|) over its per-image maximum, averaged from the 48 x 48
    spectrum to 32 x 32 over the bins of adaptive average pooling (torch's "area": output i averages inputs
    floor(48 i / 32) to ceil(48 (i + 1) / 32) - 1), computed here by hand."""
    shape = (1, 32, 32)
    physics = build("phase-retrieval", {}, shape)
    x = rand64(2, *shape, seed=6).float()
    y = measure(physics, x, generators(2))
    shown = shown_measurement(physics, y, x)
    assert shown.shape == x.shape and float(shown.min()) >= 0 and float(shown.max()) <= 1 + 1e-6
    level = np.log1p(np.abs(y.double().numpy()))
    level /= level.reshape(2, -1).max(1)[:, None, None, None]
    bins = [(math.floor(48 * i / 32), math.ceil(48 * (i + 1) / 32)) for i in range(32)]
    want = np.array([[[[level[n, 0, r0:r1, c0:c1].mean() for c0, c1 in bins] for r0, r1 in bins]] for n in range(2)])
    np.testing.assert_allclose(shown.double().numpy(), want, rtol=0, atol=1e-6)


# --- HDR ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2.0, 1.5, 4.0])
def test_hdr_is_the_codes_clipped_exposure(scale) -> None:
    """y = (clip(s x_m, -1, 1) + 1) / 2 with x_m = 2 x - 1 (DAPS; RED-diff's x / 0.5 at s = 2); at s = 2 that
    saturates exactly the pixels outside [1/4, 3/4], and about half of uniform pixels do."""
    shape = (3, 32, 32)
    x = rand64(2, *shape, seed=7)
    physics = build("hdr", {"scale": scale}, shape).double()
    want = (np.clip((2 * x.numpy() - 1) * scale, -1, 1) + 1) / 2
    np.testing.assert_allclose(physics.A(x).numpy(), want, rtol=0, atol=1e-15)
    if scale == 2.0:
        saturated = (x < 0.25) | (x > 0.75)
        y = physics.A(x)
        assert torch.equal(saturated, (y == 0) | (y == 1))
        assert 0.45 < float(saturated.double().mean()) < 0.55  # 6144 pixels: 5 standard errors is 0.032


@pytest.mark.parametrize("scale", [2.0, 3.0])
def test_hdr_start_is_reddiffs_pinv_and_inverts_a(scale) -> None:
    """A_dagger(y) = (y_m / s + 1) / 2 with y_m = 2 y - 1 (RED-diff's H_pinv at s = 2 is y_m * 0.5); it is a
    right inverse on [0, 1] (A(A_dagger(y)) = y) and a left inverse where nothing saturated."""
    shape = (3, 32, 32)
    physics = build("hdr", {"scale": scale}, shape).double()
    y = rand64(2, *shape, seed=8)
    start = physics.A_dagger(y)
    np.testing.assert_allclose(start.numpy(), ((2 * y.numpy() - 1) / scale + 1) / 2, rtol=0, atol=1e-15)
    torch.testing.assert_close(physics.A(start), y, rtol=0, atol=1e-14)
    x = rand64(2, *shape, seed=9)
    inside = (physics.A(x) > 0) & (physics.A(x) < 1)
    assert bool(inside.any())
    torch.testing.assert_close(physics.A_dagger(physics.A(x))[inside], x[inside], rtol=0, atol=1e-14)


# --- gradients --------------------------------------------------------------------------------------------


def central_differences(f, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(x)
    flat, out = x.flatten(), grad.view(-1)
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        out[i] = (f((flat + e).view_as(x)) - f((flat - e).view_as(x))) / (2 * h)
    return grad


CASES = [("phase-retrieval", {}), ("phase-retrieval", {"convention": "daps"}), ("phase-retrieval", {"oversample": 1.0}),
         ("hdr", {}), ("hdr", {"scale": 3.0})]


@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
def test_gradient_of_the_misfit_matches_finite_differences(name, params) -> None:
    """grad_x ||y - A(x)||^2 by autograd (what DPS, RED-diff and Score-ALD use) and deepinv's A_vjp (what DAPS
    uses) against central differences, float64, on every pixel of two random 2 x 8 x 8 images. The images keep
    1e-3 off HDR's kinks, where A has no derivative; HDR's saturated pixels must get gradient 0."""
    shape = (2, 8, 8)
    physics = build(name, params, shape).double()
    x = rand64(2, *shape, seed=10)
    if name == "hdr":
        s = physics.scale
        kinks = torch.tensor([0.5 - 0.5 / s, 0.5 + 0.5 / s], dtype=F64)
        x = torch.where((x[..., None] - kinks).abs().amin(-1) < 1e-3, x + 2e-3, x)
        assert float((x[..., None] - kinks).abs().amin()) > 1e-3
    y = physics.A(rand64(2, *shape, seed=11)) + 0.05 * torch.randn(physics.A(x).shape, dtype=F64,
                                                                    generator=torch.Generator().manual_seed(12))
    misfit = lambda z: float((y - physics.A(z)).square().sum())  # noqa: E731
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((y - physics.A(x_var)).square().sum(), x_var)
    reference = central_differences(misfit, x)
    assert float(reference.abs().max()) > 1e-2  # not a flat misfit
    torch.testing.assert_close(grad, reference, rtol=1e-6, atol=1e-7)
    vjp = physics.A_vjp(x, physics.A(x) - y)  # = grad / 2
    torch.testing.assert_close(-2 * vjp, -reference, rtol=1e-6, atol=1e-7)
    if name == "hdr":
        saturated = (physics.A(x) == 0) | (physics.A(x) == 1)
        assert bool(saturated.any()) and bool((grad[saturated] == 0).all())


# --- linearity and solvers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NONLINEAR)
def test_the_new_operators_are_registered_as_nonlinear(name) -> None:
    physics = build(name, {}, (3, 32, 32))
    assert name in OPERATORS.names() and not is_linear(physics)
    assert not hasattr(physics, "A_adjoint")  # no adjoint a solver could use by mistake


@pytest.fixture(scope="module")
def fashion32():
    return load_model("fashion32")


@pytest.fixture(scope="module")
def fashion_images(fashion32) -> torch.Tensor:
    return load_images("fashion32-test", tuple(fashion32.image_shape), num_images=2).images


@pytest.mark.slow
@pytest.mark.parametrize("op_name", NONLINEAR)
@pytest.mark.parametrize("solver_name", CONTRACT_SOLVERS)
def test_every_solver_gives_a_reason_or_a_finite_result(solver_name, op_name, fashion32, fashion_images) -> None:
    """On each nonlinear operator a registered solver either declines with a reason (its derivation needs a
    linear A) or runs, a few steps on the built-in fashion32 model, to a finite image batch; the solvers that
    take A only through autograd must run, the ones built on A^T, A^+, an SVD or a mask must decline."""
    solver = make_fast(solver_name)
    gens = generators(2, seed=30)
    physics = Operator.create(op_name).build(tuple(fashion_images.shape[1:]), gens, torch.device("cpu"))
    y = measure(physics, fashion_images, gens)
    reason = solver.unsupported(physics, torch.zeros_like(fashion_images))
    canonical = SOLVERS.canonical(solver_name)
    if canonical in LINEAR_ONLY:
        assert isinstance(reason, str) and reason.strip()
        return
    if canonical in GRADIENT_SOLVERS:
        assert reason is None
    if reason is not None:  # a solver not named above (a plugin) may decline too, with a reason
        assert isinstance(reason, str) and reason.strip()
        return
    prior = fashion32  # a latent solver gets a latent prior over the same images (models/linear_autoencoder.py)
    if SOLVERS.get(canonical).prior == "latent":
        prior = gaussian_latent_prior(fashion_images, (1, 16, 16))
    x_hat = solver.solve(y, physics, prior, generators(2, seed=40))
    assert x_hat.shape == fashion_images.shape and torch.isfinite(x_hat).all()


@pytest.mark.slow
def test_a_run_records_n_a_with_the_reason_and_scores_the_rest(tmp_path) -> None:
    """bench run on every nonlinear operator: Tikhonov's rows are skipped with its reason, DPS's are scored, and each
    measurement is saved as an image of the truth's size."""
    spec = build_spec(["tikhonov", "dps"], NONLINEAR, ["dps.steps=3"], model="fashion32", images="fashion32-test",
                      num_images=2)
    result = run(spec, out=tmp_path / "r", progress=False)
    rows = run_rows(result.out)
    table = write_tables(result.out)
    assert [line for line in table.splitlines() if line.startswith("| tikhonov |")][0].endswith("| n/a | - | - |")
    assert len(rows) == 2 * len(NONLINEAR) * 2
    for row in rows:
        if row["solver"] == "tikhonov":
            assert row["status"] == "skipped" and "nonlinear" in row["error"] and math.isnan(float(row["psnr"]))
        else:
            assert row["status"] == "ok" and math.isfinite(row["psnr"])
    from PIL import Image

    for op_name in NONLINEAR:
        pngs = sorted((result.out / "images" / op_name / "measurement").glob("*.png"))
        assert len(pngs) == 2 and all(Image.open(p).size == (32, 32) for p in pngs)
