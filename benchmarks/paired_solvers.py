"""Each solver of one run against a baseline solver, paired on the same images, seeds and measurements.

    python benchmarks/paired_solvers.py RUN --baseline dps [--metric psnr] [--out report.md]

For every solver and operator: the mean of (solver - baseline) per image, the seeds of an image averaged
first (n = images), with its 95% Student-t interval (ipbench.results.paired.against_baseline). A cell in
bold has an interval that excludes 0: only there does the run order the two solvers. n/a: the solver
does not apply to the operator, or the baseline does not.
"""
from __future__ import annotations

import argparse
import sys

from ipbench.errors import UsageError
from ipbench.results.paired import PairedDifference, against_baseline, read_rows
from ipbench.results.report import publish


def paired_table(differences: list[PairedDifference], solvers: list[str], operators: list[str],
                 digits: int = 2) -> list[str]:
    """Markdown rows = solvers, columns = operators; each cell 'mean [low, high]', bold when 0 is outside."""
    cells = {(d.solver, d.operator): d for d in differences}
    lines = ["| solver | " + " | ".join(operators) + " |", "|---|" + "---|" * len(operators)]
    for solver in solvers:
        row = []
        for operator in operators:
            d = cells.get((solver, operator))
            if d is None:
                row.append("n/a")
                continue
            low, high = d.mean - d.half_width, d.mean + d.half_width
            text = f"{d.mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
            row.append(f"**{text}**" if low > 0 or high < 0 else text)
        lines.append(f"| {solver} | " + " | ".join(row) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (sharded or not) or a rows.jsonl file")
    parser.add_argument("--baseline", default="dps", help="the solver every other is compared with")
    parser.add_argument("--metric", default="psnr", help="a metric column of the rows: psnr, ssim, lpips")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    try:
        rows = read_rows(args.run)  # ok rows only
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.baseline not in set(rows["solver"]):
        print(f"--baseline {args.baseline}: not a solver of {args.run} (it has {', '.join(dict.fromkeys(rows['solver']))})",
              file=sys.stderr)
        return 2
    if args.metric not in rows.columns:
        print(f"--metric {args.metric}: not a column of {args.run}'s rows (try psnr, ssim or lpips)", file=sys.stderr)
        return 2
    differences = against_baseline(rows, args.baseline, args.metric)
    solvers = [s for s in dict.fromkeys(rows["solver"]) if s != args.baseline]
    operators = list(dict.fromkeys(rows["operator"]))
    images, seeds = rows["image"].nunique(), sorted(rows["seed"].unique().tolist())
    better = "higher" if args.metric != "lpips" else "lower"
    report = [f"# {args.metric.upper()}: each solver minus `{args.baseline}`, paired", "",
              f"Run `{args.run}`: {images} images x seeds {seeds}. Mean over images of (solver - {args.baseline}), "
              f"the seeds of an image averaged first, with its 95% Student-t interval (n = images); bold: the "
              f"interval excludes 0. {args.metric} is better {better}.", "",
              *paired_table(differences, solvers, operators, digits=2 if args.metric == "psnr" else 4)]
    publish("\n".join(report) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
