"""CT (`ct`) and MRI (`mri`): A against references recomputed here, the adjoint identity, the exact SVDs, the
per-image masks, the pictures a run saves, the refusals, and a tiny benchmark run on both.

References are independent of the code under test: MRI's k-space is fastMRI's centred orthonormal DFT written
with numpy (no torch.fft, no deepinv); CT's sinogram of a Gaussian blob is its line integral in closed form,
sqrt(2 pi) s exp(-(t - t0)^2 / (2 s^2)) with t0 = u0 cos(theta) - w0 sin(theta) (u0 the blob's column offset,
w0 its row offset, from the image centre), in units of the image side (docs/operators.md).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deepinv.physics import Tomography
from PIL import Image

from ipbench.checks.solver_check import check_solver
from ipbench.cli import cli
from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.linear_autoencoder import gaussian_latent_prior
from ipbench.operators import Operator, back_project, measure, measurement_image, shown_measurement, visible_mask
from ipbench.operators.ct import DENSE_SVD_MAX_PIXELS, _SVD_CACHE
from ipbench.operators.svd import DenseSVD, EigenbasisSVD, operator_svd, svd_problem
from ipbench.results.rows import run_rows
from ipbench.solvers import SOLVERS
from tests.conftest import generators
from tests.test_nonlinear_operators import fft2c, ifft2c
from tests.test_solvers import CONTRACT_SOLVERS, make_fast

F64 = torch.float64
SPECTRAL = ("ddrm", "pigdm", "diffpir")  # solvers that use an SVD where one exists


def build(name: str, params: dict, shape: tuple[int, int, int], gens: list[torch.Generator] | None = None):
    return Operator.create(name, params).build(shape, gens or generators(2), "cpu")


def rel_adjoint_gap(physics, x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """|<A x, u> - <x, A^T u>| / (||A x|| ||u||) per image, u random."""
    ax = physics.A(x)
    u = torch.randn(ax.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    lhs = (ax.to(F64) * u.to(F64)).flatten(1).sum(1)
    rhs = (x.to(F64) * physics.A_adjoint(u).to(F64)).flatten(1).sum(1)
    return (lhs - rhs).abs() / (ax.to(F64).flatten(1).norm(dim=1) * u.to(F64).flatten(1).norm(dim=1))


# --- MRI -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", ["random", "gaussian", "equispaced"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 17, 23), (1, 16, 24)])
def test_mri_is_the_masked_centred_orthonormal_fft_per_channel(shape, mask) -> None:
    """y[:, 0] + i y[:, 1] = M fft2c(x_c) for every channel c, with one mask per image shared by the channels,
    to float64 round-off (numpy's FFT against torch's)."""
    physics = build("mri", {"mask": mask}, shape).double()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = physics.A(x)
    assert y.shape == (2, 2, *shape)
    masks = physics.mask.numpy()  # (N, 1, H, W)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert (masks == masks[..., :1, :]).all()  # whole columns of k-space
    expected = masks * fft2c(x.numpy())
    got = y[:, 0].numpy() + 1j * y[:, 1].numpy()
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("width", [32, 16, 23])
def test_mri_default_mask_is_fastmris_count_with_the_centre(width) -> None:
    """acceleration 4, centre fraction 0.08: int(0.08 W) centre columns around frequency 0 (index W // 2) and
    W // 4 columns in all, for every image."""
    physics = build("mri", {}, (1, 8, width), generators(4))
    columns = physics.mask[:, 0, 0]  # (N, W)
    assert (columns.sum(1) == width // 4).all()
    centre = int(0.08 * width)
    first = width // 2 - centre // 2
    assert (columns[:, first:first + centre] == 1).all()


def test_mri_masks_are_per_image_and_independent_of_the_batch() -> None:
    """Image b's mask comes from its own generator: built in a batch [g_a, g_b, g_c] or alone from [g_b], the
    same; the images of a batch get different masks."""
    shape = (1, 32, 32)
    batch = build("mri", {}, shape, generators(3, seed=50))
    alone = build("mri", {}, shape, [torch.Generator().manual_seed(51)])
    assert torch.equal(batch.mask[1], alone.mask[0])
    assert not torch.equal(batch.mask[0], batch.mask[1]) and not torch.equal(batch.mask[1], batch.mask[2])
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(batch.A(x)[1], alone.A(x[1:2])[0])


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 17, 23)])
def test_mri_adjoint_identity(shape) -> None:
    """<A x, u> = <x, A^T u>: the real-part adjoint of the complex embedding, in float64 to 1e-13 and float32 to 1e-6."""
    physics = build("mri", {}, shape)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    assert (rel_adjoint_gap(physics, x) < 1e-6).all()
    assert (rel_adjoint_gap(copy.deepcopy(physics).double(), x.double()) < 1e-13).all()


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 17, 23), (1, 16, 24)])
def test_mri_svd_reconstructs_a(shape) -> None:
    """A = U diag(s) V^T, V^T orthogonal, U^T A = diag(s) V^T and A^T = V diag(s) U^T on random x and y, in float64."""
    physics = build("mri", {}, shape).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, *shape, generator=g, dtype=F64)
    svd = operator_svd(physics, x)
    assert isinstance(svd, EigenbasisSVD)
    y = physics.A(x)
    u = torch.randn(y.shape, generator=g, dtype=F64)
    close = lambda a, b: float((a - b).abs().max()) <= 1e-12 * float(b.abs().max())  # noqa: E731
    assert close(svd.U(svd.singular * svd.Vt(x)), y)
    assert close(svd.V(svd.Vt(x)), x) and close(svd.Vt(svd.V(x)), x)
    assert close(svd.Ut(y), svd.singular * svd.Vt(x))
    assert close(svd.V(svd.singular * svd.Ut(u)), physics.A_adjoint(u))
    z = torch.randn(x.shape, generator=g, dtype=F64) * (svd.singular > 0)
    assert close(svd.Ut(svd.U(z)), z)  # U's columns on s > 0 are orthonormal


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 9, 12), (1, 16, 16)])
def test_mri_singular_values_are_those_of_the_dense_real_matrix(shape) -> None:
    """s against numpy's SVD of A written out as a real (2 H W) x (H W) matrix: the values {0, 1/sqrt(2), 1},
    1 exactly where a column and its mirror about frequency 0 are both sampled."""
    physics = build("mri", {"center_fraction": 0.2}, shape, generators(1)).double()
    n = shape[1] * shape[2]
    units = torch.eye(n, dtype=F64).view(n, 1, *shape[1:])
    matrix = physics.A(units).flatten(1).T.numpy()
    dense = np.linalg.svd(matrix, compute_uv=False)
    svd = operator_svd(physics, units[:1])
    ours = np.sort(svd.singular.flatten().numpy())[::-1]
    assert np.abs(ours[:len(dense)] - dense).max() < 1e-12
    assert set(np.round(ours, 12)) <= {0.0, round(0.5 ** 0.5, 12), 1.0}
    columns = physics.mask[0, 0, 0].numpy()
    width = shape[2]
    mirror = columns[(2 * (width // 2) - np.arange(width)) % width]
    assert np.array_equal(svd.singular[0, 0, 0].numpy() == 1, (columns == 1) & (mirror == 1))


def test_mri_pictures_are_the_zero_filled_image() -> None:
    """The saved measurement, the measurement as an image and the back-projection are Re(ifft2c(M y)) (numpy),
    every pixel is visible; with every column sampled (acceleration 1) it is x itself."""
    shape = (3, 32, 32)
    gens = generators(2, seed=7)
    physics = build("mri", {}, shape, gens)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(5))
    y = measure(physics, x, gens)
    zero_filled = ifft2c(physics.mask.numpy() * (y[:, 0].numpy() + 1j * y[:, 1].numpy())).real
    for image in (shown_measurement(physics, y, x), measurement_image(physics, y), back_project(physics, y)):
        assert image.shape == x.shape and np.abs(image.numpy() - zero_filled).max() < 1e-5
    assert torch.equal(visible_mask(physics, x), torch.ones_like(x))
    full = build("mri", {"acceleration": 1}, shape)
    assert float((full.picture(full.A(x)) - x).abs().max()) < 1e-5


@pytest.mark.parametrize("params, fragment", [
    ({"acceleration": 64}, "mri.acceleration=64"),
    ({"center_fraction": 0.5}, "mri.center_fraction=0.5"),
    ({"mask": "equispaced", "center_fraction": 0.25}, "mask=equispaced needs columns"),
])
def test_mri_refuses_what_samples_no_valid_mask(params, fragment) -> None:
    with pytest.raises(UsageError) as info:
        build("mri", params, (1, 32, 32))
    assert fragment in str(info.value) and "\n" not in str(info.value)


# --- CT --------------------------------------------------------------------------------------------------------


def rotation_centre(width: int) -> float:
    """The pixel index (both axes) that deepinv's Radon rotates about: the padded image's centre (P - 1) / 2,
    P = ceil(sqrt(2) W), less the P // 2 - W // 2 pixels padded before (radon.py:262-268). It is the image centre
    (W - 1) / 2 when P is even (32 px: P = 46), half a pixel further when P is odd (64 px: P = 91)."""
    detectors = math.ceil(math.sqrt(2) * width)
    return (detectors - 1) / 2 - (detectors // 2 - width // 2)


def gaussian_blob(width: int, sigma: float, centre: tuple[float, float]) -> torch.Tensor:
    """exp(-|p - c|^2 / (2 sigma^2)) at the pixel centres, c = (column, row) offset from the rotation centre."""
    offsets = torch.arange(width, dtype=F64) - rotation_centre(width)
    rows, cols = torch.meshgrid(offsets, offsets, indexing="ij")
    return torch.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2)).view(1, 1, width, width)


def blob_sinogram(width: int, views: int, sigma: float, centre: tuple[float, float], sign: float = -1.0) -> torch.Tensor:
    """The blob's line integrals over the side: detector j at t_j = j - (P - 1) / 2 px from the rotation centre,
    angle 180 v / views degrees, t0 = u0 cos + sign w0 sin (sign -1: the convention of docs/operators.md)."""
    detectors = math.ceil(math.sqrt(2) * width)
    t = torch.arange(detectors, dtype=F64) - (detectors - 1) / 2
    theta = torch.arange(views, dtype=F64) * math.pi / views
    t0 = centre[0] * torch.cos(theta) + sign * centre[1] * torch.sin(theta)
    return math.sqrt(2 * math.pi) * sigma * torch.exp(-(t[:, None] - t0[None, :]) ** 2 / (2 * sigma**2)) / width


@pytest.mark.parametrize("width, scale", [(32, 1), (64, 2)])
@pytest.mark.parametrize("centre", [(0.0, 0.0), (4.0, -3.0), (-5.5, 2.25)])
def test_ct_is_the_line_integral_of_a_gaussian_blob(width, scale, centre) -> None:
    """A(blob) against the closed-form line integrals, 8 views, float64: within 2% of the peak (the error of the
    bilinear interpolation of a sigma = 3 px blob; measured 1.2% at 32 px, 0.3% at 64 px with sigma 6 px), the
    reference in units of the side at both sizes. The other sign convention misses by far."""
    sigma, centre = 3.0 * scale, (centre[0] * scale, centre[1] * scale)
    physics = build("ct", {"views": 8}, (1, width, width), generators(1)).double()
    y = physics.A(gaussian_blob(width, sigma, centre))[0, 0]
    expected = blob_sinogram(width, 8, sigma, centre)
    peak = float(expected.abs().max())
    assert float((y - expected).abs().max()) <= 0.02 * peak
    if centre != (0.0, 0.0):
        assert float((y - blob_sinogram(width, 8, sigma, centre, sign=1.0)).abs().max()) > 0.3 * peak


def test_ct_ray_across_a_constant_image_gives_its_value() -> None:
    """At angle 0 the rays are the image's columns: W of the P detectors see c exactly (the side is the unit of
    length), the others 0."""
    physics = build("ct", {}, (1, 32, 32), generators(1))
    y = physics.A(torch.full((1, 1, 32, 32), 0.7))[0, 0, :, 0]
    assert int((y - 0.7).abs().lt(1e-6).sum()) == 32 and int(y.abs().lt(1e-6).sum()) == y.numel() - 32


@pytest.mark.parametrize("views", [4, 8])
def test_ct_adjoint_is_exact_and_deepinvs_iradon_path_is_not(views) -> None:
    """ipbench's A^T (autograd's vector-Jacobian product of A) passes <A x, u> = <x, A^T u> in float32 to 1e-6
    and float64 to 1e-13; deepinv's adjoint without backprop (an unfiltered IRadon) misses it by over 1e-4."""
    shape = (3, 32, 32)
    physics = build("ct", {"views": views}, shape)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(6))
    assert (rel_adjoint_gap(physics, x) < 1e-6).all()
    assert (rel_adjoint_gap(copy.deepcopy(physics).double(), x.double()) < 1e-13).all()
    iradon = Tomography(angles=views, img_width=32, circle=False, normalize=False, adjoint_via_backprop=False)
    assert float(rel_adjoint_gap(iradon, x).max()) > 1e-4


