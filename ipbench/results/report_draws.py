"""The report's section on posterior draws (`bench run --samples K`), gathered for templates/report.html.j2.

Present only where some solver drew more than once (samples_table.has_samples). Per operator:
- the draws table of `bench table` (samples_table.py), the best-of-K columns marked as the oracle they are
  (chosen against the truth: never bold, never in a paired comparison);
- calibration: each stochastic solver's empirical coverage of the truth by the draws' t prediction interval
  (results/samples.py) at the nominal levels, its mean and standard error over images (an image's seeds
  averaged first), against the level; deterministic solvers (one draw) are named as point estimates;
- for the first STRIP_IMAGES images, a strip per stochastic solver: truth, first draw, the sample mean of the
  saved draws and the per-pixel std map (the run's first seed).
Images are handed back as paths or PIL images; html_report.py embeds them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ipbench.imagefile import open_image
from ipbench.results import plots
from ipbench.results.report_runs import ReportRun
from ipbench.results.rounding import standard_error, with_spread
from ipbench.results.samples_table import (COLUMNS, SAMPLES_NOTE, has_samples, is_oracle, samples_lines,
                                           samples_summary)
from ipbench.run_paths import reconstruction_png, std_png, truth_png

STRIP_IMAGES = 3  # images shown as strips per operator


def coverage_levels(rows: pd.DataFrame) -> list[float]:
    """The nominal levels the rows have a coverage of (`coverage.50` ...: samples.COVERAGE_LEVELS, read off the
    columns so that the report imports nothing of torch), in increasing order."""
    return sorted(int(c.split(".", 1)[1]) / 100 for c in rows.columns
                  if c.startswith("coverage.") and c.split(".", 1)[1].isdigit())


def draws_per_solver(rows: pd.DataFrame, operator: str) -> dict[str, int]:
    """{solver: its draws per measurement on `operator`} over the ok rows (1 for a solver run without draws)."""
    ok = rows[(rows["status"] == "ok") & (rows["operator"] == operator)]
    samples = pd.to_numeric(ok["samples"], errors="coerce") if "samples" in ok else pd.Series(1, index=ok.index)
    return {str(s): int(v) if v == v else 1 for s, v in samples.groupby(ok["solver"], sort=False).max().items()}


def calibration_points(rows: pd.DataFrame, solver: str, operator: str) -> pd.DataFrame:
    """One line per nominal level: solver, level, the mean over images of its coverage (an image's seeds and
    draws averaged first: the value is the measurement's, the same on each draw's row), its standard error
    and n images; levels without a value (fewer than 2 draws succeeded) are left out."""
    ok = rows[(rows["status"] == "ok") & (rows["operator"] == operator) & (rows["solver"] == solver)]
    records = []
    for level in coverage_levels(rows):
        field = f"coverage.{round(100 * level)}"
        if field not in ok.columns:
            continue
        per_image = pd.to_numeric(ok[field], errors="coerce").groupby(ok["image"]).mean().dropna()
        if len(per_image):
            values = per_image.to_numpy(dtype=float)
            records.append({"solver": solver, "level": level, "mean": float(values.mean()),
                            "se": standard_error(values), "n": len(values)})
    return pd.DataFrame.from_records(records, columns=["solver", "level", "mean", "se", "n"])


def sample_mean_image(paths: Sequence[Path]) -> Image.Image | None:
    """The pixel-wise mean of the saved draws `paths` (those that exist), rounded to 8 bits; None if none do."""
    arrays = []
    for path in paths:
        if path.is_file():
            with open_image(path, "posterior draw") as image:
                mode = "L" if image.mode in ("L", "I", "I;16") else "RGB"
                arrays.append(np.asarray(image.convert(mode), dtype=np.float64))
    if not arrays:
        return None
    return Image.fromarray(np.clip(np.rint(np.mean(arrays, axis=0)), 0, 255).astype(np.uint8), mode=mode)


def _coverage_text(mean: float, se: float) -> str:
    """A mean coverage ± its standard error over images, rounded where that ends; 3 decimals for one image."""
    return with_spread(float(mean), float(se), float(se), 3) if se == se else f"{float(mean):.3f}"


def _table(part: pd.DataFrame) -> dict[str, Any]:
    """One operator's draws table: header cells and lines, each cell flagged where it is the oracle."""
    fields, lines = samples_lines(part)
    oracle = [is_oracle(f) for f in fields]
    return {"header": [{"text": COLUMNS[f], "oracle": o} for f, o in zip(fields, oracle)],
            "lines": [{"solver": solver, "draws": draws,
                       "cells": [{"text": text, "oracle": o} for text, o in zip(cells, oracle)]}
                      for solver, draws, cells in lines]}


