"""Super-resolution (`sr`) and motion blur (`deblur-motion`): adjoints, filters, kernels, seeding, errors.

Ground truth is independent of the code under test: inner products (adjoint identity), Keys' cubic and
the tent written out here, linear ramps (which any symmetric filter that sums to 1 reproduces), a Nyquist
checkerboard (which an antialiasing filter removes and decimation aliases), deepinv's port of MATLAB
imresize (the DPS code's `Resizer` algorithm), and the DPS code's motion blur written with plain torch
(reflection pad, then a correlation with the kernel).
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from deepinv.physics import DownsamplingMatlab, Physics

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.operators import OPERATORS, Operator, measure
from ipbench.operators.motion import motion_kernel
from ipbench.operators.sr import FILTERS
from ipbench.operators.sr import PADDINGS as SR_PADDINGS

from .conftest import generators

F64 = torch.float64
MOTION_PADDINGS = next(p for p in OPERATORS.get("deblur-motion").params if p.name == "padding").choices


def per_image_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.to(F64) * b.to(F64)).flatten(1).sum(1)


def check_adjoint(physics: Physics, shape: tuple[int, int, int], batch: int) -> torch.Tensor:
    """<A x, u> = <x, A^T u> per image: float64 to 1e-12 and float32 to 1e-5, relative to ||A x|| ||u||.
    Returns A x (float64) for further checks."""
    g = torch.Generator().manual_seed(1)
    out = None
    for phys, dtype, tol in [(physics, torch.float32, 1e-5), (copy.deepcopy(physics).double(), F64, 1e-12)]:
        x = torch.randn(batch, *shape, generator=g, dtype=dtype)
        ax = phys.A(x)
        assert ax.dtype == dtype
        u = torch.randn(ax.shape, generator=g, dtype=dtype)
        atu = phys.A_adjoint(u)
        assert atu.shape == x.shape and atu.dtype == dtype
        lhs, rhs = per_image_dot(ax, u), per_image_dot(x, atu)
        scale = ax.to(F64).flatten(1).norm(dim=1) * u.to(F64).flatten(1).norm(dim=1)
        assert (scale > 0).all()
        assert ((lhs - rhs).abs() <= tol * scale).all(), (dtype, (lhs - rhs).abs() / scale)
        out = ax
    return out


def one_line_usage_error(name: str, values: dict, shape: tuple[int, int, int] = (3, 32, 32)) -> str:
    with pytest.raises(UsageError) as info:
        physics = Operator.create(name, values).build(shape, generators(1), "cpu")
        physics.A(torch.ones(1, *shape))
    message = str(info.value)
    assert "\n" not in message
    return message


# --- sr: geometry and adjoint ------------------------------------------------------------------------------

SR_SHAPES = [((3, 32, 32), 4), ((1, 16, 24), 4), ((2, 12, 20), 2), ((1, 15, 21), 3)]


def sr_op(shape: tuple[int, int, int], **values: object) -> Physics:
    """The sr operator with these parameters, built for one image of `shape` on the CPU."""
    return Operator.create("sr", values).build(shape, generators(1), "cpu")


@pytest.mark.parametrize(("shape", "factor"), SR_SHAPES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else f"f{v}")
@pytest.mark.parametrize("padding", SR_PADDINGS)
@pytest.mark.parametrize("filter_", FILTERS)
def test_sr_adjoint_and_shape(filter_: str, padding: str, shape: tuple[int, int, int], factor: int) -> None:
    physics = Operator.create("sr", {"factor": factor, "filter": filter_, "padding": padding}).build(
        shape, generators(2), "cpu")
    ax = check_adjoint(physics, shape, batch=2)
    assert ax.shape == (2, shape[0], shape[1] // factor, shape[2] // factor)


def test_sr_defaults() -> None:
    """factor 4, bicubic (the DPS/DDRM degradation), reflect padding; the alias works."""
    op = Operator.create("super-resolution")
    assert op.name == "sr"
    want = {"factor": 4, "filter": "bicubic", "padding": "reflect"}
    assert {k: op.params[k] for k in want} == want
    y = op.build((3, 64, 64), generators(2), "cpu").A(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("padding", SR_PADDINGS)
@pytest.mark.parametrize("filter_", FILTERS)
def test_sr_keeps_a_constant_image(filter_: str, padding: str) -> None:
    """Every filter sums to 1, so a constant image stays that constant (everywhere except, with zero
    padding, within half a filter of the border)."""
    shape, c = (2, 48, 48), 0.37
    physics = sr_op(shape, filter=filter_, padding=padding)
    y = physics.A(torch.full((1, *shape), c))
    if padding == "constant" and filter_ != "none":
        y = y[..., 4:-4, 4:-4]  # the 29-tap Gaussian reaches 14 px = 3.5 output px
    assert torch.allclose(y, torch.full_like(y, c), rtol=0, atol=1e-6)


@pytest.mark.parametrize("padding", SR_PADDINGS)
@pytest.mark.parametrize("filter_", FILTERS)
def test_sr_factor_one_is_the_identity(filter_: str, padding: str) -> None:
    shape = (3, 17, 23)
    physics = sr_op(shape, factor=1, filter=filter_, padding=padding)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(physics.A(x), x) and torch.equal(physics.A_adjoint(x), x)


def keys_cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys (1981) cubic convolution kernel."""
    t = t.abs()
    return torch.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                       torch.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, torch.zeros_like(t)))