def test_ct_adjoint_is_differentiable_with_a_as_its_derivative() -> None:
    physics = build("ct", {}, (1, 32, 32))
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(8))
    u = torch.randn(physics.A(x).shape, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
    (physics.A_adjoint(u) * x).sum().backward()
    assert torch.allclose(u.grad, physics.A(x), atol=1e-6)


@pytest.mark.parametrize("views", [4, 30])
def test_ct_dense_svd_reconstructs_a(views) -> None:
    """A = U diag(s) V^T per channel, V orthogonal, U^T A = diag(s) V^T, to float32 round-off (1e-5 of the
    largest entry); the singular values descend, at most one per measurement; one SVD per geometry."""
    shape = (3, 32, 32)
    physics = build("ct", {"views": views}, shape)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(10))
    svd = operator_svd(physics, x)
    assert isinstance(svd, DenseSVD)
    y = physics.A(x)
    scale = float(y.abs().max())
    assert float((svd.U(svd.singular * svd.Vt(x)) - y).abs().max()) <= 1e-5 * scale
    assert float((svd.V(svd.Vt(x)) - x).abs().max()) <= 1e-5 * float(x.abs().max())
    assert float((svd.Ut(y) - svd.singular * svd.Vt(x)).abs().max()) <= 1e-5 * scale
    s = svd.singular.flatten()
    assert bool((s[:-1] >= s[1:]).all()) and float(s.min()) >= 0
    assert int((s > 0).sum()) <= y[0, 0].numel()
    assert operator_svd(build("ct", {"views": views}, shape), x) is svd  # cached: the geometry decides A


