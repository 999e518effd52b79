"""What K posterior draws on one measurement give (`bench run --samples K`): the sample mean, the spread, the oracle.

A posterior sampler draws x_1..x_K from (an approximation of) p(x | y). Scoring one draw as a point estimate is
what the field's tables do; K draws also give
- the sample mean, ipbench's estimate of the posterior mean E[x | y] (the MMSE estimate), and its metrics
  (`mean.psnr`, ...), which for a good sampler beat the per-sample ones;
- the per-pixel standard deviation over the draws (the sampler's uncertainty), its mean (`std_mean`), and how
  well it predicts the sample mean's error: the Pearson correlation of std and |mean - x| over the pixels of the
  image (`std_error_corr`, nan when either is constant);
- the diversity of the draws: their mean pairwise LPIPS (`diversity`, with LPIPS among the run's metrics);
- calibration: the fraction of the image's pixels whose true value falls inside the draws' central prediction
  interval at 50, 90 and 95% (`coverage.50`, ...): mean_K +- t_{K-1, (1+p)/2} s_K sqrt(1 + 1/K), with s_K the draws'
  per-pixel std. For draws from a Gaussian posterior the truth is one more draw, so this interval covers it with
  probability exactly p (Student's t prediction interval); a sampler whose spread is too small covers less;
- best-of-K metrics (`oracle.psnr`, ...): each metric's best draw, chosen against the truth and per metric, as
  DAPS's evaluation and InverseBench's report them. Labelled an oracle: no estimator can choose that draw
  without the truth, so it is never a table's default nor in a paired comparison.
Every value is per measurement and is attached to each of its draws' rows.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import Tensor

from ipbench.results.metric_registry import METRICS
from ipbench.results.metrics import compute_metrics


def pixel_std(draws: Tensor) -> Tensor:
    """Per-pixel standard deviation over the first axis (K draws), with K - 1 in the denominator; 0 for K = 1."""
    return draws.std(0, unbiased=True) if draws.shape[0] > 1 else torch.zeros_like(draws[0])


def std_error_correlation(std: Tensor, error: Tensor) -> float:
    """Pearson correlation of two same-shaped maps over their pixels; nan when either is constant."""
    a, b = std.flatten().double(), error.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float(a @ b) / denominator if denominator > 0 else math.nan


COVERAGE_LEVELS = (0.5, 0.9, 0.95)


def coverage(draws: Tensor, x: Tensor, levels: Sequence[float] = COVERAGE_LEVELS) -> dict[float, float]:
    """{p: fraction of pixels of x inside the K draws' t prediction interval at level p} (module docstring);
    empty for K < 2, which has no spread to make an interval from."""
    k = draws.shape[0]
    if k < 2:
        return {}
    from scipy.special import stdtrit  # Student's t quantiles; scipy is imported only by runs with draws

    mean, spread = draws.double().mean(0), pixel_std(draws.double()) * math.sqrt(1 + 1 / k)
    distance = (x.double() - mean).abs()
    return {p: float((distance <= float(stdtrit(k - 1, (1 + p) / 2)) * spread).double().mean()) for p in levels}


def sample_statistics(draws: Tensor, x: Tensor, per_draw: dict[str, Tensor], metrics: Sequence[str]
                      ) -> tuple[dict[str, float], Tensor]:
    """The values above for one measurement: `draws` (K, C, H, W) in [0, 1] (the draws that succeeded), `x` the
    truth (C, H, W), `per_draw` each metric's value of every draw ({name: (K,)}). Returns them and the std map."""
    k = draws.shape[0]
    mean, std = draws.mean(0), pixel_std(draws)
    stats: dict[str, float] = {"samples_ok": float(k), "std_mean": float(std.mean())}
    stats |= {f"mean.{name}": float(value[0]) for name, value in compute_metrics(mean[None], x[None], metrics).items()}
    for name, values in per_draw.items():
        best = values.max() if METRICS[name].better == "higher" else values.min()
        stats[f"oracle.{name}"] = float(best)
    stats["std_error_corr"] = std_error_correlation(std, (mean - x).abs()) if k > 1 else math.nan
    stats |= {f"coverage.{round(100 * p)}": value for p, value in coverage(draws, x).items()}
    if "lpips" in metrics and k > 1:
        pairs = list(itertools.combinations(range(k), 2))
        first, second = draws[[i for i, _ in pairs]], draws[[j for _, j in pairs]]
        stats["diversity"] = float(compute_metrics(first, second, ["lpips"])["lpips"].mean())
    return stats, std
