"""Operators: contract tests over every registered operator, then geometry, defaults and errors.

Contract tests are parametrised over `OPERATORS` (and over every value of every choice-valued
parameter, e.g. each padding of deblur-gauss), so an operator is tested the moment it is registered.
Ground truth is independent of the code under test: inner products (adjoint identity), explicit
Gaussian kernels, geometry worked out by hand, and Monte-Carlo tolerances derived from sample sizes.
"""
from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from deepinv.physics import Physics
from PIL import Image

from ipbench.errors import UsageError
from ipbench.operators import (DEFAULT_SIGMA_Y, OPERATORS, Operator, back_project, is_linear, measure, noise_level,
                               visible_mask)
from ipbench.operators.blur import scaled_blur
from ipbench.operators.noise import NOISE_NAMES

from .conftest import generators, skip_if_tested_elsewhere

F64 = torch.float64
NON_SQUARE = [(1, 17, 23), (1, 16, 24)]  # the second for operators that need sides divisible by 2, 4 or 8


def _choice_params(name: str) -> list[Any]:
    """The operator's own choice parameters; the noise model every operator shares is tested over every
    operator in tests/test_noise.py."""
    return [p for p in OPERATORS.get(name).params if p.choices and p.name not in NOISE_NAMES]


def _case(name: str, params: dict) -> Any:
    return pytest.param(name, params, id="-".join([name, *params.values()]))


def _all_combinations() -> list[Any]:
    """(name, params) for every registered operator and every combination of its choice parameters."""
    return [_case(name, dict(combo)) for name in OPERATORS.names()
            for combo in itertools.product(*[[(p.name, c) for c in p.choices] for p in _choice_params(name)])]


def _each_choice() -> list[Any]:
    """(name, params) for every registered operator: its defaults, then each non-default value of each
    choice parameter with the others at their defaults."""
    cases = []
    for name in OPERATORS.names():
        cases.append(_case(name, {}))
        for p in _choice_params(name):
            cases += [_case(name, {p.name: c}) for c in p.choices if c != p.default]
    return cases


ALL_COMBINATIONS = _all_combinations()  # the adjoint test: boundary handling x filter interplay
CASES = _each_choice()  # the other contract tests


def write_mask(path: Path, observed: np.ndarray) -> Path:
    """A greyscale PNG: white (255) where observed, black (0) elsewhere."""
    Image.fromarray(np.where(observed, 255, 0).astype(np.uint8), mode="L").save(path)
    return path


def build(name: str, params: dict, shape: tuple[int, int, int], gens: list[torch.Generator], tmp_path: Path) -> Physics:
    """Operator.create(...).build(...), supplying a mask file (random, ~40% hidden) to inpaint-mask; an operator
    these sizes cannot build (conftest.TESTED_ELSEWHERE) is skipped, naming the file that tests it."""
    skip_if_tested_elsewhere(name)
    params = dict(params)
    if OPERATORS.canonical(name) == "inpaint-mask" and "path" not in params:
        observed = np.random.default_rng(0).random((shape[1], shape[2])) >= 0.4
        params["path"] = str(write_mask(tmp_path / f"mask-{shape[1]}x{shape[2]}.png", observed))
    return Operator.create(name, params).build(shape, gens, "cpu")


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def per_image_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.to(F64) * b.to(F64)).flatten(1).sum(1)


# --- contract tests over the registry -----------------------------------------------------------------------