def test_ct_dense_svd_drops_singular_values_below_the_round_off_of_its_precision() -> None:
    """Non-zero singular values are at least s_max sqrt(max(m, n)) eps of the precision asked for; at 4 views
    float32 drops the near-zero ones (about 3e-8) that float64 keeps above its own round-off, and nothing else:
    it keeps exactly the float64 values above float32's floor, and they agree. (How many near-zero values float64
    keeps depends on the Radon transform's round-off, which changes between deepinv versions.)"""
    physics = build("ct", {}, (1, 32, 32), generators(1))
    spectra, floors = {}, {}
    for dtype in (torch.float32, F64):
        s = operator_svd(physics, torch.zeros(1, 1, 32, 32, dtype=dtype)).singular.flatten().to(F64)
        floors[dtype] = float(s[0]) * max(46 * 4, 32 * 32) ** 0.5 * torch.finfo(dtype).eps
        assert float(s[s > 0].min()) >= floors[dtype]
        spectra[dtype] = s
    kept = spectra[torch.float32] > 0
    assert int(kept.sum()) == int((spectra[F64] >= floors[torch.float32]).sum()) == 154
    assert bool(((spectra[F64] > 0) & (spectra[F64] < floors[torch.float32])).any())  # what float32 drops
    assert torch.allclose(spectra[torch.float32][kept], spectra[F64][kept], rtol=1e-5)


