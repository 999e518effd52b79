"""The `jpeg` operator: its value (Pillow's JPEG) against another libjpeg binding and RED-diff's codec recomputed in
numpy, kornia's differentiable JPEG (whose derivative is A's) against it, A's gradient against central differences,
RED-diff's start, and a run with DPS and DDRM.

The tolerances are the measured agreement (benchmarks/jpeg_agreement.py, results/jpeg_agreement.md) with some room:
torchvision.io's libjpeg-turbo identical to A; RED-diff's codec with 8-bit output 0.08 grey levels from A on average at
quality 10 on fashion32-test (0.18 at 75, 1.15 on the RGB photos, whose chroma it decimates); kornia 1.25 levels
(40.72 dB) at quality 10 on fashion32-test and 1.64 (39.07 dB) on the photos.
"""
from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ipbench.checks.jpeg_reference import reddiff_jpeg
from ipbench.cli import cli
from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.operators import Operator, is_linear, measure, shown_measurement
from ipbench.operators.jpeg import kornia_jpeg
from tests.conftest import generators
from tests.test_nonlinear_operators import central_differences

F64 = torch.float64
BINDING_MAX_LEVELS, BINDING_MEAN_LEVELS = 1.0, 0.01  # A against torchvision.io, grey levels (measured: 0 and 0)


def build(params: dict, shape: tuple[int, int, int], n: int = 2):
    return Operator.create("jpeg", params).build(shape, generators(n), "cpu")


def torchvision_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """torchvision.io's libjpeg-turbo round trip of round(255 clip(x, 0, 1)); the test skips where it is missing."""
    io_module = pytest.importorskip("torchvision.io")
    if not hasattr(io_module, "encode_jpeg"):
        pytest.skip("this torchvision has no JPEG codec")
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image codecs
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = io_module.decode_jpeg(io_module.encode_jpeg(list(pixels), quality=quality),
                                        mode=io_module.ImageReadMode.UNCHANGED)
    return torch.stack(decoded).double() / 255


def pil_444(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow's RGB JPEG without chroma subsampling (4:4:4): what A must not be."""
    out = []
    for image in (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy():
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(buffer, format="JPEG", quality=quality,
                                                                              subsampling="4:4:4")
        out.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).double() / 255


def reddiff(x: torch.Tensor, quality: int, eight_bit: bool = True) -> torch.Tensor:
    return torch.from_numpy(reddiff_jpeg(x.double().numpy(), quality, eight_bit=eight_bit))


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() - b.double()).abs() * 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a.double() - b.double()).square().mean()))


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def fashion() -> torch.Tensor:
    return load_images("fashion32-test", (1, 32, 32), num_images=200).images


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return load_images("photos", (3, 256, 256)).images


