"""The measurement-fit statistic: Pearson's chi-squared per measurement, recomputed here from its formula;
about 1 for the true image under each noise model, large for a reconstruction that ignores the data, nan for
a noiseless measurement; and the tables' fit column, only for rows that have one."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ipbench.operators import Operator, measure
from ipbench.results.measurement_fit import measurement_fit
from ipbench.results.table import FIT_HEADER, _fit_note, summarize, to_latex, to_markdown
from tests.conftest import generators

SHAPE = (3, 48, 48)  # m = 6912 measurements per image: the truth's fit has std sqrt(2 / m) = 0.017 (Gaussian)


def _problem(name: str, params: dict, x: torch.Tensor):
    physics = Operator.create(name, params).build(x.shape[1:], generators(len(x)), "cpu")
    return physics, measure(physics, x, generators(len(x), seed=100))


def _images(n: int = 2, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    return low + (high - low) * torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(7))


def _pearson(y: np.ndarray, a: np.ndarray, sigma: float, rate: float | None) -> float:
    """The module docstring's formula, written out with numpy for one image."""
    if rate is None:
        return float(np.mean((y - a) ** 2 / sigma**2))
    mean = np.maximum(a, 0)
    keep = (mean > 0) | (y != 0)
    v = sigma**2 + np.maximum(mean, 1 / rate) / rate
    return float(np.sum(((y - mean) ** 2 / v)[keep]) / keep.sum())


@pytest.mark.parametrize("name, params", [
    ("deblur-gauss", {"sigma_y": 0.05}),
    ("sr", {"sigma_y": 0.02}),
    ("inpaint-random", {"sigma_y": 0.1, "noise": "poisson-gaussian", "rate": 100.0}),
    ("deblur-gauss", {"sigma_y": 0.0, "noise": "poisson", "rate": 50.0}),
])
def test_the_fit_is_the_formula_and_about_one_for_the_truth(name, params) -> None:
    x = _images()
    physics, y = _problem(name, params, x)
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    rate = params.get("rate") if params.get("noise") else None
    a = physics.A(x_hat).double().numpy()  # per-image operators (random masks): the whole batch at once
    for image, fit in enumerate(measurement_fit(physics, x_hat, y).tolist()):
        assert fit == pytest.approx(_pearson(y[image].double().numpy(), a[image], params["sigma_y"], rate), rel=1e-6)  # sigma kept in float32
    truth = measurement_fit(physics, x, y)
    assert truth.dtype == torch.float64 and truth.shape == (len(x),)
    assert torch.all((truth - 1).abs() < 0.1), truth  # > 5 std of the Gaussian case's chi^2 / m
    assert torch.all(measurement_fit(physics, torch.zeros_like(x), y) > 5)  # ignores the data


def test_a_black_background_under_poisson_noise_is_left_out_not_counted_as_a_perfect_fit() -> None:
    x = _images()
    x[..., :24, :] = 0.0  # half the image black: no photons, y = 0 exactly there
    physics, y = _problem("inpaint-random", {"sigma_y": 0.0, "noise": "poisson", "rate": 255.0, "p": 0.3}, x)
    assert bool((y[..., :24, :] == 0).all())
    fit = measurement_fit(physics, x, y)
    assert torch.all((fit - 1).abs() < 0.1), fit  # counting the blank half would give about 0.5


def test_a_noiseless_measurement_has_no_fit() -> None:
    x = _images()
    physics, y = _problem("deblur-gauss", {"sigma_y": 0.0}, x)
    assert torch.isnan(measurement_fit(physics, x, y)).all()


def _rows(with_fit: bool) -> pd.DataFrame:
    rows = []
    for solver, fit in (("a", 1.1), ("b", 9.0)):
        for image in ("i0", "i1", "i2"):
            row = {"solver": solver, "operator": "deblur-gauss", "image": image, "seed": 0, "psnr": 20.0,
                   "ssim": 0.5, "lpips": 0.2, "seconds": 1.0, "nfe": 10, "status": "ok"}
            rows.append({**row, "fit": fit + (image == "i2") * 100, "fit_truth": 0.99} if with_fit else row)
    return pd.DataFrame(rows)


def test_the_table_shows_each_cells_median_fit_and_the_truths_beside_in_the_caption() -> None:
    summary = summarize(_rows(True))
    header = to_markdown(summary, "").splitlines()[0]
    assert f"deblur-gauss {FIT_HEADER}" in header
    lines = {line.split(" | ")[0].strip("| "): line for line in to_markdown(summary, "").splitlines()[2:4]}
    assert " 1.1 |" in lines["a"] and " 9 |" in lines["b"]  # medians: the outlier row of 100 does not move them
    assert r"fit $\chi^2/m$" in to_latex(summary, "")
    assert "the true images score deblur-gauss 0.99" in _fit_note(summary)  # the caption's fit sentence


def test_rows_from_before_the_fit_give_the_table_they_always_had() -> None:
    summary = summarize(_rows(False))
    assert "fit" not in summary and FIT_HEADER not in to_markdown(summary, "")
    assert not math.isnan(summary["mean"].iloc[0])