def test_ct_has_no_svd_above_the_dense_limit_and_spectral_solvers_say_why() -> None:
    side = 128
    assert side * side > DENSE_SVD_MAX_PIXELS
    physics = build("ct", {}, (1, side, side))
    like = torch.zeros(2, 1, side, side)
    assert operator_svd(physics, like) is None
    reason = svd_problem(physics, like)
    assert "ParallelBeamCT at 128 x 128" in reason and f"{DENSE_SVD_MAX_PIXELS} pixels" in reason
    assert SOLVERS.get("ddrm").create().unsupported(physics, like) == reason
    assert not any(key[0] == side for key in _SVD_CACHE)


def test_ct_pictures_are_the_filtered_back_projection() -> None:
    """With 180 views the FBP of a disc of 0.8 is the disc (within 0.03 inside it, away from the edge); the saved
    measurement and the measurement as an image are that FBP; the back-projection is A^T y / A^T 1."""
    physics = build("ct", {"views": 180}, (1, 32, 32), generators(1))
    offsets = torch.arange(32.0) - 15.5
    rows, cols = torch.meshgrid(offsets, offsets, indexing="ij")
    radius = (rows**2 + cols**2).sqrt()
    disc = (0.8 * (radius <= 10)).float().view(1, 1, 32, 32)
    y = physics.A(disc)
    fbp = physics.picture(y)
    assert float((fbp - disc)[..., radius < 8].abs().max()) < 0.03
    assert torch.equal(shown_measurement(physics, y, disc), fbp) and torch.equal(measurement_image(physics, y), fbp)
    weight = physics.A_adjoint(torch.ones_like(y))
    assert torch.allclose(back_project(physics, y), physics.A_adjoint(y) / weight)


