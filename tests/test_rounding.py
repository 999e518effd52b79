"""ipbench.results.rounding: figures get the digits their standard error supports (2 significant digits of
the SE, the mean and what is shown beside it to the same decimal place)."""
from __future__ import annotations

import math

import pytest

from ipbench.results.rounding import decimals_for, fixed, standard_error, with_interval, with_spread


@pytest.mark.parametrize(("se", "decimals"), [
    (0.4736, 2), (0.03225, 3), (1.52, 1), (0.15, 2), (0.0996, 2), (0.00996, 3), (0.095, 3), (0.99999, 1),
    (13.4, 0), (134.0, -1), (995.0, -2), (1e-7, 8),
])
def test_the_decimal_place_of_the_se_rounded_to_two_significant_digits(se, decimals):
    assert decimals_for(se, fallback=4) == decimals
    shown = fixed(se, decimals)
    digits = shown.replace(".", "").lstrip("0").rstrip("0") or "0"
    assert 1 <= len(digits) <= 2, shown  # never more than two significant digits of the SE


@pytest.mark.parametrize("se", [math.nan, 0.0, -1.0, math.inf])
def test_an_unknown_or_zero_se_falls_back_to_the_metrics_decimals(se):
    assert decimals_for(se, fallback=4) == 4


def test_cells_and_intervals_are_rounded_where_their_se_ends():
    assert with_spread(20.9049, 4.6412, 0.4736, 2) == "20.90 ± 4.64"  # 96 images: SE 0.47
    assert with_spread(20.9049, 3.04, 1.52, 2) == "20.9 ± 3.0"  # 4 images: SE 1.5
    assert with_spread(0.73441, 0.129, 0.03225, 4) == "0.734 ± 0.129"  # SSIM, 16 images: SE 0.032
    assert with_spread(1234.5, 260.0, 130.0, 2) == "1230 ± 260"
    assert with_spread(12.5, math.nan, math.nan, 2) == "12.50"  # FID: one value, no SE: the metric's decimals
    assert with_spread(20.9, 1.0, 0.2, 2, r" $\pm$ ") == r"20.90 $\pm$ 1.00"
    assert with_interval(1.2049, 0.8031, 1.6012, 0.2013, 2) == ("+1.20", "[+0.80, +1.60]")
    assert with_interval(-0.0123456, -0.0181, -0.0066, 0.00291, 4) == ("-0.0123", "[-0.0181, -0.0066]")
    assert with_interval(0.5, math.nan, math.nan, math.nan, 2) == ("+0.50", "")


def test_standard_error_is_std_over_sqrt_n():
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.2909944 / 2)
    assert standard_error([1.0, math.nan, 3.0]) == pytest.approx(1.0)  # nan left out
    assert math.isnan(standard_error([1.0]))