# --- the value: a JPEG file's ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (1, 17, 23), (3, 17, 23), (3, 8, 40)])
@pytest.mark.parametrize("quality", [1, 10, 50, 75, 100])
def test_the_value_is_libjpegs_through_another_binding(shape, quality) -> None:
    """A(x) is torchvision.io's libjpeg-turbo round trip of round(255 clip(x, 0, 1)) within 1 grey level a pixel and
    0.01 on average (measured identical), greyscale and RGB, sides that are and are not multiples of the 16 px MCU;
    x reaches outside [0, 1]."""
    x = rand(3, *shape, seed=quality) * 1.2 - 0.1
    y = build({"quality": quality}, shape, n=3).A(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    gap = levels(y, torchvision_jpeg(x, quality))
    assert float(gap.max()) <= BINDING_MAX_LEVELS and float(gap.mean()) <= BINDING_MEAN_LEVELS, (gap.max(), gap.mean())


def test_the_tolerance_tells_qualities_and_subsampling_apart(fashion) -> None:
    """Not vacuous: quality 11 instead of 10, and RGB without chroma subsampling (4:4:4), are far outside it."""
    y = build({}, (1, 32, 32), n=16).A(fashion[:16])
    assert float(levels(y, torchvision_jpeg(fashion[:16], 10)).mean()) <= BINDING_MEAN_LEVELS
    assert float(levels(y, torchvision_jpeg(fashion[:16], 11)).mean()) > 10 * BINDING_MEAN_LEVELS
    x = rand(4, 3, 32, 32, seed=1)
    y_rgb = build({}, (3, 32, 32), n=4).A(x)
    assert float(levels(y_rgb, torchvision_jpeg(x, 10)).mean()) <= BINDING_MEAN_LEVELS
    assert float(levels(y_rgb, pil_444(x, 10)).mean()) > 10 * BINDING_MEAN_LEVELS


@pytest.mark.parametrize(("quality", "tolerance", "neighbour"), [(1, 0.6, 3), (10, 0.15, 11), (75, 0.3, 76)])
def test_the_value_is_reddiffs_codec_on_greyscale(quality, tolerance, neighbour, fashion) -> None:
    """On all 200 fashion32-test images, A is RED-diff's codec (numpy, ipbench.checks.jpeg_reference) with a decoder's
    8-bit output step, to `tolerance` grey levels on average (measured 0.40, 0.08, 0.18); RED-diff's codec at a
    neighbouring quality is not (qualities 1 and 2 share most of their tables, all 255, so 1 is held against 3), nor
    is its float output as the code leaves it (never clipped: the ringing around black goes below 0)."""
    y = build({"quality": quality}, (1, 32, 32), n=len(fashion)).A(fashion)
    assert float(levels(y, reddiff(fashion, quality)).mean()) <= tolerance
    assert float(levels(y, reddiff(fashion, neighbour)).mean()) > 4 * tolerance  # measured 8.1, 5.0, 1.6
    assert float(levels(y, reddiff(fashion, quality, eight_bit=False)).mean()) > 1.0  # measured 4.05, 3.26, 1.20


def test_the_value_is_reddiffs_codec_up_to_its_chroma_on_rgb(photos) -> None:
    """On the RGB photos at quality 10, RED-diff's codec (8-bit output) is 1.15 grey levels from A on average
    (measured): within 1.5; it keeps every other chroma sample and repeats it where libjpeg averages and
    interpolates. At quality 11 it is further off."""
    y = build({}, (3, 256, 256), n=len(photos)).A(photos)
    assert float(levels(y, reddiff(photos, 10)).mean()) <= 1.5
    assert float(levels(y, reddiff(photos, 11)).mean()) > 1.5


def test_kornia_is_within_its_measured_gap(fashion, photos) -> None:
    """The function whose derivative A's is: kornia's JPEG at quality 10 is within 1.5 grey levels of A on average and
    40 dB on fashion32-test (1.25, 40.72 measured) and 2 levels, 38.5 dB on the photos (1.64, 39.07), and A's value is
    not kornia's."""
    for images, mean, db in [(fashion, 1.5, 40.0), (photos, 2.0, 38.5)]:
        y = build({}, tuple(images.shape[1:]), n=len(images)).A(images)
        smooth = kornia_jpeg(images, 10)
        assert float(levels(smooth, y).mean()) <= mean and psnr(smooth, y) >= db
        assert float(levels(smooth, y).mean()) > 0.5


def test_the_value_does_not_depend_on_grad_mode_or_dtype() -> None:
    """Under no_grad A skips kornia: the same values as with a graph (where smooth - smooth adds exactly 0), and an
    8-bit image gives the same 8-bit values in float64 as in float32."""
    physics = build({}, (3, 16, 24))
    x = (rand(2, 3, 16, 24, seed=2) * 255).round() / 255
    with torch.no_grad():
        plain = physics.A(x)
    tracked = physics.A(x.clone().requires_grad_(True))
    assert tracked.requires_grad and torch.equal(tracked.detach(), plain)
    wide = physics.A(x.double())
    assert wide.dtype == F64 and torch.equal(wide, torch.round(wide * 255) / 255)  # k / 255 in float64's rounding
    assert torch.equal((wide * 255).round(), (plain * 255).round().double())
    assert float(((plain * 255) - (plain * 255).round()).abs().max()) < 1e-4  # 8-bit samples in float32 too


def test_a_non_finite_image_gives_nan_and_leaves_the_others() -> None:
    physics = build({}, (1, 16, 16), n=3)
    x = rand(3, 1, 16, 16, seed=3)
    x[1, 0, 5, 7] = float("nan")
    y = physics.A(x)
    assert bool(torch.isnan(y[1]).all()) and bool(torch.isfinite(y[[0, 2]]).all())
    assert torch.equal(y[[0, 2]], physics.A(x[[0, 2]]))


# --- the gradient: kornia's -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8)])
@pytest.mark.parametrize("quality", [10, 75])
def test_the_gradient_is_kornias_and_matches_finite_differences(shape, quality) -> None:
    """grad_x ||y - A(x)||^2 by autograd (DPS, RED-diff) and 2 A_vjp(x, A(x) - y) (deepinv's torch.func, DAPS) are the
    chain rule with kornia's JPEG k as A's derivative: 2 J_k(x)^T (A(x) - y), checked against central differences of
    z -> 2 <A(x) - y, k(z)> with the residual held at x, in float64 on every pixel of two random images. The misfit's
    own differences are 0: the codec is piecewise constant, which is why its derivative is kornia's."""
    physics = build({"quality": quality}, shape).double()
    x = rand(2, *shape, seed=10, dtype=F64)
    y = physics.A(rand(2, *shape, seed=11, dtype=F64)) + 0.05 * torch.randn(2, *shape, dtype=F64,
                                                                           generator=torch.Generator().manual_seed(12))
    residual = physics.A(x) - y  # frozen: the codec's value at x
    linear_term = lambda z: float(2 * (residual * kornia_jpeg(z, quality)).sum())  # noqa: E731
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((y - physics.A(x_var)).square().sum(), x_var)
    reference = central_differences(linear_term, x)
    assert float(reference.abs().max()) > 1e-2  # not a flat misfit
    torch.testing.assert_close(grad, reference, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(2 * physics.A_vjp(x, residual), reference, rtol=1e-6, atol=1e-7)
    misfit = lambda z: float((y - physics.A(z)).square().sum())  # noqa: E731
    assert float(central_differences(misfit, x, h=1e-9).abs().max()) == 0.0


# --- RED-diff's start, the measurement shown, bad values ----------------------------------------------------------


def test_the_start_is_reddiffs_pinv_and_the_measurement_is_shown_as_it_is() -> None:
    """A_dagger(y) = y (RED-diff's H_pinv for JPEG is the identity, degredations.py:522-523), and a run's figures show
    y itself: it is an image of the truth's shape."""
    shape = (1, 32, 32)
    physics = build({}, shape)
    x = rand(2, *shape, seed=20)
    y = measure(physics, x, generators(2))
    assert torch.equal(physics.A_dagger(y), y)
    assert torch.equal(shown_measurement(physics, y, x), y)
    assert not is_linear(physics) and not hasattr(physics, "A_adjoint")


@pytest.mark.parametrize("value", [0, 101, -5])
def test_a_quality_outside_1_to_100_is_one_line(value) -> None:
    with pytest.raises(UsageError) as info:
        Operator.create("jpeg", {"quality": value})
    message = str(info.value)
    assert "\n" not in message and f"quality={value}" in message and "[1, 100]" in message


@pytest.mark.parametrize("value", ["high", 10.5])
def test_a_quality_that_is_not_an_integer_is_one_line(value) -> None:
    with pytest.raises(UsageError) as info:
        Operator.create("jpeg", {"quality": value})
    assert "\n" not in str(info.value) and "quality=" in str(info.value) and "int" in str(info.value)


def test_images_that_are_neither_grey_nor_rgb_are_refused() -> None:
    with pytest.raises(UsageError, match="1 .greyscale. or 3 .RGB. channels; the images have 4"):
        build({}, (4, 16, 16))


# --- a run: DPS scored, DDRM n/a ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_run_scores_dps_and_gives_ddrm_n_a(tmp_path) -> None:
    """`bench run --solver dps --solver ddrm --op jpeg --num-images 2` (DPS at 3 steps): DPS's rows are scored, DDRM's
    skipped with the reason (its derivation needs an SVD of a linear A) and shown as n/a in the table."""
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", "dps", "--solver", "ddrm", "--op", "jpeg", "--num-images", "2",
                                      "--param", "dps.steps=3", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted((r["solver"], r["status"]) for r in rows) == [("ddrm", "skipped")] * 2 + [("dps", "ok")] * 2
    for row in rows:
        assert row["operator"] == "jpeg" and row["operator.quality"] == 10
        if row["solver"] == "ddrm":
            assert "linear" in row["error"] and "SVD" in row["error"] and math.isnan(float(row["psnr"]))
        else:
            assert math.isfinite(row["psnr"])
    ddrm_line = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith("| ddrm |"))
    assert "n/a" in ddrm_line


def test_bench_check_runs_the_contract_on_jpeg() -> None:
    """`bench check --op jpeg`: DPS passes the five contract checks (shape, finite, deterministic, batch-invariant,
    NFE) on the Gaussian prior's 3 x 16 x 16 photos; DDRM passes as not applying, with its reason."""
    dps = CliRunner().invoke(cli, ["check", "--solver", "dps", "--op", "jpeg", "--param", "dps.steps=5"])
    assert dps.exit_code == 0, dps.output
    assert "5 passed, 0 failed" in dps.output and "on jpeg (sigma_y=0.025, quality=10)" in dps.output
    ddrm = CliRunner().invoke(cli, ["check", "--solver", "ddrm", "--op", "jpeg"])
    assert ddrm.exit_code == 0, ddrm.output
    assert "n/a: needs a linear operator (an SVD of A); JPEGRoundTrip is nonlinear" in ddrm.output
