"""How much common random numbers (`bench run --seeding common`) narrow paired intervals between solvers.

Give two runs of the same solvers, operators, images and seeds, one with independent solver draws (the
default) and one with common ones. For every solver against the baseline, per operator and metric, it
prints the mean paired difference and the width of its 95% bootstrap interval over images (seeds averaged
within an image, results/paired_stats.py) in both runs, and the ratio of the widths (common / independent):
below 1, sharing x_T took out some of the noise of the comparison.

    python benchmarks/common_seeding.py runs/independent runs/common --baseline dps [--out results/common_seeding.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from ipbench.results.metric_registry import METRICS  # noqa: E402
from ipbench.results.paired_stats import paired_comparisons  # noqa: E402
from ipbench.results.report import publish  # noqa: E402
from ipbench.results.rows import load_rows, read_run_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("independent", help="run folder with --seeding independent (the default)")
    parser.add_argument("common", help="run folder with --seeding common, otherwise the same run")
    parser.add_argument("--baseline", default="dps")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    args = parser.parse_args()

    seeding = {path: read_run_json(path)["config"].get("seeding", "independent")
               for path in (args.independent, args.common)}
    if seeding != {args.independent: "independent", args.common: "common"}:
        sys.exit(f"error: expected an independent and a common run, got {seeding}")
    rows = {"independent": load_rows(args.independent), "common": load_rows(args.common)}
    stats = {kind: paired_comparisons(rows[kind], args.baseline, resamples=args.resamples) for kind in rows}
    correlation = {kind: _correlations(rows[kind], args.baseline) for kind in rows}
    keys = ["solver", "operator", "metric"]
    both = stats["independent"].merge(stats["common"], on=keys + ["baseline"], suffixes=("_ind", "_com"))
    lines = [f"# Common random numbers: paired intervals against {args.baseline}", "",
             f"`python benchmarks/common_seeding.py {args.independent} {args.common} --baseline {args.baseline}`", "",
             "Per solver, operator and metric: the mean paired difference (solver − baseline, seeds averaged within "
             "an image) and the width of its 95% BCa bootstrap interval over images, with independent and with "
             "common solver draws; ratio = common width / independent width; r = the correlation of the two "
             "solvers' values over the rows (image x seed), independent → common.", "",
             "| solver − baseline | operator | metric | n | independent: mean [interval] | common: mean [interval] "
             "| width ratio | r |", "|---|---|---|---|---|---|---|---|"]
    for line in both.itertuples():
        key = (line.solver, line.operator, line.metric)
        d = METRICS[line.metric].decimals
        cell = lambda mean, low, high: f"{mean:+.{d}f} [{low:+.{d}f}, {high:+.{d}f}]"  # noqa: E731
        ratio = (line.high_com - line.low_com) / (line.high_ind - line.low_ind)
        lines.append(f"| {line.solver} − {line.baseline} | {line.operator} | {METRICS[line.metric].label} | "
                     f"{line.n_com} | {cell(line.mean_ind, line.low_ind, line.high_ind)} | "
                     f"{cell(line.mean_com, line.low_com, line.high_com)} | {ratio:.2f} | "
                     f"{correlation['independent'][key]:.2f} → {correlation['common'][key]:.2f} |")
    publish("\n".join(lines) + "\n", args.out)


def _correlations(rows: pd.DataFrame, baseline: str) -> dict[tuple[str, str, str], float]:
    """Per (solver, operator, metric): Pearson's r between the solver's and the baseline's ok values on the
    same (image, seed): what common draws raise, and what narrows the paired interval."""
    ok = rows[rows["status"] == "ok"]
    base = ok[ok["solver"] == baseline]
    out = {}
    for (solver, operator), part in ok[ok["solver"] != baseline].groupby(["solver", "operator"]):
        both = part.merge(base[base["operator"] == operator], on=["image", "seed"], suffixes=("", "_base"))
        for metric in (m for m in METRICS if m in both and f"{m}_base" in both):
            out[(solver, operator, metric)] = float(both[metric].corr(both[f"{metric}_base"]))
    return out


if __name__ == "__main__":
    main()
