"""The spectrum summary and the Gaussian-prior difficulty of operators, and deblur-gauss's named kernels.

Ground truth is independent of the code under test: A as a dense matrix built column by column from unit
images (its singular values by a dense SVD), the DFT of a circular blur kernel (a circulant A and a
stationary prior share the Fourier basis, so the MMSE is a sum over frequencies), and kernels written out
by hand.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ipbench.checks.operator_difficulty import denoising_mmse, exact_mmse, operator_difficulty
from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.models import GaussianScoreModel
from ipbench.operators import Operator
from ipbench.operators.blur import KERNELS, scaled_blur
from ipbench.operators.spectrum import operator_singular_values, spectrum_summary

F64 = torch.float64
ROOT = Path(__file__).resolve().parent.parent


def dense_matrix(operator: Operator, shape: tuple[int, int, int]) -> torch.Tensor:
    """A as an (M, D) float64 matrix, column k = A(e_k) for the k-th unit image (one generator, seed 0)."""
    physics = operator.build(shape, [torch.Generator().manual_seed(0)], torch.device("cpu"))
    physics = physics.to(F64)
    size = math.prod(shape)
    columns = [physics.A(torch.eye(size, dtype=F64)[k].view(1, *shape)).flatten() for k in range(size)]
    return torch.stack(columns, dim=1)


def dense_singular_values(operator: Operator, shape: tuple[int, int, int]) -> torch.Tensor:
    """A's singular values, one per coordinate of x (zeros appended where A has fewer rows), descending."""
    s = torch.linalg.svdvals(dense_matrix(operator, shape))
    return torch.cat([s, s.new_zeros(math.prod(shape) - s.numel())])


SPECTRUM_CASES = [
    *[("deblur-gauss", {"kernel_size": 5, "sigma": 1.0, "padding": p}) for p in
      ("reflect", "circular", "replicate", "constant", "valid")],
    ("deblur-gauss", {}),  # dps-scaled at 8 px: 3 x 3, sigma 0.09375
    ("deblur-gauss", {"kernel": "fashion32-hard"}),
    ("deblur-gauss", {"kernel_size": 7, "sigma": 2.0}),
    ("sr", {"factor": 2}), ("sr", {"factor": 2, "filter": "gaussian", "padding": "circular"}),
    ("inpaint-box", {}), ("inpaint-random", {}), ("denoise", {}),
]


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 10, 8)], ids=["1x8x8", "2x10x8"])
@pytest.mark.parametrize(("name", "params"), SPECTRUM_CASES,
                         ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v)
def test_singular_values_are_those_of_the_dense_matrix(name: str, params: dict[str, Any],
                                                       shape: tuple[int, int, int]) -> None:
    """Every operator with an exact SVD, several paddings, grey and two-channel non-square images: the
    summary's singular values, condition number and fraction below sigma_y are the dense matrix's."""
    sigma_y = 0.1  # inside the blurs' spectra, so the fraction below it is neither 0 nor 1 for them
    operator = Operator.create(name, {**params, "sigma_y": sigma_y})
    want = dense_singular_values(operator, shape)
    got = operator_singular_values(operator, shape)
    assert got.dtype == F64 and got.shape == (math.prod(shape),)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)
    summary = spectrum_summary(operator, shape)
    assert summary.below_noise == pytest.approx(float((want < sigma_y).double().mean()))
    if float(want[-1]) < 1e-9:  # a null space: masks, decimation, valid padding
        assert summary.condition == math.inf
    else:
        # the float32 kernel is an outer product only to ~1e-8, which moves s_min by about that much
        assert summary.condition == pytest.approx(float(want[0] / want[-1]), rel=1e-7 / float(want[-1]))


def test_the_scaled_dps_kernel_at_32_px_is_nearly_the_identity() -> None:
    """The figures quoted for the default: singular values in [0.795, 1.0008], condition number 1.26,
    none below sigma_y = 0.025; the fashion32-hard kernel is real deconvolution (condition > 1e3, 42% below)."""
    default = spectrum_summary(Operator.create("deblur-gauss"), (1, 32, 32))
    assert round(default.condition, 2) == 1.26
    assert round(default.smallest, 3) == 0.795 and round(default.largest, 4) == 1.0008
    assert default.below_noise == 0
    hard = spectrum_summary(Operator.create("deblur-gauss", {"kernel": "fashion32-hard"}), (1, 32, 32))
    assert hard.condition > 1e3 and round(hard.below_noise, 2) == 0.42


