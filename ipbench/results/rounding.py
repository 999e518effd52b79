"""How many digits a figure gets: as many as its uncertainty supports, and no more.

The rule (docs/metrics.md, "Rounding"): round the standard error of the mean to 2 significant digits, and
quote the mean, and anything shown beside it at the same scale (the std of a table cell, the bounds of a
paired interval), to the same decimal place. 20.9049 with SE 0.4736 is 20.90 (SE 0.47); 0.73441 with SE
0.03225 is 0.734 (SE 0.032); 20.9049 with SE 1.52 at n = 4 is 20.9 (SE 1.5). Two digits of the SE keep its
own rounding error under 5% (a one-digit SE of 0.15 could be anything from 0.145 to 0.155 read as 0.1 or
0.2), and a mean has no digit past the SE's second one that a rerun on other images would keep.

Where the SE is not known (one image, a set metric such as FID with one value per cell) or is 0 (every
image gave the same value), the figure keeps the fixed decimals its metric declares (METRICS[m].decimals).
Full precision stays in the tidy CSV; only what a reader sees is rounded.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SIGNIFICANT = 2  # digits of the standard error that are kept
MAX_DECIMALS = 12  # past float64's ~16 digits of a value near 1 nothing is real; this is far enough


def decimals_for(se: float, fallback: int) -> int:
    """The decimal place (digits after the point; negative: tens, hundreds ...) at which `se` rounded to
    SIGNIFICANT significant digits ends; `fallback` where `se` is nan, infinite or not positive.

    0.4736 -> 2 (0.47), 0.03225 -> 3 (0.032), 1.52 -> 1 (1.5), 0.0996 -> 2 (it rounds to 0.10, not
    0.0996's third digit), 13.4 -> 0 (13), 134 -> -1 (130)."""
    if not math.isfinite(se) or se <= 0:
        return fallback
    decimals = SIGNIFICANT - 1 - math.floor(math.log10(se))
    if round(se, decimals) >= 10 ** (SIGNIFICANT - decimals):  # 0.0996 -> 0.100: one digit too many
        decimals -= 1
    return min(decimals, MAX_DECIMALS)


def fixed(value: float, decimals: int, sign: bool = False) -> str:
    """`value` rounded to `decimals` places (negative: to tens, hundreds ...), '+' in front if `sign` and
    it is not negative; nan is 'nan'."""
    if math.isnan(value):
        return "nan"
    plus = "+" if sign else ""
    if decimals >= 0:
        return f"{value:{plus}.{decimals}f}"
    return f"{round(value, decimals):{plus}.0f}"


def with_spread(mean: float, spread: float, se: float, fallback: int, pm: str = " ± ") -> str:
    """'mean ± spread' both rounded at the decimal place of `se` (decimals_for); 'mean' alone where
    `spread` is nan (one value, nothing to spread)."""
    d = decimals_for(se, fallback)
    return fixed(mean, d) + ("" if math.isnan(spread) else pm + fixed(spread, d))


def with_interval(mean: float, low: float, high: float, se: float, fallback: int) -> tuple[str, str]:
    """('+1.20', '[+0.80, +1.60]'): a signed mean and its interval, all rounded at the decimal place of
    `se`, the standard error of that mean; the interval is '' where its bounds are nan."""
    d = decimals_for(se, fallback)
    interval = "" if math.isnan(low) or math.isnan(high) else f"[{fixed(low, d, True)}, {fixed(high, d, True)}]"
    return fixed(mean, d, True), interval


def standard_error(values: Sequence[float] | np.ndarray) -> float:
    """std (ddof 1) / sqrt(n) of `values`, nan ones left out; nan for fewer than two."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


__all__ = ["MAX_DECIMALS", "SIGNIFICANT", "decimals_for", "fixed", "standard_error", "with_interval", "with_spread"]