@pytest.mark.parametrize("shape_kind", ["3x32x32", "non-square"])
@pytest.mark.parametrize(("name", "params"), ALL_COMBINATIONS)
def test_adjoint_identity(name: str, params: dict, shape_kind: str, tmp_path: Path) -> None:
    """<A x, u> = <x, A^T u> per image: in float64 to 1e-12 relative (when the operator converts to float64),
    and for the operator as built, in float32, to 1e-5 relative to ||A x|| ||u||. Non-square: 1 x 17 x 23,
    or 1 x 16 x 24 for an operator that refuses 17 x 23 with a UsageError."""
    if shape_kind == "3x32x32":
        shape = (3, 32, 32)
        physics = build(name, params, shape, generators(2, seed=5), tmp_path)
    else:
        refusals = []
        for shape in NON_SQUARE:
            try:
                physics = build(name, params, shape, generators(2, seed=5), tmp_path)
                break
            except UsageError as exc:
                refusals.append(str(exc))
        else:
            pytest.skip(f"{name} refuses every non-square test shape: {refusals}")
    if not is_linear(physics):
        pytest.skip(f"{name} is not linear: no adjoint to test")
    runs = [(physics, torch.float32, 1e-5)]
    try:
        physics64 = copy.deepcopy(physics).double()
        if physics64.A(torch.zeros(2, *shape, dtype=F64)).dtype == F64:  # batch of 2, as built
            runs.append((physics64, F64, 1e-12))
    except RuntimeError:  # an operator that cannot run in float64 is still checked in float32
        pass
    g = torch.Generator().manual_seed(1)
    for phys, dtype, tol in runs:
        x = torch.randn(2, *shape, generator=g, dtype=dtype)
        ax = phys.A(x)
        u = torch.randn(ax.shape, generator=g, dtype=dtype)
        atu = phys.A_adjoint(u)
        assert atu.shape == x.shape and atu.dtype == dtype
        lhs, rhs = per_image_dot(ax, u), per_image_dot(x, atu)
        scale = ax.to(F64).flatten(1).norm(dim=1) * u.to(F64).flatten(1).norm(dim=1)
        assert (scale > 0).all()  # A is not the zero map
        assert ((lhs - rhs).abs() <= tol * scale).all(), (dtype, (lhs - rhs).abs() / scale)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_linearity_flag_tells_the_truth(name: str, params: dict, tmp_path: Path) -> None:
    """An operator flagged linear (`is_linear`: a deepinv LinearPhysics) satisfies A(a u + b v) = a A u + b A v
    on random u, v and scalars, in float32 to 1e-5 of the norms; one flagged nonlinear violates it by more
    than 100 times that somewhere on [0, 1] images, so no linear operator hides behind the flag either."""
    shape = (3, 32, 32)
    physics = build(name, params, shape, generators(2, seed=8), tmp_path)
    g = torch.Generator().manual_seed(3)
    u, v = torch.rand(2, *shape, generator=g), torch.rand(2, *shape, generator=g)
    a, b = 0.7, -1.3
    gap = (physics.A(a * u + b * v) - a * physics.A(u) - b * physics.A(v)).to(F64).flatten(1).norm(dim=1)
    scale = (abs(a) * physics.A(u).to(F64).flatten(1).norm(dim=1) + abs(b) * physics.A(v).to(F64).flatten(1).norm(dim=1))
    assert (scale > 0).all()
    if is_linear(physics):
        assert (gap <= 1e-5 * scale).all(), gap / scale
    else:
        assert (gap > 1e-3 * scale).all(), gap / scale


BLUR_PADDINGS = next(p for p in OPERATORS.get("deblur-gauss").params if p.name == "padding").choices


@pytest.mark.parametrize("padding", BLUR_PADDINGS)
def test_blur_adjoint_with_a_wide_kernel(padding: str) -> None:
    """Boundary handling matters most when the kernel is wide: 15 x 15 on a 1 x 17 x 23 image, float64."""
    shape = (1, 17, 23)
    physics = Operator.create("deblur-gauss", {"kernel_size": 15, "sigma": 3.0, "padding": padding}).build(
        shape, generators(1), "cpu").double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, *shape, generator=g, dtype=F64)
    ax = physics.A(x)
    u = torch.randn(ax.shape, generator=g, dtype=F64)
    lhs, rhs = per_image_dot(ax, u), per_image_dot(x, physics.A_adjoint(u))
    scale = ax.flatten(1).norm(dim=1) * u.flatten(1).norm(dim=1)
    assert ((lhs - rhs).abs() <= 1e-12 * scale).all()


@pytest.mark.parametrize(("name", "params"), CASES)
def test_batch_invariance_and_reproducibility(name: str, params: dict, tmp_path: Path) -> None:
    """Image b of a batch built from generators [g_a, g_b, g_c] gets the same operator and the same
    measurement as when built alone from [g_b]; the same seeds give identical results."""
    shape = (3, 32, 32)
    x = rand(3, *shape, seed=2)
    gens = generators(3, seed=100)
    batch = build(name, params, shape, gens, tmp_path)
    y = measure(batch, x, gens)
    gen_b = [torch.Generator().manual_seed(101)]
    alone = build(name, params, shape, gen_b, tmp_path)
    y_b = measure(alone, x[1:2], gen_b)

    probes = [x, torch.ones_like(x)]  # A(1) shows a mask in full
    for probe in probes:
        assert torch.allclose(batch.A(probe)[1], alone.A(probe[1:2])[0], rtol=0, atol=1e-6)
    if is_linear(batch):  # a nonlinear operator has A only
        assert torch.allclose(batch.A_adjoint(y)[1], alone.A_adjoint(y_b)[0], rtol=0, atol=1e-6)
    assert torch.allclose(y[1], y_b[0], rtol=0, atol=1e-6)

    gens_again = generators(3, seed=100)
    again = build(name, params, shape, gens_again, tmp_path)
    assert torch.equal(measure(again, x, gens_again), y)
    for probe in probes:
        assert torch.equal(again.A(probe), batch.A(probe))
    # Non-vacuous: other seeds give other noise, and each image of the batch has its own noise.
    gens_other = generators(3, seed=200)
    other = build(name, params, shape, gens_other, tmp_path)
    assert not torch.allclose(measure(other, x, gens_other), y)
    noise = y - batch.A(x)
    assert not torch.allclose(noise[0], noise[1])


