"""Paired comparisons of a run's solvers: bootstrap intervals and Wilcoxon signed-rank p-values per image.

Every solver of a run sees the same measurement for a given (operator, image, seed), so two solvers' rows
pair there, and the difference of a metric cancels what the pair shares. The seeds of one image share its
truth and are not independent: the differences are averaged over the seeds of each image first
(results.paired.image_differences), and the image is the unit of every statistic here (n = images).

- The interval is a nonparametric bootstrap of the mean over images (Efron & Tibshirani 1993, "An
  Introduction to the Bootstrap"): it assumes no normality of the per-image differences, which for LPIPS
  and for solvers that fail on a few images are skewed and heavy-tailed.
- The p-value is Wilcoxon's signed-rank test (Wilcoxon 1945, "Individual comparisons by ranking
  methods"): whether the per-image differences are symmetric about 0, robust to outlying images; exact
  (the null distribution of every sign flip of the observed ranks) up to EXACT_LIMIT differences.
- A difference is significant (marked, bold, "better") only when both agree: the interval leaves out 0 and
  p < 1 - confidence. The exact test cannot go below 2 / 2^m on m nonzero differences, so below
  min_nonzero(...) (6 at 0.05) nothing is marked at all, however far from 0 the interval lies: the
  bootstrap of 4 images resamples only 4 values, and its interval is too narrow to be read alone.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from ipbench.errors import UsageError
from ipbench.results.metric_registry import METRICS
from ipbench.results.paired import image_differences_by_metric
from ipbench.results.rounding import standard_error

BOOTSTRAP_METHOD = "BCa"
COLUMNS = ["solver", "baseline", "operator", "metric", "n", "nonzero", "mean", "se", "low", "high", "p_wilcoxon",
           "significant", "too_few", "better"]
EXACT_LIMIT = 300  # nonzero differences up to which the signed-rank p is exact (0.05 s at 300; docs/metrics.md)


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
    percentile interval of 39 zeros and a one is [0, 0.075]; BCa's is [0, 0.125] with the default 10,000
    resamples and seed 0, as scipy.stats.bootstrap's under scipy 1.17, nearer the exact Poisson bound
    5.57 / 40 = 0.139; tests/test_paired_stats.py measures both). Its jackknife of a mean has a closed
    form: (sum - d_i) / (n - 1).

    Degenerate cases: fewer than two differences, or any that is not finite, give (nan, nan); all equal
    differences d give (d, d) (every resample has mean d; scipy would warn and return nan)."""
    d = np.asarray(differences, dtype=float).ravel()
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan, math.nan
    if (d == d[0]).all():
        return float(d[0]), float(d[0])
    n = len(d)
    batch = max(1, CHUNK // n)  # scipy's `batch`: one draw of all resamples whenever n x resamples fits
    if batch >= resamples:
        means = d[_resample_indices(n, resamples, seed)].mean(axis=-1)
    else:
        rng = np.random.default_rng(seed)
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


@functools.lru_cache(maxsize=2)
def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Every resample's image indices when they fit in one chunk, drawn once: they depend on n, resamples
    and seed alone, so a report's intervals over the same images (every pair, operator and metric) share
    one draw instead of each drawing the same numbers again. At most CHUNK values each (32 MB)."""
    indices = np.random.default_rng(seed).integers(0, n, (resamples, n))
    indices.flags.writeable = False  # shared between calls
    return indices


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test (Wilcoxon 1945) that the per-image `differences`
    are symmetric about 0.

    Zeros are dropped (Wilcoxon's own rule: an image where the two solvers agree says nothing about the
    sign), and the m nonzero differences are ranked by size, ties sharing their mean rank. Up to
    EXACT_LIMIT of them the p-value is exact: the null distribution of W+ (the sum of the positive ranks)
    over all 2^m sign flips of those ranks, ties included (signed_rank_distribution), p = 2 min(P(W+ <= w),
    P(W+ >= w)) capped at 1, the same as a permutation test over every sign flip. Past EXACT_LIMIT:
    scipy.stats.wilcoxon's normal approximation with its tie correction, on the nonzero differences.

    Why not scipy.stats.wilcoxon with its defaults: its choice of method counts the zeros (n > 13 with a
    zero or a tie goes to the normal approximation), so 39 zeros and a one get p = 0.317 where the exact p
    is 1.0; and its "exact" method with ties rounds the statistic onto the untied distribution, which is
    not the exact p either (tests/test_paired_stats.py checks both against brute force).

    Fewer than two differences, or any not finite: nan; all zeros: 1.0 (no evidence either way)."""
    d = np.asarray(differences, dtype=float).ravel()
    if len(d) < 2 or not np.isfinite(d).all():
        return math.nan
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    if len(d) > EXACT_LIMIT:
        from scipy import stats  # here only: importing scipy.stats takes half a second

        return float(stats.wilcoxon(d, method="asymptotic").pvalue)
    doubled = np.rint(2 * average_ranks(np.abs(d))).astype(np.int64)  # mean ranks are k / 2: doubled, integers
    w = int(doubled[d > 0].sum())
    cumulative = _null_cumulative(doubled)
    # P(W+ >= w) = P(W+ <= total - w) by the symmetry of the null: both tails summed from their small end,
    # so a small p keeps its digits (1 - P(W+ < w) would lose them)
    return float(min(1.0, 2 * min(cumulative[w], cumulative[int(doubled.sum()) - w])))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """scipy.stats.rankdata(values): ranks 1 .. n, ties sharing their mean rank (exact halves), without the
    import of scipy.stats that a report would otherwise pay for this alone."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of equal values begins
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


EXACT_SIGNS = 53  # float64's significand: P(W+ <= k) over 2^m sign flips is exact up to m = 53


def _null_cumulative(ranks: np.ndarray) -> np.ndarray:
    """np.cumsum(signed_rank_distribution(ranks)). Up to EXACT_SIGNS ranks every value is a count over 2^m
    held exactly, so the order of the ranks cannot change a bit: the lines of a report whose differences
    have the same ranks (every untied line of n images) share one computation."""
    if len(ranks) > EXACT_SIGNS:
        return np.cumsum(signed_rank_distribution(ranks))
    return _cumulative_of_sorted(np.sort(ranks).tobytes())


@functools.lru_cache(maxsize=256)
def _cumulative_of_sorted(ranks: bytes) -> np.ndarray:
    cumulative = np.cumsum(signed_rank_distribution(np.frombuffer(ranks, dtype=np.int64)))
    cumulative.flags.writeable = False  # shared between calls
    return cumulative


def signed_rank_distribution(ranks: np.ndarray) -> np.ndarray:
    """P(W+ = k) for k = 0 .. sum(ranks), W+ the sum of the integer `ranks` whose sign is + when each sign
    is + or - with probability 1/2, independently (the null of the signed-rank test, given the ranks).
    One rank at a time: P_i(k) = (P_(i-1)(k) + P_(i-1)(k - r_i)) / 2, O(m sum(ranks)) operations."""
    total = int(ranks.sum())
    p = np.zeros(total + 1)
    p[0], top = 1.0, 0
    for r in ranks.tolist():
        top += r
        shifted = p[:top + 1 - r].copy()
        p[:top + 1] *= 0.5
        p[r:top + 1] += 0.5 * shifted
    return p


def min_nonzero(alpha: float = 0.05) -> int:
    """The fewest nonzero differences at which the exact two-sided signed-rank test can give p < `alpha`:
    its smallest p on m differences is 2 / 2^m (every sign alike), so 6 at 0.05 (2 / 64 = 0.031; at 5,
    2 / 32 = 0.0625)."""
    m = 1
    while 2.0 / 2 ** m >= alpha:
        m += 1
    return m


def too_few_text(n: int, nonzero: int, alpha: float = 0.05) -> str:
    """Why a difference of `n` images (`nonzero` of them not 0) is not marked whatever its interval; ''
    where the test can reach p < `alpha`."""
    need = min_nonzero(alpha)
    if n < need:
        return f"too few images (n = {n}; the signed-rank test needs n >= {need} to reach p < {alpha:g})"
    if nonzero < need:
        return (f"too few images that differ ({nonzero} of n = {n}; the signed-rank test needs >= {need} to "
                f"reach p < {alpha:g})")
    return ""


def paired_comparisons(rows: pd.DataFrame, baseline: str | None = None, metrics: Sequence[str] | None = None,
                       confidence: float = 0.95, resamples: int = 10_000) -> pd.DataFrame:
    """Per (solver, baseline, operator, metric): the mean over images of solver - baseline, paired on
    (operator, image, seed) over ok rows, seeds averaged within an image; n images, how many of their
    differences are not 0 (`nonzero`), the mean's standard error (`se`, std / sqrt(n), which sets the
    digits it is shown with: results/rounding.py), its bootstrap interval (bootstrap_interval), Wilcoxon
    p-value (wilcoxon_p); `significant` when the interval leaves out 0 and p < 1 - confidence; `too_few`
    when the test cannot reach that p at this many nonzero differences (min_nonzero: then never
    significant); and, if significant, which of the two is better on the metric ("solver" or "baseline";
    "" otherwise).

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
        by_metric = image_differences_by_metric(rows, base, metrics)
        for k, metric in enumerate(metrics):
            for (solver, operator), d in by_metric[metric].items():
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
    p, alpha = wilcoxon_p(d), 1 - confidence
    nonzero = int(np.count_nonzero(d))
    too_few = nonzero < min_nonzero(alpha)
    significant = bool((low > 0 or high < 0) and p < alpha) and not too_few  # False when nan
    higher = (low > 0) == (METRICS[metric].better == "higher")  # solver above baseline == higher is better
    return {"solver": solver, "baseline": baseline, "operator": operator, "metric": metric, "n": len(d),
            "nonzero": nonzero, "mean": float(np.mean(d)), "se": standard_error(d), "low": low, "high": high,
            "p_wilcoxon": p, "significant": significant, "too_few": too_few,
            "better": ("solver" if higher else "baseline") if significant else ""}


__all__ = ["BOOTSTRAP_METHOD", "COLUMNS", "EXACT_LIMIT", "MAX_RESAMPLES", "MIN_RESAMPLES", "bootstrap_interval",
           "check_resamples", "min_nonzero", "paired_comparisons", "signed_rank_distribution", "too_few_text",
           "wilcoxon_p"]