@pytest.mark.parametrize("params, shape, fragment", [
    ({}, (1, 32, 24), "needs square images"),
    ({"views": 1}, (1, 32, 32), "ct.views=1"),
    ({"views": 5000}, (1, 32, 32), "ct.views=5000"),
])
def test_ct_refusals(params, shape, fragment) -> None:
    with pytest.raises(UsageError) as info:
        build("ct", params, shape)
    assert fragment in str(info.value) and "\n" not in str(info.value)


# --- solvers and a run ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ct", "mri"])
def test_spectral_solvers_apply_and_repaint_declines(name) -> None:
    physics = build(name, {}, (1, 32, 32))
    like = torch.zeros(2, 1, 32, 32)
    for solver in SPECTRAL:
        assert SOLVERS.get(solver).create().unsupported(physics, like) is None, solver
    assert "needs a mask" in SOLVERS.get("repaint").create().unsupported(physics, like)


@pytest.fixture(scope="module")
def fashion32():
    return load_model("fashion32")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ct", "mri"])
@pytest.mark.parametrize("solver_name", CONTRACT_SOLVERS)
def test_every_solver_gives_a_reason_or_a_finite_result(solver_name, name, fashion32) -> None:
    """On each operator a registered solver declines with a reason or runs, a few steps on fashion32, to a finite
    image batch of the images' shape; every solver built on A, A^T or an SVD runs (only RePaint needs a mask)."""
    x = load_images("fashion32-test", tuple(fashion32.image_shape), num_images=2).images
    gens = generators(2, seed=30)
    physics = Operator.create(name).build(tuple(x.shape[1:]), gens, torch.device("cpu"))
    y = measure(physics, x, gens)
    solver = make_fast(solver_name)
    reason = solver.unsupported(physics, torch.zeros_like(x))
    if SOLVERS.canonical(solver_name) == "repaint":
        assert "needs a mask" in reason
        return
    if solver.__module__.startswith("ipbench."):
        assert reason is None
    if reason is not None:  # a plugin may decline, with a reason
        assert reason.strip()
        return
    prior = fashion32  # a latent solver gets a latent prior over the same images (models/linear_autoencoder.py)
    if SOLVERS.get(solver_name).prior == "latent":
        prior = gaussian_latent_prior(x, (1, 16, 16))
    x_hat = solver.solve(y, physics, prior, generators(2, seed=40))
    assert x_hat.shape == x.shape and torch.isfinite(x_hat).all()


@pytest.mark.slow
@pytest.mark.parametrize("solver_name", ["ddrm", "pigdm", "diffpir", "dps"])
def test_bench_check_contract_passes_on_both(solver_name) -> None:
    """bench check's contract (output, finite, deterministic, batch-invariant to 1e-5, NFE) on ct and mri at
    3 x 16 x 16, the spectral solvers through the exact SVDs."""
    solver = make_fast(solver_name)
    checks = check_solver(solver, solver_name, [Operator.create("ct"), Operator.create("mri")], log=lambda line: None)
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert {c.operator for c in checks} == {"ct", "mri"} and not any("n/a" in c.detail for c in checks)


@pytest.mark.slow
def test_bench_run_scores_ddrm_and_dps_on_both(tmp_path) -> None:
    """bench run --solver ddrm --solver dps --solver repaint --op mri --op ct --num-images 2, few steps: DDRM's
    and DPS's rows are scored (finite), RePaint's are n/a with its reason, each measurement is saved 32 x 32."""
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", "ddrm", "--solver", "dps", "--solver", "repaint", "--op", "mri",
                                      "--op", "ct", "--num-images", "2", "--param", "ddrm.steps=4",
                                      "--param", "dps.steps=4", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = run_rows(out)
    assert len(rows) == 3 * 2 * 2
    for row in rows:
        if row["solver"] == "repaint":
            assert row["status"] == "skipped" and "needs a mask" in row["error"]
        else:
            assert row["status"] == "ok" and math.isfinite(float(row["psnr"])) and float(row["psnr"]) > 5, row
    for op in ("mri", "ct"):
        pngs = sorted((out / "images" / op / "measurement").glob("*.png"))
        assert len(pngs) == 2 and all(Image.open(p).size == (32, 32) for p in pngs)