@pytest.mark.parametrize(("name", "params"), CASES)
def test_measure_noise_has_std_sigma_y(name: str, params: dict, tmp_path: Path) -> None:
    """y - A x is N(0, sigma_y^2) noise: over n values the sample std has sd ~ sigma / sqrt(2 n) and the
    mean sd sigma / sqrt(n); 5 of those is the tolerance. Noise of different images is uncorrelated.
    sigma_y = 0 gives A x exactly."""
    shape = (3, 32, 32)
    sigma = 0.1
    x = rand(4, *shape, seed=3)
    gens = generators(4, seed=300)
    physics = build(name, {**params, "sigma_y": sigma}, shape, gens, tmp_path)
    assert noise_level(physics) == pytest.approx(sigma)
    residual = (measure(physics, x, gens) - physics.A(x)).to(F64)
    n = residual.numel()
    assert abs(float(residual.std()) - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(float(residual.mean())) < 5 * sigma / math.sqrt(n)
    flat = residual.flatten(1)
    corr = torch.corrcoef(flat)
    m = flat.shape[1]
    assert float((corr - torch.eye(4, dtype=F64)).abs().max()) < 5 / math.sqrt(m)

    gens0 = generators(4, seed=300)
    exact = build(name, {**params, "sigma_y": 0.0}, shape, gens0, tmp_path)
    assert torch.equal(measure(exact, x, gens0), exact.A(x))


@pytest.mark.parametrize(("name", "params"), CASES)
def test_default_sigma_y(name: str, params: dict, tmp_path: Path) -> None:
    """The default is the DPS paper's sigma = 0.05 on [-1, 1], i.e. 0.025 in image units."""
    assert DEFAULT_SIGMA_Y == 0.05 / 2
    assert Operator.create(name, {"path": "x"} if name == "inpaint-mask" else {}).sigma_y == DEFAULT_SIGMA_Y
    physics = build(name, params, (1, 16, 16), generators(1), tmp_path)
    assert noise_level(physics) == pytest.approx(DEFAULT_SIGMA_Y)


@pytest.mark.parametrize("name", OPERATORS.names())
def test_unknown_parameter_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(UsageError) as info:
        Operator.create(name, {"no_such_param": 1})
    message = str(info.value)
    assert "no_such_param" in message and name in message
    for param in OPERATORS.get(name).params:
        assert param.name in message


# --- inpainting geometry --------------------------------------------------------------------------------


def observed_mask(physics: Physics, shape: tuple[int, int, int], batch: int = 1) -> torch.Tensor:
    """(batch, H, W) bool: A(1) of an inpainting operator, after checking all channels share it."""
    seen = physics.A(torch.ones(batch, *shape))
    assert torch.equal(seen, seen[:, :1].expand_as(seen)), "mask differs between channels"
    assert set(seen.unique().tolist()) <= {0.0, 1.0}
    return seen[:, 0].bool()


def hole_box(observed: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the hidden pixels, after checking they fill their bounding box."""
    rows, cols = torch.nonzero(~observed, as_tuple=True)
    top, left = int(rows.min()), int(cols.min())
    height, width = int(rows.max()) - top + 1, int(cols.max()) - left + 1
    assert len(rows) == height * width, "hole is not a filled rectangle"
    return top, left, height, width


@pytest.mark.parametrize(("side", "hole", "start"), [(32, 16, 8), (256, 128, 64), (64, 32, 16)])
def test_inpaint_box_default_is_centred_half_side(side: int, hole: int, start: int, tmp_path: Path) -> None:
    physics = build("inpaint-box", {}, (3, side, side), generators(1), tmp_path)
    assert hole_box(observed_mask(physics, (3, side, side))[0]) == (start, start, hole, hole)


def test_inpaint_box_alias_side_and_non_square(tmp_path: Path) -> None:
    assert Operator.create("inpaint").name == "inpaint-box"
    physics = build("inpaint", {"side": 0.25}, (1, 32, 32), generators(1), tmp_path)
    assert hole_box(observed_mask(physics, (1, 32, 32))[0]) == (12, 12, 8, 8)
    # 17 x 23: a square hole of side ~ 17 / 2, centred (margins differ by at most one pixel).
    shape = (1, 17, 23)
    physics = build("inpaint-box", {}, shape, generators(1), tmp_path)
    top, left, height, width = hole_box(observed_mask(physics, shape)[0])
    assert height == width and abs(height - 17 / 2) <= 0.5
    assert abs(top - (17 - top - height)) <= 1 and abs(left - (23 - left - width)) <= 1


def test_inpaint_box_random_position(tmp_path: Path) -> None:
    """position=random: the 16 x 16 hole stays inside 32 x 32, moves with the generator (top and left
    uniform on 0..16: mean 8, sd sqrt((17^2 - 1) / 12); 5 standard errors over 200 draws)."""
    shape, n = (1, 32, 32), 200
    physics = build("inpaint-box", {"position": "random"}, shape, generators(n, seed=7), tmp_path)
    masks = observed_mask(physics, shape, n)
    boxes = [hole_box(m) for m in masks]
    assert all(h == w == 16 and 0 <= t <= 16 and 0 <= l <= 16 for t, l, h, w in boxes)
    tops = np.array([b[0] for b in boxes], dtype=float)
    lefts = np.array([b[1] for b in boxes], dtype=float)
    se = math.sqrt((17**2 - 1) / 12 / n)
    assert abs(tops.mean() - 8) < 5 * se and abs(lefts.mean() - 8) < 5 * se
    assert len(set(zip(tops, lefts))) > n // 2  # 289 positions: 200 draws are mostly distinct
    assert tops.min() <= 1 and tops.max() >= 15  # both edges reachable


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7, 0.95])
def test_inpaint_random_drops_fraction_p(p: float, tmp_path: Path) -> None:
    """Each pixel hidden with probability p: over n = 4 x 64 x 64 pixels the hidden fraction is within 5
    binomial standard errors sqrt(p (1 - p) / n) of p; masks differ between images."""
    shape, batch = (3, 64, 64), 4
    physics = build("inpaint-random", {"p": p}, shape, generators(batch, seed=11), tmp_path)
    masks = observed_mask(physics, shape, batch)
    n = masks.numel()
    hidden = 1 - masks.float().mean().item()
    assert abs(hidden - p) <= 5 * math.sqrt(p * (1 - p) / n)
    if p == 0.0:
        assert masks.all()
    else:
        assert not torch.equal(masks[0], masks[1])
    assert Operator.create("inpaint-random").params["p"] == 0.7  # DPS: 70% of the pixels dropped


def test_inpaint_mask_white_is_observed(tmp_path: Path) -> None:
    observed = np.random.default_rng(1).random((32, 32)) >= 0.5
    path = write_mask(tmp_path / "m.png", observed)
    physics = build("inpaint-mask", {"path": str(path)}, (3, 32, 32), generators(2), tmp_path)
    masks = observed_mask(physics, (3, 32, 32), 2)
    assert torch.equal(masks[0], torch.from_numpy(observed)) and torch.equal(masks[1], masks[0])
    # An RGB mask works too, and a 4 x 4 mask is resized to 32 x 32 with nearest: 8 x 8 blocks.
    small = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    rgb = np.repeat(np.where(small, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    physics = build("inpaint-mask", {"path": str(tmp_path / "rgb.png")}, (1, 32, 32), generators(1), tmp_path)
    want = torch.from_numpy(np.kron(small, np.ones((8, 8), dtype=bool)))
    assert torch.equal(observed_mask(physics, (1, 32, 32))[0], want)


@pytest.mark.parametrize("name", ["inpaint-box", "inpaint-random", "inpaint-mask"])
def test_back_project_inpainting(name: str, tmp_path: Path) -> None:
    """y on observed pixels; on hidden ones the per-image, per-channel mean of the observed y."""
    shape = (3, 32, 32)
    gens = generators(2, seed=21)
    physics = build(name, {"sigma_y": 0.05}, shape, gens, tmp_path)
    y = measure(physics, rand(2, *shape, seed=4), gens)
    x = back_project(physics, y)
    seen = observed_mask(physics, shape, 2)[:, None].expand_as(y)
    assert torch.equal(x[seen], y[seen])
    for i in range(2):
        for c in range(3):
            fill = y[i, c][seen[i, c]].to(F64).mean()
            assert torch.allclose(x[i, c][~seen[i, c]].to(F64), fill.expand((~seen[i, c]).sum()), atol=1e-6)
    assert torch.equal(visible_mask(physics, y).bool(), seen)


def test_back_project_denoise_and_circular_blur(tmp_path: Path) -> None:
    """Denoising: A^T 1 = 1, so back-projection is y. Circular blur: A^T 1 = 1 (kernel sums to 1), so it
    is exactly A^T y."""
    shape = (3, 32, 32)
    gens = generators(2, seed=22)
    y = rand(2, *shape, seed=5)
    assert torch.equal(back_project(build("denoise", {}, shape, gens, tmp_path), y), y)
    blur = build("deblur-gauss", {"padding": "circular", "kernel_size": 7, "sigma": 2.0}, shape, gens, tmp_path)
    assert torch.allclose(back_project(blur, y), blur.A_adjoint(y), rtol=0, atol=1e-6)
    with pytest.raises(UsageError, match="linear"):
        back_project(Physics(A=lambda v: v.square()), y)


# --- Gaussian blur ----------------------------------------------------------------------------------------


def gaussian_2d(size: int, sigma: float) -> torch.Tensor:
    """exp(-(i^2 + j^2) / (2 sigma^2)) on integer offsets -(size-1)/2 .. (size-1)/2, normalised to sum 1."""
    half = (size - 1) // 2
    i = np.arange(-half, half + 1, dtype=float)
    k = np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * sigma**2))
    return torch.from_numpy(k / k.sum())


def kernel_of(physics: Physics) -> torch.Tensor:
    return physics.filter.detach().to(F64).squeeze()


def test_deblur_default_is_the_dps_kernel_at_256(tmp_path: Path) -> None:
    """Chung et al. 2023, sec. 4: 61 x 61 Gaussian, sigma 3.0, on 256 x 256; reflect padding."""
    assert Operator.create("deblur").name == "deblur-gauss"
    assert Operator.create("deblur-gauss").params["padding"] == "reflect"
    physics = build("deblur-gauss", {}, (3, 256, 256), generators(1), tmp_path)
    kernel = kernel_of(physics)
    assert kernel.shape == (61, 61)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(kernel, gaussian_2d(61, 3.0), rtol=0, atol=1e-8)


@pytest.mark.parametrize("side", [8, 16, 17, 23, 32, 64, 100, 128, 200, 256, 300])
def test_deblur_default_scales_with_the_side(side: int, tmp_path: Path) -> None:
    """Kernel size: the odd integer (>= 3) nearest 61 side / 256; sigma 3.0 side / 256. Non-square images
    use the shorter side."""
    target = 61 * side / 256
    odd = [k for k in range(3, 200, 2)]
    want_size = min(odd, key=lambda k: abs(k - target))
    want_sigma = 3.0 * side / 256
    assert scaled_blur(side) == (want_size, pytest.approx(want_sigma))
    shape = (1, side, side + 9)
    physics = build("deblur-gauss", {"padding": "circular"}, shape, generators(1), tmp_path)
    assert torch.allclose(kernel_of(physics), gaussian_2d(want_size, want_sigma), rtol=0, atol=1e-7)


def test_deblur_blurs_with_that_kernel(tmp_path: Path) -> None:
    """The impulse response at the centre is the kernel; with reflect, replicate or circular padding a
    constant image is unchanged (the kernel sums to 1), with zero padding the border darkens; valid
    padding trims kernel_size - 1 pixels."""
    shape = (1, 40, 40)
    delta = torch.zeros(1, *shape)
    delta[0, 0, 20, 20] = 1.0
    kernel = {"kernel_size": 9, "sigma": 1.5}
    physics = build("deblur-gauss", kernel, shape, generators(1), tmp_path)
    response = physics.A(delta)[0, 0].to(F64)
    assert torch.allclose(response[16:25, 16:25], gaussian_2d(9, 1.5), rtol=0, atol=1e-7)
    assert float(response.sum()) == pytest.approx(1.0, abs=1e-6)
    ones = torch.ones(1, *shape)
    for padding in ("reflect", "replicate", "circular"):
        blur = build("deblur-gauss", {**kernel, "padding": padding}, shape, generators(1), tmp_path)
        assert torch.allclose(blur.A(ones), ones, rtol=0, atol=1e-6), padding
    zero_pad = build("deblur-gauss", {**kernel, "padding": "constant"}, shape, generators(1), tmp_path)
    out = zero_pad.A(ones)[0, 0]
    assert float(out[0, 0]) < 0.5 and float(out[20, 20]) == pytest.approx(1.0, abs=1e-6)
    valid = build("deblur-gauss", {**kernel, "padding": "valid"}, shape, generators(1), tmp_path)
    assert valid.A(ones).shape == (1, 1, 32, 32)


# --- errors -------------------------------------------------------------------------------------------


def usage_error(name: str, values: dict, shape: tuple[int, int, int] = (3, 32, 32)) -> str:
    """The UsageError message from creating the operator, building it, or (at the latest) applying it."""
    with pytest.raises(UsageError) as info:
        physics = Operator.create(name, values).build(shape, generators(1), "cpu")
        physics.A(torch.ones(1, *shape))
    message = str(info.value)
    assert "\n" not in message  # one line, as errors.py promises
    return message


def test_unknown_operator_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as info:
        Operator.create("no-such-op")
    message = str(info.value)
    assert "no-such-op" in message
    for name in OPERATORS.names():
        assert name in message


@pytest.mark.parametrize(("name", "param", "value"), [
    ("denoise", "sigma_y", "abc"),
    ("deblur-gauss", "sigma", "abc"),
    ("deblur-gauss", "kernel_size", "abc"),
    ("deblur-gauss", "kernel_size", "5.5"),
    ("deblur-gauss", "kernel_size", 5.5),
    ("inpaint-random", "p", "abc"),
    ("inpaint-box", "side", "half"),
    ("deblur-gauss", "kernel_size", True),
])
def test_wrong_type_is_a_usage_error(name: str, param: str, value: Any) -> None:
    message = usage_error(name, {param: value})
    assert f"{param}=" in message and str(value) in message


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("name", "values", "shape"), [
    ("inpaint-box", {"side": 1.5}, (3, 32, 32)),
    ("inpaint-box", {"side": 1.0}, (3, 32, 32)),
    ("inpaint-box", {"side": 0.0}, (3, 32, 32)),
    ("inpaint-box", {"side": NAN}, (3, 32, 32)),
    ("inpaint-box", {"position": "left"}, (3, 32, 32)),
    ("inpaint-random", {"p": 1.0}, (3, 32, 32)),
    ("inpaint-random", {"p": -0.1}, (3, 32, 32)),
    ("deblur-gauss", {"kernel_size": 4}, (3, 32, 32)),
    ("deblur-gauss", {"kernel_size": 0}, (3, 32, 32)),
    ("deblur-gauss", {"kernel_size": -3}, (3, 32, 32)),
    ("deblur-gauss", {"kernel_size": 35}, (1, 17, 23)),  # reflect padding needs kernel_size // 2 < side
    ("deblur-gauss", {"sigma": -1.0}, (3, 32, 32)),
    ("deblur-gauss", {"sigma": 0.0}, (3, 32, 32)),
    ("deblur-gauss", {"padding": "mirror"}, (3, 32, 32)),
    ("denoise", {"sigma_y": -0.1}, (3, 32, 32)),
    ("inpaint-box", {"sigma_y": -1e-3}, (3, 32, 32)),
    ("denoise", {"sigma_y": NAN}, (3, 32, 32)),
    ("denoise", {"sigma_y": INF}, (3, 32, 32)),
    ("deblur-gauss", {"sigma": NAN}, (3, 32, 32)),
    ("deblur-gauss", {"kernel_size": 41, "padding": "valid"}, (3, 32, 32)),
], ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else
       "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v))
def test_out_of_range_is_a_usage_error(name: str, values: dict, shape: tuple[int, int, int]) -> None:
    """Refused with a UsageError that names the parameter and the value (the first entry of `values`)."""
    message = usage_error(name, values, shape)
    param, value = next(iter(values.items()))
    assert f"{param}=" in message and str(value) in message


def test_inpaint_mask_file_errors(tmp_path: Path) -> None:
    message = usage_error("inpaint-mask", {})
    assert "inpaint-mask.path" in message
    missing = tmp_path / "missing.png"
    assert str(missing) in usage_error("inpaint-mask", {"path": str(missing)})
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a PNG")
    assert str(not_an_image) in usage_error("inpaint-mask", {"path": str(not_an_image)})
    assert str(tmp_path) in usage_error("inpaint-mask", {"path": str(tmp_path)})  # a directory