def separable(w: torch.Tensor) -> torch.Tensor:
    k = torch.outer(w, w)
    return k / k.sum()


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_sr_filters_are_the_stated_ones(factor: int) -> None:
    """bicubic: Keys' cubic (a = -0.5) stretched by f at offsets (-2f + 1/2 .. 2f - 1/2) / f; bilinear: the
    tent at (-f + 1/2 .. f - 1/2) / f; gaussian: std f px on 2 floor(f / 0.3 + 1) + 1 taps."""
    f = factor

    def taps(name: str) -> torch.Tensor:
        physics = sr_op((1, 48, 48), factor=f, filter=name)
        return physics.filter.to(F64).squeeze()

    offsets = torch.arange(-2 * f + 0.5, 2 * f, 1, dtype=F64) / f
    assert torch.allclose(taps("bicubic"), separable(keys_cubic(offsets)), rtol=0, atol=1e-7)
    offsets = torch.arange(-f + 0.5, f, 1, dtype=F64) / f
    assert torch.allclose(taps("bilinear"), separable(1 - offsets.abs()), rtol=0, atol=1e-7)
    half = int(f / 0.3 + 1)
    offsets = torch.arange(-half, half + 1, dtype=F64)
    assert torch.allclose(taps("gaussian"), separable(torch.exp(-0.5 * (offsets / f) ** 2)), rtol=0, atol=1e-7)
    assert taps("sinc").shape == (4 * f, 4 * f) and float(taps("sinc").sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize(("filter_", "centre"), [("bicubic", 0.5), ("bilinear", 0.5), ("sinc", 0.5),
                                                  ("gaussian", 0.0), ("none", 0.0)])
def test_sr_sampling_grid_on_a_linear_ramp(filter_: str, centre: float, factor: int) -> None:
    """A symmetric filter that sums to 1 reproduces a linear function, so away from the border output
    pixel (i, j) is the ramp at its centre: i f + 1/2 for the even-length filters, i f for the Gaussian and
    for decimation."""
    side = 64
    rows = torch.arange(side, dtype=F64)
    x = (0.3 * rows[:, None] - 0.7 * rows[None, :] + 2.0).expand(1, 1, side, side).contiguous()
    physics = sr_op((1, side, side), factor=factor, filter=filter_).double()
    y = physics.A(x)[0, 0]
    centres = torch.arange(side // factor, dtype=F64) * factor + centre
    want = 0.3 * centres[:, None] - 0.7 * centres[None, :] + 2.0
    m = 15 // factor + 1  # the widest filter here (Gaussian, 2 * 14 + 1 taps at f = 4) reaches 14 px
    # deepinv builds the taps in float32: ramp values up to ~60 carry ~1e-7 relative error.
    assert torch.allclose(y[m:-m, m:-m], want[m:-m, m:-m], rtol=0, atol=1e-4)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("filter_", ["bicubic", "bilinear", "sinc"])
def test_sr_of_a_smooth_image_is_close_to_the_block_average(filter_: str, factor: int) -> None:
    """On cos(w i + a) cos(w j + b) with period 64 px, the filter output and the average of the f x f block
    centred on the same point (rows i f - f/2 + 1 .. i f + f/2) differ by at most the second-moment term
    w^2 |m2(filter) - m2(box)| / 2 per axis; with m2 <= f^2 / 6 for these filters that is w^2 f^2 / 6 in all."""
    side, f = 64, factor
    w = 2 * math.pi / 64
    r = torch.arange(side, dtype=F64)
    x = (torch.cos(w * r + 0.3)[:, None] * torch.cos(w * r - 1.1)[None, :])[None, None]
    physics = sr_op((1, side, side), factor=f, filter=filter_).double()
    start = -f // 2 + 1
    block = F.avg_pool2d(torch.roll(x, shifts=(-start, -start), dims=(2, 3)), f)
    m = 3
    diff = (physics.A(x) - block)[..., m:-m, m:-m].abs().max()
    assert float(diff) <= w**2 * f**2 / 6


@pytest.mark.parametrize("factor", [2, 4])
def test_sr_antialiasing_removes_the_nyquist_checkerboard(factor: int) -> None:
    """A +-1 checkerboard (and +-1 column stripes) has no low frequencies: every antialiasing filter maps it
    to ~0, while plain decimation aliases it to a constant +-1 image."""
    side = 48
    r = torch.arange(side, dtype=F64)
    patterns = [((-1.0) ** (r[:, None] + r[None, :])), ((-1.0) ** r)[None, :].expand(side, side)]
    for filter_ in FILTERS:
        physics = sr_op((1, side, side), factor=factor, filter=filter_, padding="circular").double()
        for pattern in patterns:
            y = physics.A(pattern[None, None].contiguous())
            if filter_ == "none":
                assert torch.equal(y.abs(), torch.ones_like(y))
            else:
                assert float(y.abs().max()) < 1e-3, filter_


@pytest.mark.parametrize("factor", [2, 4])
def test_sr_bicubic_is_matlab_imresize_on_a_shifted_grid(factor: int) -> None:
    """deepinv's port of MATLAB imresize (bicubic, antialiased), the algorithm of the DPS code's Resizer,
    equals sr's bicubic on the image shifted by (f - 2) / 2 px, away from the border."""
    side = 48
    x = torch.rand(1, 1, side, side, generator=torch.Generator().manual_seed(3))
    s = (factor - 2) // 2
    ours = sr_op((1, side, side), factor=factor).A(torch.roll(x, shifts=(-s, -s), dims=(2, 3)))
    matlab = DownsamplingMatlab(factor=factor).A(x)
    m = 3
    assert torch.allclose(ours[..., m:-m, m:-m], matlab[..., m:-m, m:-m], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("values", "shape", "fragment"), [
    ({"factor": 0}, (3, 32, 32), "sr.factor=0"),
    ({"factor": -2}, (3, 32, 32), "sr.factor=-2"),
    ({"factor": 3}, (3, 32, 32), "sr.factor=3"),
    ({"factor": 4}, (1, 17, 23), "sr.factor=4"),
    ({"factor": 4}, (1, 32, 30), "sr.factor=4"),
    ({"factor": "abc"}, (3, 32, 32), "sr.factor='abc'"),
    ({"factor": 2.5}, (3, 32, 32), "sr.factor=2.5"),
    ({"factor": 16}, (3, 32, 32), "sr.factor=16"),  # a 64-tap bicubic cannot reflect-pad a 32 px side
    ({"factor": 8, "filter": "gaussian", "padding": "circular"}, (3, 16, 16), "sr.factor=8"),
    ({"filter": "lanczos"}, (3, 32, 32), "sr.filter='lanczos'"),
    ({"padding": "valid"}, (3, 32, 32), "sr.padding='valid'"),
])
def test_sr_bad_values_are_usage_errors(values: dict, shape: tuple[int, int, int], fragment: str) -> None:
    assert fragment in one_line_usage_error("sr", values, shape)


def test_sr_factor_error_says_what_is_valid() -> None:
    message = one_line_usage_error("sr", {"factor": 4}, (1, 17, 23))
    assert "operator sr.factor=4" in message and "divides" in message and "17 x 23" in message
    assert "bicubic, bilinear, gaussian, sinc, none" in one_line_usage_error("sr", {"filter": "box"})
    # A large factor is fine where the padding allows it.
    physics = sr_op((1, 32, 32), factor=16, padding="replicate")
    assert physics.A(torch.ones(1, 1, 32, 32)).shape == (1, 1, 2, 2)


# --- deblur-motion: kernels --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 9, 15, 61])
def test_motion_kernels_are_normalised_and_seeded(size: int) -> None:
    """Non-negative, sum 1, size x size; the same generator state gives the same kernel, other seeds others."""
    kernels = [motion_kernel(size, 0.5, torch.Generator().manual_seed(s)) for s in range(6)]
    for k in kernels:
        assert k.shape == (size, size) and k.dtype == torch.float32
        assert float(k.min()) >= 0 and float(k.to(F64).sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(motion_kernel(size, 0.5, torch.Generator().manual_seed(3)), kernels[3])
    distinct = {tuple(k.flatten().tolist()) for k in kernels}
    assert len(distinct) >= (2 if size == 3 else 6)  # a 3 x 3 kernel has few distinct shapes
    if size >= 15:
        assert all(int((k > 0).sum()) >= 4 for k in kernels)  # not a point (short paths do occur)
        assert max(int((k > 0).sum()) for k in kernels) > 3 * size  # and long ones


def principal_stds(kernel: torch.Tensor) -> tuple[float, float]:
    """(minor, major) standard deviations of the kernel's mass (square roots of its covariance eigenvalues)."""
    k = kernel.to(F64)
    c = torch.arange(k.shape[0], dtype=F64)
    my, mx = (k.sum(1) * c).sum(), (k.sum(0) * c).sum()
    dy, dx = c - my, c - mx
    cov = torch.stack([torch.stack([(k.sum(1) * dy**2).sum(), (k * dy[:, None] * dx[None, :]).sum()]),
                       torch.stack([(k * dy[:, None] * dx[None, :]).sum(), (k.sum(0) * dx**2).sum()])])
    minor, major = torch.linalg.eigvalsh(cov).sqrt().tolist()
    return minor, major


def test_motion_intensity_bends_the_trajectory() -> None:
    """Intensity 0 draws straight paths (all step angles 0): the mass lies on a line, widened only by the
    package's blur (radius 1) and resampling, so the minor-axis std stays under 1 px at 61 px. At the DPS
    intensity 0.5 paths curve: some kernels are much wider across."""
    straight = [principal_stds(motion_kernel(61, 0.0, torch.Generator().manual_seed(s))) for s in range(12)]
    curved = [principal_stds(motion_kernel(61, 0.5, torch.Generator().manual_seed(s))) for s in range(12)]
    assert max(minor for minor, _ in straight) < 1.0
    assert max(minor for minor, _ in curved) > 1.5
    assert sorted(major for _, major in straight)[6] > 3.0  # median length: a real blur, not a dot


@pytest.mark.parametrize(("side", "size"), [(256, 61), (128, 31), (64, 15), (32, 7), (16, 3), (8, 3)])
def test_motion_kernel_size_scales_with_the_side(side: int, size: int) -> None:
    """61 px at 256 px (DPS), scaled with the shorter side: the odd size nearest 61 side / 256, at least 3
    (7.6 -> 7 at 32 px); kernel_size overrides it."""
    physics = Operator.create("deblur-motion").build((1, side, side + 5), generators(2), "cpu")
    assert physics.filter.shape == (2, 1, size, size)
    physics = Operator.create("deblur-motion", {"kernel_size": 5}).build((1, side, side), generators(1), "cpu")
    assert physics.filter.shape == (1, 1, 5, 5)


def test_motion_is_the_dps_correlation_with_each_images_kernel() -> None:
    """Image b's blur is the DPS code's: reflection pad by s // 2, then correlate with the kernel K_b
    drawn from b's generator (nn.Conv2d); with the other paddings, F.pad's mode (or none for valid)."""
    shape, n, s = (3, 40, 40), 3, 9  # 61 * 40 / 256 = 9.5 -> a 9 px kernel
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    kernels = [motion_kernel(s, 0.5, g).to(F64) for g in generators(n, seed=40)]
    for padding in MOTION_PADDINGS:
        physics = Operator.create("deblur-motion", {"padding": padding}).build(
            shape, generators(n, seed=40), "cpu").double()
        assert physics.filter.shape == (n, 1, s, s)
        y = physics.A(x)
        for b, k in enumerate(kernels):
            h = s // 2
            xb = x[b:b + 1] if padding == "valid" else F.pad(x[b:b + 1], (h, h, h, h), mode=padding)
            want = F.conv2d(xb, k.expand(3, 1, s, s), groups=3)
            assert torch.allclose(y[b:b + 1], want, rtol=0, atol=1e-12), padding


MOTION_SHAPES = [(3, 32, 32), (1, 17, 23), (2, 12, 40)]


@pytest.mark.parametrize("shape", MOTION_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padding", MOTION_PADDINGS)
def test_motion_adjoint_and_shape(padding: str, shape: tuple[int, int, int]) -> None:
    """Batched per-image kernels: the adjoint identity holds image by image; y has x's shape (valid: minus
    kernel_size - 1). A wide kernel (11 px on a 12 px side) stresses the boundary handling."""
    for kernel_size in (None, 11):
        values = {"padding": padding} if kernel_size is None else {"padding": padding, "kernel_size": kernel_size}
        physics = Operator.create("deblur-motion", values).build(shape, generators(2, seed=9), "cpu")
        assert not torch.equal(physics.filter[0], physics.filter[1])
        ax = check_adjoint(physics, shape, batch=2)
        trim = 0 if padding != "valid" else int(physics.filter.shape[-1]) - 1
        assert ax.shape == (2, shape[0], shape[1] - trim, shape[2] - trim)


def test_motion_batch_invariance_of_operator_and_measurement() -> None:
    """Image b of a batch gets the kernel, A, A^T and y (noise included) it gets when built alone from its
    generator: randomness comes only from each image's generator."""
    shape = (3, 32, 32)
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(5))
    gens = generators(4, seed=70)
    batch = Operator.create("deblur-motion", {"sigma_y": 0.05}).build(shape, gens, "cpu")
    y = measure(batch, x, gens)
    for b in range(4):
        gen_b = [torch.Generator().manual_seed(70 + b)]
        alone = Operator.create("deblur-motion", {"sigma_y": 0.05}).build(shape, gen_b, "cpu")
        assert torch.equal(alone.filter[0], batch.filter[b])
        assert torch.allclose(alone.A(x[b:b + 1])[0], batch.A(x)[b], rtol=0, atol=1e-6)
        assert torch.allclose(alone.A_adjoint(y[b:b + 1])[0], batch.A_adjoint(y)[b], rtol=0, atol=1e-6)
        assert torch.allclose(measure(alone, x[b:b + 1], gen_b)[0], y[b], rtol=0, atol=1e-6)
    assert len({tuple(k.flatten().tolist()) for k in batch.filter}) == 4


@pytest.mark.parametrize(("values", "shape", "fragment"), [
    ({"kernel_size": 4}, (3, 32, 32), "deblur-motion.kernel_size=4"),
    ({"kernel_size": 1}, (3, 32, 32), "deblur-motion.kernel_size=1"),
    ({"kernel_size": -3}, (3, 32, 32), "deblur-motion.kernel_size=-3"),
    ({"kernel_size": "big"}, (3, 32, 32), "deblur-motion.kernel_size='big'"),
    ({"kernel_size": 35}, (1, 17, 23), "deblur-motion.kernel_size=35"),  # reflect needs s // 2 < side
    ({"kernel_size": 37, "padding": "circular"}, (1, 17, 23), "deblur-motion.kernel_size=37"),
    ({"kernel_size": 19, "padding": "valid"}, (1, 17, 23), "deblur-motion.kernel_size=19"),
    ({"intensity": 1.5}, (3, 32, 32), "deblur-motion.intensity=1.5"),
    ({"intensity": -0.1}, (3, 32, 32), "deblur-motion.intensity=-0.1"),
    ({"intensity": float("nan")}, (3, 32, 32), "deblur-motion.intensity=nan"),
    ({"padding": "mirror"}, (3, 32, 32), "deblur-motion.padding='mirror'"),
])
def test_motion_bad_values_are_usage_errors(values: dict, shape: tuple[int, int, int], fragment: str) -> None:
    assert fragment in one_line_usage_error("deblur-motion", values, shape)


def test_bench_list_shows_both_operators() -> None:
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    for text in ("sr (alias super-resolution)", "factor: int = 4",
                 "filter: str in {bicubic, bilinear, gaussian, sinc, none} = 'bicubic'",
                 "padding: str in {reflect, circular, replicate, constant} = 'reflect'",
                 "deblur-motion:", "intensity: float = 0.5",
                 "padding: str in {reflect, circular, replicate, constant, valid} = 'reflect'"):
        assert text in result.output, text
