"""The figures of a `bench tune` page (matplotlib, off-screen, as plots.py): per (solver, operator) pair the
best-so-far curve, and each tuned parameter against the objective.

Complete trials are filled points (their value on every tuning image); pruned trials are hollow points at
the value of the last rung they reached (fewer images, so a noisier and usually worse number); failed
trials are crosses on the lower edge of the panel (they have no value). The best-so-far line runs over
complete trials only, as the tuned suite's choice does.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ipbench.results.metric_registry import METRICS
from ipbench.results.plots import _png, plain_text

COMPLETE, PRUNED, FAILED, BEST = "C0", "C1", "#d62728", "#2ca02c"


def _label(metric: str) -> str:
    return f"{METRICS[metric].label} {'↑' if METRICS[metric].better == 'higher' else '↓'}"


def _by_state(records: Sequence[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [r for r in records if r["state"] == state and (state == "failed" or r.get("value") is not None)]


def _failed_height(axes: Any) -> float:
    low, high = axes.get_ylim()
    return low + 0.03 * (high - low)


@plain_text
def best_so_far_png(records: Sequence[dict[str, Any]], metric: str, title: str) -> bytes:
    """Each trial's value against its number, and the best complete value so far."""
    higher = METRICS[metric].better == "higher"
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.add_subplot(1, 1, 1)
    complete, pruned, failed = (_by_state(records, s) for s in ("complete", "pruned", "failed"))
    if complete:
        axes.plot([r["number"] for r in complete], [r["value"] for r in complete], "o", color=COMPLETE,
                  label="complete (all images)")
    if pruned:
        axes.plot([r["number"] for r in pruned], [r["value"] for r in pruned], "o", mfc="none", color=PRUNED,
                  label="pruned (at its last rung)")
    steps_x, steps_y, best = [], [], None
    for r in sorted(complete, key=lambda r: r["number"]):
        if best is None or (r["value"] > best if higher else r["value"] < best):
            best = r["value"]
        steps_x.append(r["number"])
        steps_y.append(best)
    if steps_x:
        last = max(r["number"] for r in records)
        axes.step(steps_x + [last], steps_y + [steps_y[-1]], where="post", color=BEST, label="best so far")
    if failed:
        axes.plot([r["number"] for r in failed], [_failed_height(axes)] * len(failed), "x", color=FAILED,
                  label="failed (no value)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial")
    axes.set_ylabel(_label(metric))
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    if records:
        axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return _png(figure)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


@plain_text
def parameters_png(records: Sequence[dict[str, Any]], space: dict[str, dict[str, Any]], metric: str,
                   title: str) -> bytes:
    """One panel per tuned parameter: the objective of each trial against its value (log axis where the
    space is on a log scale; categories in their declared order), the best complete trial starred."""
    names = list(space)
    figure = Figure(figsize=(max(3.6 * len(names), 4.8), 3.4))
    higher = METRICS[metric].better == "higher"
    complete, pruned, failed = (_by_state(records, s) for s in ("complete", "pruned", "failed"))
    best = max(complete, key=lambda r: r["value"]) if higher and complete else \
        min(complete, key=lambda r: r["value"]) if complete else None
    for k, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), k + 1)
        dim = space[name]
        categorical = dim.get("kind") == "categorical" or not _numeric([r["params"].get(name) for r in records
                                                                       if name in r["params"]])
        slots = {repr(c): i for i, c in enumerate(dim.get("choices", []))}

        def x_of(rows: Sequence[dict[str, Any]]) -> np.ndarray:
            if categorical:
                return np.array([slots.setdefault(repr(r["params"].get(name)), len(slots)) for r in rows], float)
            return np.array([float(r["params"].get(name, math.nan)) for r in rows])

        if complete:
            axes.plot(x_of(complete), [r["value"] for r in complete], "o", color=COMPLETE, label="complete")
        if pruned:
            axes.plot(x_of(pruned), [r["value"] for r in pruned], "o", mfc="none", color=PRUNED, label="pruned")
        if best is not None:
            axes.plot(x_of([best]), [best["value"]], "*", ms=14, color=BEST, label=f"best (trial {best['number']})")
        if failed:
            axes.plot(x_of(failed), [_failed_height(axes)] * len(failed), "x", color=FAILED, label="failed")
        if categorical:
            axes.set_xticks(list(slots.values()), [k.strip("'") for k in slots], fontsize=8, rotation=20, ha="right")
            axes.set_xlim(-0.5, max(len(slots), 1) - 0.5)
        else:
            if dim.get("log"):
                axes.set_xscale("log")
            if "low" in dim and "high" in dim:
                axes.set_xlim(*_padded(dim["low"], dim["high"], bool(dim.get("log"))))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axes.set_xlabel(f"{name}{' (log)' if dim.get('log') else ''}")
        axes.set_ylabel(_label(metric))
        axes.grid(alpha=0.3)
        if k == 0 and records:
            axes.legend(fontsize=7, loc="best")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _png(figure)


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    """The search interval with a margin, so points on its ends show."""
    if log:
        ratio = (high / low) ** 0.04
        return low / ratio, high * ratio
    margin = 0.04 * (high - low)
    return low - margin, high + margin
