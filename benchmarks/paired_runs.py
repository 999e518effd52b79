"""Paired differences between two runs on the same images and seeds (e.g. bf16 against fp32).

    python benchmarks/paired_runs.py RUN_A RUN_B [--out report.md]

RUN_A and RUN_B are run folders (sharded or not) or rows.jsonl files. Rows are paired on (solver, operator, image, seed);
for each solver, operator and metric the report gives mean(B - A), its standard error, the extremes, and
the number of pairs. Failed rows and rows present in one run only are counted and left out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ipbench.results.rows import ROW_FILES, load_rows
from ipbench.results.report import publish

KEYS = ["solver", "operator", "image", "seed"]
METRICS = ["psnr", "ssim", "lpips"]


def read_rows(path: str) -> pd.DataFrame:
    """A run folder's rows (a sharded run's files together), or one rows file's."""
    found = Path(path).is_file() or any(Path(path).glob(ROW_FILES))
    if not found:
        raise SystemExit(f"{path}: no rows.jsonl there (give a run folder or a rows.jsonl file)")
    rows = load_rows(path) if Path(path).is_dir() else pd.read_json(path, lines=True)
    return rows[rows["status"] == "ok"] if "status" in rows else rows


def paired_report(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str) -> str:
    both = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    lines = [f"# Paired differences: {name_b} - {name_a}", "",
             f"{len(both)} pairs; {len(a) - len(both)} rows of A and {len(b) - len(both)} of B unpaired or failed.", "",
             "| solver | operator | metric | mean (B - A) | SE | min | max | n |", "|---|---|---|---|---|---|---|---|"]
    for (solver, operator), group in both.groupby(["solver", "operator"]):
        for metric in (m for m in METRICS if f"{m}_a" in group):
            d = group[f"{metric}_b"] - group[f"{metric}_a"]
            se = d.std() / len(d) ** 0.5 if len(d) > 1 else float("nan")
            lines.append(f"| {solver} | {operator} | {metric} | {d.mean():+.4f} | {se:.4f} | {d.min():+.4f} | "
                         f"{d.max():+.4f} | {len(d)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    report = paired_report(read_rows(args.run_a), read_rows(args.run_b), args.run_a, args.run_b)
    publish(report, args.out)


if __name__ == "__main__":
    main()