def test_an_operator_without_an_exact_svd_has_no_summary() -> None:
    with pytest.raises(UsageError) as info:
        spectrum_summary(Operator.create("deblur-motion"), (1, 16, 16))
    message = str(info.value)
    assert "\n" not in message and "deblur-motion" in message and "separable linear operator" in message


# --- the Gaussian-prior MMSE -------------------------------------------------------------------------


def stationary_model(shape: tuple[int, int, int] = (1, 8, 8)) -> GaussianScoreModel:
    """A grey stationary Gaussian prior with a power-law spectrum (symmetric in frequency, as a real prior's)."""
    _, h, w = shape
    fy, fx = torch.fft.fftfreq(h, dtype=F64).view(-1, 1), torch.fft.fftfreq(w, dtype=F64).view(1, -1)
    spectrum = 0.02 / (0.05 + fy.square() + fx.square())  # model units, (C, H, W)
    return GaussianScoreModel(torch.zeros(1), torch.eye(1), spectrum.view(1, h, w))


def circulant_mmse(model: GaussianScoreModel, kernel: torch.Tensor, sigma_y: float) -> float:
    """mean over frequencies of P s^2 / (|H|^2 P + s^2): a circular blur and a stationary prior share the DFT;
    P is the prior's power in image units (a quarter of the model's), H the DFT of the kernel, centred on 0."""
    _, h, w = model.image_shape
    k = kernel.shape[-1]
    embedded = torch.zeros(h, w, dtype=F64)
    embedded[:k, :k] = kernel.to(F64)
    transfer = torch.fft.fft2(torch.roll(embedded, (-(k // 2), -(k // 2)), dims=(0, 1)))
    power = model.spectrum[0] / 4
    return float((power * sigma_y**2 / (transfer.abs().square() * power + sigma_y**2)).mean())


@pytest.mark.parametrize("sigma_y", [0.01, 0.025, 0.1])
@pytest.mark.parametrize(("kernel_size", "sigma"), [(3, 0.5), (5, 1.0), (7, 2.0)])
def test_the_mmse_is_the_closed_form_of_a_circular_blur(kernel_size: int, sigma: float, sigma_y: float) -> None:
    """The dense posterior's tr(Cov)/D against the frequency sum, for blur and for denoising (H = 1)."""
    model = stationary_model()
    operator = Operator.create("deblur-gauss", {"kernel_size": kernel_size, "sigma": sigma, "padding": "circular",
                                                "sigma_y": sigma_y})
    physics = operator.build(model.image_shape, [torch.Generator()], torch.device("cpu"))
    kernel = physics.filter.detach().squeeze()
    difficulty = operator_difficulty(model, operator)
    assert difficulty.mmse == pytest.approx(circulant_mmse(model, kernel, sigma_y), rel=1e-9)
    identity = torch.ones(1, 1, dtype=F64)
    assert difficulty.mmse_denoise == pytest.approx(circulant_mmse(model, identity, sigma_y), rel=1e-9)
    assert difficulty.mmse_denoise == pytest.approx(denoising_mmse(model, sigma_y), rel=1e-12)
    assert difficulty.ratio == pytest.approx(difficulty.mmse / difficulty.mmse_denoise)
    assert difficulty.ratio > 1  # blur loses information that denoising keeps


def test_the_mmse_of_a_mask_counts_the_unseen_pixels_at_the_prior_variance() -> None:
    """A white prior (flat spectrum, variance v per pixel): seen pixels have MMSE v s^2 / (v + s^2), unseen v."""
    model = GaussianScoreModel(torch.zeros(1), torch.eye(1), torch.full((1, 8, 8), 0.04, dtype=F64))
    variance, sigma_y = 0.01, 0.025  # image units: a quarter of the model's 0.04
    operator = Operator.create("inpaint-box", {"side": 0.5, "sigma_y": sigma_y})
    seen = 1 - 16 / 64
    want = seen * variance * sigma_y**2 / (variance + sigma_y**2) + (1 - seen) * variance
    physics = operator.build(model.image_shape, [torch.Generator()], torch.device("cpu"))
    assert exact_mmse(model, physics, sigma_y) == pytest.approx(want, rel=1e-9)


def test_the_mmse_ratio_needs_noise() -> None:
    with pytest.raises(UsageError, match=r"sigma_y=0.0: .*needs sigma_y > 0"):
        operator_difficulty(stationary_model(), Operator.create("deblur-gauss", {"sigma_y": 0.0}))


# --- named kernels -----------------------------------------------------------------------------------


def gaussian_2d(size: int, sigma: float) -> torch.Tensor:
    i = np.arange(size, dtype=float) - (size - 1) / 2
    k = np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * sigma**2))
    return torch.from_numpy(k / k.sum())


def kernel_of(params: dict[str, Any], shape: tuple[int, int, int]) -> torch.Tensor:
    physics = Operator.create("deblur-gauss", params).build(shape, [torch.Generator()], torch.device("cpu"))
    return physics.filter.detach().to(F64).squeeze()


@pytest.mark.parametrize(("params", "side", "size", "sigma"), [
    ({}, 32, 7, 0.375),  # the default is the DPS kernel scaled: committed runs use it
    ({"kernel": "dps-scaled"}, 32, 7, 0.375),
    ({"kernel": "dps-scaled"}, 256, 61, 3.0),
    ({"kernel": "fashion32-hard"}, 32, 7, 1.0),  # the documented kernel
    ({"kernel": "fashion32-hard"}, 64, 13, 2.0),  # scaled with the side, like dps-scaled
    ({"kernel": "fashion32-hard"}, 16, 3, 0.5),
    ({"kernel": "fashion32-hard", "sigma": 2.0}, 32, 7, 2.0),  # explicit values override the named ones
    ({"kernel": "fashion32-hard", "kernel_size": 11}, 32, 11, 1.0),
    ({"kernel_size": 9, "sigma": 1.5}, 32, 9, 1.5),
], ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) or "default" if isinstance(v, dict) else str(v))
def test_named_kernels_give_the_documented_size_and_sigma(params: dict[str, Any], side: int, size: int,
                                                         sigma: float) -> None:
    assert torch.allclose(kernel_of(params, (1, side, side)), gaussian_2d(size, sigma), rtol=0, atol=1e-7)


def test_the_default_kernel_is_unchanged() -> None:
    """Bit for bit the kernel that `kernel_size=7, sigma=3 * 32 / 256` gives, under the default name."""
    assert Operator.create("deblur-gauss").params["kernel"] == "dps-scaled"
    assert scaled_blur(32) == scaled_blur(32, "dps-scaled") == (7, 3.0 * 32 / 256)
    assert torch.equal(kernel_of({}, (1, 32, 32)), kernel_of({"kernel_size": 7, "sigma": 0.375}, (1, 32, 32)))


def test_the_docs_give_each_named_kernel() -> None:
    """docs/operators.md and the module docstring name every kernel with its size and sigma at its side."""
    import ipbench.operators.blur as blur

    docs = (ROOT / "docs" / "operators.md").read_text()
    for name, kernel in KERNELS.items():
        assert f"`{name}`" in docs and f"`{name}`" in blur.__doc__
        assert f"{kernel.size} x {kernel.size}, sigma {kernel.sigma}" in blur.__doc__


BAD_NAMES = ["nope", "DPS-SCALED", "fashion32_hard", "", "dps-scaled "]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_an_unknown_kernel_is_one_line_listing_the_valid_ones(name: str) -> None:
    with pytest.raises(UsageError) as info:
        Operator.create("deblur-gauss", {"kernel": name})
    _assert_lists_kernels(str(info.value), name)
    with pytest.raises(UsageError) as info:
        scaled_blur(32, name)
    _assert_lists_kernels(str(info.value), name)


@pytest.mark.parametrize("name", ["nope", "fashion32_hard"])
def test_an_unknown_kernel_on_the_command_line_is_exit_2(name: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", "tweedie", "--op", "deblur-gauss", "--param",
                                       f"deblur-gauss.kernel={name}", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    _assert_lists_kernels(lines[0], name)
    assert not out.exists()  # refused before anything is written


def _assert_lists_kernels(message: str, name: str) -> None:
    assert "\n" not in message and "kernel=" in message and repr(name) in message
    assert re.search(r"valid values are (.*)$", message).group(1).split(", ") == list(KERNELS)


def test_the_committed_table_is_what_the_code_gives_for_the_named_kernels() -> None:
    """results/blur_difficulty.md's spectrum columns for the named kernels (the MMSE needs the dense
    posterior of a 1024-pixel prior, left to the script)."""
    table = (ROOT / "results" / "blur_difficulty.md").read_text()
    for name in KERNELS:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        size, sigma = scaled_blur(32, name)
        summary = spectrum_summary(Operator.create("deblur-gauss", {"kernel": name}), (1, 32, 32))
        assert cells[1:7] == [str(size), f"{sigma:g}", f"{summary.smallest:.3g}", f"{summary.largest:.4f}",
                              f"{summary.condition:.3g}", f"{summary.below_noise:.3f}"]
