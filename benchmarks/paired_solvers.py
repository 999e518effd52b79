"""Each solver of one run against a baseline solver, paired on the same images, seeds and measurements.

    python benchmarks/paired_solvers.py RUN --baseline dps [--metric psnr] [--out report.md]

For every solver and operator: the mean of (solver - baseline) per image, the seeds of an image averaged
first (n = images), with its 95% BCa bootstrap interval and the Wilcoxon signed-rank p
(ipbench.results.paired_stats.paired_comparisons, as `bench table --baseline` and `bench report`), rounded
where the standard error of the mean difference ends (ipbench.results.rounding). A cell in bold is
significant: its interval excludes 0 and p < 0.05; only there does the run order the two solvers. Below 6
images that differ the test cannot reach p < 0.05 and no cell is bold. n/a: the solver does not apply to the
operator, or the baseline does not.
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ipbench.errors import UsageError
from ipbench.results.metric_registry import METRICS
from ipbench.results.paired import read_metric_rows
from ipbench.results.paired_stats import EXACT_LIMIT, min_nonzero, paired_comparisons, too_few_text
from ipbench.results.report import publish
from ipbench.results.rounding import with_interval

RESAMPLES = 10_000  # as bench table --baseline


def paired_table(comparisons: pd.DataFrame, solvers: list[str], operators: list[str]) -> list[str]:
    """Markdown rows = solvers, columns = operators; each cell 'mean [low, high], p P' (paired_comparisons'
    lines of one metric), bold where significant."""
    cells = {(line.solver, line.operator): line for line in comparisons.itertuples()}
    lines = ["| solver | " + " | ".join(operators) + " |", "|---|" + "---|" * len(operators)]
    for solver in solvers:
        row = []
        for operator in operators:
            line = cells.get((solver, operator))
            if line is None:
                row.append("n/a")
                continue
            mean, interval = with_interval(line.mean, line.low, line.high, line.se, METRICS[line.metric].decimals)
            text = f"{mean} {interval or '(no interval)'}, p {line.p_wilcoxon:.2g}"
            row.append(f"**{text}**" if line.significant else text)
        lines.append(f"| {solver} | " + " | ".join(row) + " |")
    return lines


def too_few_note(comparisons: pd.DataFrame) -> str:
    """The sentence saying which cells could not be marked for too few images; '' where none."""
    short = comparisons[comparisons["too_few"]]
    if short.empty:
        return ""
    fewest = short.sort_values(["n", "nonzero"]).iloc[0]
    where = "No cell can" if len(short) == len(comparisons) else f"{len(short)} of {len(comparisons)} cells cannot"
    return f" {where} be bold: {too_few_text(int(fewest['n']), int(fewest['nonzero']))}."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (sharded or not) or a rows.jsonl file")
    parser.add_argument("--baseline", default="dps", help="the solver every other is compared with")
    parser.add_argument("--metric", default="psnr", help="a metric column of the rows: psnr, ssim, lpips")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    try:
        rows = read_metric_rows(args.run, args.metric)  # ok rows only
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.baseline not in set(rows["solver"]):
        print(f"--baseline {args.baseline}: not a solver of {args.run} (it has {', '.join(dict.fromkeys(rows['solver']))})",
              file=sys.stderr)
        return 2
    comparisons = paired_comparisons(rows, args.baseline, [args.metric], resamples=RESAMPLES)
    solvers = [s for s in dict.fromkeys(rows["solver"]) if s != args.baseline]
    operators = list(dict.fromkeys(rows["operator"]))
    images, seeds = rows["image"].nunique(), sorted(rows["seed"].unique().tolist())
    better = METRICS[args.metric].better
    report = [f"# {args.metric.upper()}: each solver minus `{args.baseline}`, paired", "",
              f"Run `{args.run}`: {images} images x seeds {seeds}. Mean over images of (solver - {args.baseline}), "
              f"the seeds of an image averaged first (n = images), with its 95% BCa bootstrap interval "
              f"({RESAMPLES:,} resamples of the images) and the two-sided Wilcoxon signed-rank p (exact up to "
              f"{EXACT_LIMIT} images that differ); each "
              f"rounded where the standard error of the mean difference, to 2 significant digits, ends. Bold: "
              f"significant, the interval excludes 0 and p < 0.05 (the test needs at least {min_nonzero(0.05)} "
              f"images that differ to get there).{too_few_note(comparisons)} {args.metric} is better {better}.", "",
              *paired_table(comparisons, solvers, operators)]
    publish("\n".join(report) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