def _strips(runs: Sequence[ReportRun], rows: pd.DataFrame, operator: str, stochastic: Sequence[str]
            ) -> list[dict[str, Any]]:
    """For the first STRIP_IMAGES images of `operator`: per stochastic solver its truth, first draw, sample mean
    and std map (the first seed of the solver's run), as (label, path or image) cells."""
    where = {label: (run, original) for run in runs for original, label in run.labels.items()}
    ok = rows[(rows["status"] == "ok") & (rows["operator"] == operator) & rows["solver"].isin(stochastic)]
    run, _ = where[stochastic[0]]
    shown = set(ok["image"])
    images = [i for i in run.meta["images"]["ids"] if i in shown][:STRIP_IMAGES]
    out = []
    for image in images:
        strips = []
        for solver in stochastic:
            solver_run, original = where[solver]
            seed = solver_run.meta["config"]["seeds"][0]
            cell = ok[(ok["solver"] == solver) & (ok["image"] == image) & (ok["seed"] == seed)]
            if cell.empty:
                continue
            k = int(pd.to_numeric(cell["samples"], errors="coerce").max())
            draws = [reconstruction_png(solver_run.path, operator, original, image, seed, sample) for sample in range(k)]
            strips.append({"solver": solver, "cells": [
                ("truth", truth_png(solver_run.path, image)), ("first draw", draws[0]),
                (f"mean of {sum(p.is_file() for p in draws)} draws", sample_mean_image(draws)),
                ("std (÷ its max)", std_png(solver_run.path, operator, original, image, seed))]})
        if strips:
            out.append({"image": image, "strips": strips})
    return out


def draws_section(runs: Sequence[ReportRun], rows: pd.DataFrame, solvers: Sequence[str], operators: Sequence[str]
                  ) -> dict[str, Any] | None:
    """The section's content (module docstring), None for runs without draws. Each calibration figure is PNG
    bytes (`figure`, None where no solver of the operator has a coverage)."""
    if not has_samples(rows):
        return None
    summary = samples_summary(rows, list(solvers), list(operators))
    parts = []
    for operator in operators:
        part = summary[summary["operator"] == operator]
        if part.empty:
            continue
        draws = draws_per_solver(rows, operator)
        stochastic = [s for s in solvers if draws.get(s, 0) > 1]
        points = [p for p in (calibration_points(rows, s, operator) for s in stochastic) if len(p)]
        calibration = pd.concat(points, ignore_index=True) if points else None
        levels = coverage_levels(rows)
        coverage = []
        for p in points:
            by_level = p.set_index("level")
            coverage.append({"solver": str(p["solver"].iloc[0]), "draws": draws[str(p["solver"].iloc[0])],
                             "n": int(p["n"].max()),
                             "cells": [_coverage_text(by_level.loc[level, "mean"], by_level.loc[level, "se"])
                                       if level in by_level.index else "—" for level in levels]})
        parts.append({
            "operator": operator,
            "table": _table(part),
            "figure": plots.calibration_png(calibration, operator) if calibration is not None else None,
            "levels": [f"{round(100 * p)}%" for p in levels],
            "coverage": coverage,
            "point_estimates": [s for s in solvers if draws.get(s) == 1],
            "strips": _strips(runs, rows, operator, stochastic) if stochastic else [],
        })
    return {"note": SAMPLES_NOTE.replace("`", ""), "operators": parts}
