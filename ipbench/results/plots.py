"""The report's figures (matplotlib, no pyplot: each figure is its own object, drawn off-screen to PNG bytes).

- `distribution_png`: per metric, one box per solver over its images, every image a point on it;
- `cost_png`: quality against cost (s / image, NFE), one point per solver, the Pareto front drawn;
- `sweep_png`: a metric against the one field a family of solver entries varies;
- `forest_png`: paired differences to a baseline with their intervals.
"""
from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ipbench.results.metric_registry import METRICS

DPI = 100
FRONT_COLOR = "#d62728"


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # laid out by tight_layout: a second "tight" pass doubles the cost
    return buffer.getvalue()


def _arrow(metric: str) -> str:
    return f"{METRICS[metric].label} {'↑' if METRICS[metric].better == 'higher' else '↓'}"


def distribution_png(per_image: pd.DataFrame, solvers: Sequence[str], metrics: Sequence[str]) -> bytes:
    """One panel per metric: a box per solver over its per-image values (`per_image` has solver, image and
    the metric columns, seeds already averaged), with each image as a jittered point on top."""
    figure = Figure(figsize=(min(12.0, 2.0 + 0.7 * len(solvers)), 2.8 * len(metrics)))
    jitter = np.random.default_rng(0)  # fixed: the same report twice is the same picture
    for k, metric in enumerate(metrics):
        axes = figure.add_subplot(len(metrics), 1, k + 1)
        values = [per_image.loc[per_image["solver"] == s, metric].dropna().to_numpy() for s in solvers]
        shown = [i for i, v in enumerate(values) if len(v)]
        if shown:
            axes.boxplot([values[i] for i in shown], positions=[i + 1 for i in shown], widths=0.6,
                         showfliers=False, medianprops={"color": "black"})
            for i in shown:
                x = i + 1 + jitter.uniform(-0.18, 0.18, len(values[i]))
                axes.plot(x, values[i], "o", ms=2.5, alpha=0.55, color="#1f77b4")
        last = k == len(metrics) - 1  # solver names under the bottom panel only
        axes.set_xticks(range(1, len(solvers) + 1), list(solvers) if last else [""] * len(solvers),
                        rotation=35 if last else 0, ha="right" if last else "center", fontsize=8)
        axes.set_xlim(0.4, len(solvers) + 0.6)
        axes.set_ylabel(_arrow(metric))
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def pareto_front(cost: Sequence[float], quality: Sequence[float], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point dominates (as cheap or cheaper and as good or better, one of
    the two strictly), ordered by cost. Points with a missing value are never on the front."""
    sign = 1.0 if higher_is_better else -1.0
    points = [(c, sign * q, i) for i, (c, q) in enumerate(zip(cost, quality))
              if not (math.isnan(c) or math.isnan(q))]
    front = []
    for c, q, i in points:
        dominated = any(c2 <= c and q2 >= q and (c2 < c or q2 > q) for c2, q2, _ in points)
        if not dominated:
            front.append((c, i))
    return [i for _, i in sorted(front)]


COSTS = {"seconds": "s / image (log)", "nfe": "NFE (network calls per image)"}


def cost_png(summary: pd.DataFrame, metrics: Sequence[str]) -> tuple[bytes, dict[tuple[str, str], list[str]]]:
    """Quality against cost for one operator: a panel per (metric, cost), one point per solver (`summary`:
    solver, seconds, nfe and the metrics' means), the Pareto front as a red line. Returns the PNG and the
    front's solvers per (metric, cost), for the text beside the figure."""
    figure = Figure(figsize=(5.0 * len(COSTS), 3.8 * len(metrics)))
    fronts: dict[tuple[str, str], list[str]] = {}
    for r, metric in enumerate(metrics):
        for c, cost in enumerate(COSTS):
            axes = figure.add_subplot(len(metrics), len(COSTS), r * len(COSTS) + c + 1)
            part = summary[["solver", cost, metric]].dropna()
            x = part[cost].to_numpy(float)
            if cost == "seconds":
                x = np.maximum(x, 1e-5)  # a classical baseline's microseconds stay on a log axis
                axes.set_xscale("log")
            else:
                axes.set_xscale("symlog", linthresh=1.0)  # NFE 0 (no network) stays on the axis
            y = part[metric].to_numpy(float)
            front = pareto_front(list(x), list(y), METRICS[metric].better == "higher")
            fronts[(metric, cost)] = [str(part["solver"].iloc[i]) for i in front]
            axes.plot(x, y, "o", color="#1f77b4")
            axes.plot(x[front], y[front], "-o", color=FRONT_COLOR, lw=1.5, ms=7, mfc="none", label="Pareto front")
            for xi, yi, name in zip(x, y, part["solver"]):
                axes.annotate(str(name), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=8)
            axes.set_xlabel(COSTS[cost])
            axes.set_ylabel(_arrow(metric))
            axes.grid(alpha=0.3)
            if r == 0 and c == 0:
                axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return _png(figure), fronts


def sweep_png(points: pd.DataFrame, field: str, metrics: Sequence[str]) -> bytes:
    """A metric against the swept field: `points` has operator, value (of the field), and per metric its
    mean and standard error over images (`<metric>`, `<metric>_se`); one line per operator."""
    figure = Figure(figsize=(4.2 * len(metrics), 3.4))
    numeric = pd.to_numeric(points["value"], errors="coerce").notna().all()
    for k, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), k + 1)
        for operator, part in points.groupby("operator", sort=False):
            part = part.sort_values("value") if numeric else part
            x = part["value"].to_numpy(float) if numeric else np.arange(len(part))
            axes.errorbar(x, part[metric], yerr=part[f"{metric}_se"], marker="o", capsize=3, label=str(operator))
            if not numeric:
                axes.set_xticks(x, [str(v) for v in part["value"]])
        axes.set_xlabel(field)
        axes.set_ylabel(_arrow(metric))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def forest_png(comparisons: pd.DataFrame, metrics: Sequence[str]) -> bytes:
    """Paired differences of one operator: per metric, one line per solver pair with the mean and its
    interval; filled where the interval leaves out 0, hollow where it holds 0."""
    labels = list(dict.fromkeys(f"{s} − {b}" for s, b in zip(comparisons["solver"], comparisons["baseline"])))
    figure = Figure(figsize=(4.0 * len(metrics), 0.8 + 0.35 * len(labels)))
    for k, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), k + 1)
        part = comparisons[comparisons["metric"] == metric]
        for _, line in part.iterrows():
            y = labels.index(f"{line['solver']} − {line['baseline']}")
            axes.plot([line["low"], line["high"]], [y, y], color="black", lw=1.2)
            axes.plot(line["mean"], y, "o", color="black", mfc="black" if line["significant"] else "white")
        axes.axvline(0.0, color=FRONT_COLOR, lw=1)
        axes.set_yticks(range(len(labels)), labels if k == 0 else [""] * len(labels), fontsize=8)
        axes.set_ylim(len(labels) - 0.5, -0.5)
        axes.set_xlabel(f"Δ {METRICS[metric].label} ({'higher' if METRICS[metric].better == 'higher' else 'lower'}"
                        " is better)")
        axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)
