"""A run's headline table: one metric's mean ± its standard error over images, per solver and operator.

    python benchmarks/headline_table.py RUN [--metric psnr] [--out table.md]

Each cell is the mean over images of the per-image mean over seeds (so n = images, as the paired
statistics of benchmarks/paired_solvers.py), ± the standard error of that mean over images, both rounded
where the standard error, to 2 significant digits, ends (ipbench.results.rounding). The standard error says
how far a mean would move on other images; two solvers on the same images are compared by their paired
difference, not by these. Beside them: solver seconds per image (the mean over the operators a solver
applies to) and network evaluations per image, and the run's solver time summed over its rows. n/a: the
solver does not apply to the operator (its rows are `skipped`).
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ipbench.errors import UsageError
from ipbench.results.metric_registry import METRICS
from ipbench.results.paired import read_metric_rows
from ipbench.results.report import publish
from ipbench.results.rounding import standard_error, with_spread


def cell(per_image: pd.Series, decimals: int) -> str:
    """'mean ± SE' of per-image values, rounded at the SE's second significant digit."""
    se = standard_error(per_image.to_numpy())
    return with_spread(float(per_image.mean()), se, se, decimals)


def headline(rows: pd.DataFrame, metric: str) -> list[str]:
    """Markdown lines: solvers down, operators across, then s / image and NFE."""
    solvers = list(dict.fromkeys(rows["solver"]))
    operators = list(dict.fromkeys(rows["operator"]))
    per_image = rows.groupby(["solver", "operator", "image"])[metric].mean()  # sorted: cells are looked up by key
    seconds = rows.groupby(["solver", "operator"], sort=False)["seconds"].mean().groupby("solver").mean()
    nfe = rows.groupby("solver", sort=False)["nfe"].median()
    applied = set(per_image.index.droplevel("image"))  # (solver, operator) pairs with ok rows
    lines = ["| solver | " + " | ".join(operators) + " | s / image (1 thread) | NFE |",
             "|---|" + "---|" * (len(operators) + 2)]
    for solver in solvers:
        cells = [cell(per_image[solver, operator], METRICS[metric].decimals)
                 if (solver, operator) in applied else "n/a" for operator in operators]
        lines.append(f"| {solver} | " + " | ".join(cells) + f" | {seconds[solver]:.3g} | {nfe[solver]:.0f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (sharded or not) or a rows.jsonl file")
    parser.add_argument("--metric", default="psnr", help="a metric column of the rows: psnr, ssim, lpips")
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args()
    try:
        rows = read_metric_rows(args.run, args.metric)  # ok rows only
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    images, seeds = rows["image"].nunique(), sorted(rows["seed"].unique().tolist())
    hours = rows["seconds"].sum() / 3600
    report = [f"# {args.metric.upper()}: mean ± standard error over images", "",
              f"Run `{args.run}`: {images} images x seeds {seeds}; each cell the mean over images of the "
              f"per-image mean over seeds, ± its standard error over images, rounded where that standard "
              f"error, to 2 significant digits, ends. {args.metric} is better {METRICS[args.metric].better}. "
              f"Solver time summed over the {len(rows)} rows: {hours:.3g} hours (one thread per process).", "",
              *headline(rows, args.metric)]
    publish("\n".join(report) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
