"""Paired comparisons of a run's solvers: bootstrap intervals and Wilcoxon signed-rank p-values per image.

Every solver of a run sees the same measurement for a given (operator, image, seed), so two solvers' rows
pair there, and the difference of a metric cancels what the pair shares. The seeds of one image share its
truth and are not independent: the differences are averaged over the seeds of each image first
(results.paired.image_differences), and the image is the unit of every statistic here (n = images).

- The interval is a nonparametric bootstrap of the mean over images (Efron & Tibshirani 1993, "An
  Introduction to the Bootstrap"): it assumes no normality of the per-image differences, which for LPIPS
  and for solvers that fail on a few images are skewed and heavy-tailed.
- The p-value is Wilcoxon's signed-rank test (Wilcoxon 1945, "Individual comparisons by ranking
  methods"): whether the per-image differences are symmetric about 0, robust to outlying images.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from ipbench.errors import UsageError
from ipbench.results.metric_registry import METRICS
from ipbench.results.paired import image_differences

BOOTSTRAP_METHOD = "BCa"
COLUMNS = ["solver", "baseline", "operator", "metric", "n", "mean", "low", "high", "p_wilcoxon", "significant",
           "better"]


MIN_RESAMPLES, MAX_RESAMPLES = 100, 100_000  # fewer is noise; more buys nothing at a run's n but time
CHUNK = 1 << 22  # values resampled at a time (32 MB of float64): memory stays flat however many images


def check_resamples(resamples: int) -> int:
    """`resamples` if it is within MIN_RESAMPLES..MAX_RESAMPLES, else a one-line UsageError naming the range."""
    if not MIN_RESAMPLES <= resamples <= MAX_RESAMPLES:
        raise UsageError(f"--resamples {resamples}: out of range; valid: {MIN_RESAMPLES} to {MAX_RESAMPLES:,}")
    return resamples


def bootstrap_interval(differences: np.ndarray, confidence: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """The `confidence` bootstrap interval of the mean of `differences` (one per image; images resampled
    with replacement), deterministic for a given `seed`: scipy.stats.bootstrap's BCa interval of np.mean,
    step by step (the same draws, the same formulas; tests/test_paired_stats.py holds them equal), computed
    in chunks of CHUNK values, so 100,000 images need no more memory than 400.

    Method: BCa, bias-corrected and accelerated (Efron & Tibshirani 1993, ch. 14). It is second-order
    accurate where the percentile interval is first-order: it corrects the percentiles for the bias and
    the skewness of the bootstrap distribution, which matters for skewed per-image differences (LPIPS, a
    solver that fails on a few images) and for sparse ones (two solvers equal on most images: the
    percentile interval of 39 zeros and a one is [0, 0.075], BCa's reaches 0.146, near the exact Poisson
    bound 5.57 / 40 = 0.139). Its jackknife of a mean has a closed form: (sum - d_i) / (n - 1).

    Degenerate cases: fewer than two differences, or any that is not finite, give (nan, nan); all equal
    differences d give (d, d) (every resample has mean d; scipy would warn and return nan)."""
    d = np.asarray(differences, dtype=float).ravel()
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan, math.nan
    if (d == d[0]).all():
        return float(d[0]), float(d[0])
    n, rng = len(d), np.random.default_rng(seed)
    batch = max(1, CHUNK // n)  # scipy's `batch`: one draw of all resamples whenever n x resamples fits
    means = np.concatenate([d[rng.integers(0, n, (min(batch, resamples - k), n))].mean(axis=-1)
                            for k in range(0, resamples, batch)])
    theta = d.mean()
    z0 = special.ndtri((np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (2 * resamples))
    leave_one_out = (d.sum() - d) / (n - 1)
    u = (n - 1) * (leave_one_out.mean() - leave_one_out)
    a = (np.sum(u ** 3) / n ** 3) / (6 * (np.sum(u ** 2) / n ** 2) ** 1.5)
    z = float(special.ndtri((1 - confidence) / 2))
    alphas = [special.ndtr(z0 + (z0 + zz) / (1 - a * (z0 + zz))) for zz in (z, -z)]
    low, high = np.quantile(means, alphas)
    return float(low), float(high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test (Wilcoxon 1945) that the per-image `differences`
    are symmetric about 0, by scipy.stats.wilcoxon with its defaults: zeros dropped (Wilcoxon's own rule),
    the exact null distribution up to 50 differences without ties or zeros, an exact permutation test up to
    13 with them, the normal approximation past those. So no small sample gets the normal approximation
    and scipy (>= 1.15) has no small-sample warning to give: none is silenced here. Fewer than two
    differences, or any not finite: nan; all zeros: 1.0 (no evidence either way; scipy would divide 0 by 0)."""
    d = np.asarray(differences, dtype=float).ravel()
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan
    if (d == 0).all():
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def paired_comparisons(rows: pd.DataFrame, baseline: str | None = None, metrics: Sequence[str] | None = None,
                       confidence: float = 0.95, resamples: int = 10_000) -> pd.DataFrame:
    """Per (solver, baseline, operator, metric): the mean over images of solver - baseline, paired on
    (operator, image, seed) over ok rows, seeds averaged within an image; its bootstrap interval
    (bootstrap_interval), Wilcoxon p-value (wilcoxon_p), whether the interval excludes 0 and, if it does,
    which of the two is better on the metric ("solver" or "baseline"; "" if not significant).

    With `baseline`, every other solver against it; without, every unordered pair of solvers, the later
    one in row order as `solver` and the earlier as `baseline`. `metrics` default to those of METRICS
    that are columns of `rows`. Lines come in the order of the solvers, then baselines, then operators as
    they first appear in `rows`, then of `metrics`; an operator where a pair has no ok rows in common gives
    none. Columns: COLUMNS."""
    check_resamples(resamples)
    solvers = list(dict.fromkeys(rows["solver"]))
    if baseline is not None and baseline not in solvers:
        raise UsageError(f"baseline {baseline}: not a solver of these rows (valid: {', '.join(map(str, solvers))})")
    metrics = [m for m in METRICS if m in rows.columns] if metrics is None else list(metrics)
    missing = [m for m in metrics if m not in rows.columns or m not in METRICS]
    if missing:
        raise UsageError(f"metric {', '.join(missing)}: not a column of these rows (they have: "
                         f"{', '.join(m for m in METRICS if m in rows.columns)})")
    position = {solver: i for i, solver in enumerate(solvers)}
    operators = {operator: i for i, operator in enumerate(dict.fromkeys(rows["operator"]))}
    bases = [baseline] if baseline is not None else solvers[:-1]
    records = []
    for base in bases:
        for k, metric in enumerate(metrics):
            for (solver, operator), d in image_differences(rows, base, metric).items():
                if baseline is None and position[solver] < position[base]:
                    continue  # that pair is this one the other way round: it comes with `solver` as baseline
                records.append(_line(solver, base, operator, metric, d.to_numpy(), confidence, resamples)
                               | {"_order": (position[solver], position[base], operators[operator], k)})
    records.sort(key=lambda r: r.pop("_order"))
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _line(solver: str, baseline: str, operator: str, metric: str, d: np.ndarray, confidence: float,
          resamples: int) -> dict[str, object]:
    """One line of paired_comparisons from the per-image differences `d`."""
    low, high = bootstrap_interval(d, confidence, resamples)
    significant = bool(low > 0 or high < 0)  # False when nan
    higher = (low > 0) == (METRICS[metric].better == "higher")  # solver above baseline == higher is better
    return {"solver": solver, "baseline": baseline, "operator": operator, "metric": metric, "n": len(d),
            "mean": float(np.mean(d)), "low": low, "high": high, "p_wilcoxon": wilcoxon_p(d),
            "significant": significant, "better": ("solver" if higher else "baseline") if significant else ""}


__all__ = ["BOOTSTRAP_METHOD", "COLUMNS", "MAX_RESAMPLES", "MIN_RESAMPLES", "bootstrap_interval", "check_resamples", "paired_comparisons", "wilcoxon_p"]
