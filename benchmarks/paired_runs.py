"""Paired differences between two runs on the same images and seeds (e.g. bf16 against fp32).

    python benchmarks/paired_runs.py RUN_A RUN_B [--out report.md]

RUN_A and RUN_B are run folders (sharded or not) or rows.jsonl files. Rows are paired on (solver, operator, image, seed);
for each solver, operator and metric the report gives mean(B - A), its standard error, the extremes, and
the number of pairs. Failed rows and rows present in one run only are counted and left out. The pairing
is ipbench.results.paired; this script renders it.
"""
from __future__ import annotations

import argparse
import sys

from ipbench.errors import UsageError
from ipbench.results.paired import Pairing, paired_differences, read_rows
from ipbench.results.report import publish


def paired_report(pairing: Pairing, name_a: str, name_b: str) -> str:
    lines = [f"# Paired differences: {name_b} - {name_a}", "",
             f"{pairing.pairs} pairs; {pairing.unpaired_a} rows of A and {pairing.unpaired_b} of B unpaired or failed.",
             "", "| solver | operator | metric | mean (B - A) | SE | min | max | n |", "|---|---|---|---|---|---|---|---|"]
    for d in pairing.differences:
        lines.append(f"| {d.solver} | {d.operator} | {d.metric} | {d.mean:+.4f} | {d.se:.4f} | {d.min:+.4f} | "
                     f"{d.max:+.4f} | {d.n} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    try:
        pairing = paired_differences(read_rows(args.run_a), read_rows(args.run_b))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    publish(paired_report(pairing, args.run_a, args.run_b), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
