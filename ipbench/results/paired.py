"""Paired differences between two runs on the same images and seeds (e.g. bf16 against fp32).

Two runs that share their measurements and solver draws (ipbench seeds per image) differ per row only
by what changed between them: the per-row difference B - A, paired on (solver, operator, image, seed),
cancels what the pair shares (image, measurement, draws), so its mean and standard error say whether the
change moved a metric, and its extremes how far it moved one image. Failed rows are left out when read,
and rows present in one run only are counted, not paired.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ipbench.errors import UsageError
from ipbench.results.rows import ROW_FILES, load_rows

KEYS = ["solver", "operator", "image", "seed"]
METRICS = ["psnr", "ssim", "lpips"]


def read_rows(path: str | Path) -> pd.DataFrame:
    """A run folder's rows (a sharded run's files together), or one rows file's; failed rows left out."""
    found = Path(path).is_file() or any(Path(path).glob(ROW_FILES))
    if not found:
        raise UsageError(f"{path}: no rows.jsonl there (give a run folder or a rows.jsonl file)")
    rows = load_rows(path) if Path(path).is_dir() else pd.read_json(path, lines=True)
    return rows[rows["status"] == "ok"] if "status" in rows else rows


def read_metric_rows(path: str | Path, metric: str) -> pd.DataFrame:
    """`read_rows(path)`, refused in one line unless `metric` is one of METRICS and a column of those rows
    (what the benchmark scripts that summarise one metric of a run check first)."""
    rows = read_rows(path)
    if metric not in METRICS or metric not in rows.columns:
        valid = ", ".join(m for m in METRICS if m in rows.columns) or "none"
        raise UsageError(f"--metric {metric}: not a metric of {path}'s rows (valid: {valid})")
    return rows


@dataclass(frozen=True)
class PairedDifference:
    """The differences B - A of one metric over the pairs of one solver and operator."""

    solver: str
    operator: str
    metric: str
    mean: float
    se: float  # standard error of the mean; nan for a single pair
    min: float
    max: float
    n: int

    @property
    def half_width(self) -> float:
        """Half-width of the 95% Student-t interval of the mean (nan for a single pair)."""
        from scipy.stats import t as student_t  # here only: importing scipy.stats takes half a second

        return float(student_t.ppf(0.975, self.n - 1)) * self.se if self.n > 1 else math.nan


@dataclass(frozen=True)
class Pairing:
    """What pairing two runs gives: the differences, and how many rows of each run found no partner."""

    pairs: int
    unpaired_a: int
    unpaired_b: int
    differences: list[PairedDifference]


def paired_differences(a: pd.DataFrame, b: pd.DataFrame) -> Pairing:
    """Rows of `a` and `b` paired on KEYS; per solver, operator and metric (of METRICS, in both runs) the
    mean of B - A, its standard error, extremes and count, sorted by solver and operator."""
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    differences = []
    for (solver, operator), group in both.groupby(["solver", "operator"]):
        for metric in (m for m in METRICS if f"{m}_a" in group):
            d = group[f"{metric}_b"] - group[f"{metric}_a"]
            se = d.std() / len(d) ** 0.5 if len(d) > 1 else float("nan")
            differences.append(PairedDifference(solver, operator, metric, d.mean(), se, d.min(), d.max(), len(d)))
    return Pairing(len(both), len(a) - len(both), len(b) - len(both), differences)


def image_differences(rows: pd.DataFrame, baseline: str, metric: str) -> dict[tuple[str, str], pd.Series]:
    """Within one run: per (solver, operator), the solver's `metric` minus the baseline solver's on the same
    operator, image and seed (the same measurement), averaged over the seeds of each image, indexed by image
    (sorted, so the result does not depend on row order). The seeds of one image share its truth and are not
    independent, so the image is the unit: a line's length is its number of images. Only ok rows pair, a
    pair missing the metric is left out, and an operator where the baseline has no ok rows gives no lines.
    Keys come in the order the solvers, then operators, first pair in `rows`."""
    return image_differences_by_metric(rows, baseline, [metric])[metric]


def image_differences_by_metric(rows: pd.DataFrame, baseline: str, metrics: Sequence[str]
                                ) -> dict[str, dict[tuple[str, str], pd.Series]]:
    """image_differences of each of `metrics`: the rows are paired once, since the pairing does not depend
    on the metric (a report pairs every solver with each baseline on every metric)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    base = ok[ok["solver"] == baseline][["operator", "image", "seed", *metrics]]
    both = ok[ok["solver"] != baseline].merge(base, on=["operator", "image", "seed"], suffixes=("", "_baseline"))
    out = {}
    for metric in metrics:
        pairs = both[["solver", "operator", "image"]].assign(
            difference=both[metric].astype(float) - both[f"{metric}_baseline"].astype(float))
        pairs = pairs.dropna(subset=["difference"])
        # one grouping of all lines, sorted by line then image, cut where the line changes: the same per-image
        # means as grouping each line on its own, without pandas' cost per group
        means = pairs.groupby(["solver", "operator", "image"])["difference"].mean()
        solver_codes, operator_codes, _ = means.index.codes
        cuts = np.flatnonzero(np.diff(solver_codes) | np.diff(operator_codes)) + 1
        starts, ends = (np.r_[0, cuts], np.r_[cuts, len(means)]) if len(means) else ([], [])
        images, values = means.index.get_level_values("image"), means.to_numpy()
        lines = {(means.index.levels[0][solver_codes[a]], means.index.levels[1][operator_codes[a]]):
                 pd.Series(values[a:b], index=images[a:b], name="difference") for a, b in zip(starts, ends)}
        order = dict.fromkeys(zip(pairs["solver"].to_numpy(), pairs["operator"].to_numpy()))  # first-pairing order
        out[metric] = {key: lines[key] for key in order}
    return out


def against_baseline(rows: pd.DataFrame, baseline: str, metric: str = "psnr") -> list[PairedDifference]:
    """Within one run: per (solver, operator), the mean over images of the solver's `metric` minus the
    baseline solver's (image_differences: paired on image and seed, seeds averaged within an image, n =
    images), its standard error and extremes."""
    out = []
    for (solver, operator), d in image_differences(rows, baseline, metric).items():
        se = d.std() / len(d) ** 0.5 if len(d) > 1 else math.nan
        out.append(PairedDifference(solver, operator, metric, d.mean(), se, d.min(), d.max(), len(d)))
    return out


def t_interval(differences: list[float]) -> tuple[float, float]:
    """The mean of paired differences and the half-width of its 95% Student-t interval (nan for one pair)."""
    n = len(differences)
    if n < 2:
        return statistics.mean(differences), float("nan")
    from scipy.stats import t as student_t  # here only: importing scipy.stats takes half a second

    return statistics.mean(differences), float(student_t.ppf(0.975, n - 1)) * statistics.stdev(differences) / math.sqrt(n)


__all__ = ["against_baseline", "image_differences", "image_differences_by_metric", "KEYS", "METRICS", "Pairing", "PairedDifference", "paired_differences", "read_rows", "t_interval"]
