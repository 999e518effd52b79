"""Put a tune's tuned entries into a suite: the [[solver]] tables of `bench tune`'s tuned.toml replace what
lies between a suite's marker lines, and the rest of the suite (its header, operators, untuned and preset
entries) stays as written.

    python benchmarks/insert_tuned.py results/fashion32-benchmark/tuning/tuned.toml configs/benchmark-fashion32.toml

The markers are the lines starting `# --- tuned: ` and `# --- end of tuned ---`; tests/test_benchmark_suite.py
checks that configs/benchmark-fashion32.toml holds its tune's tables verbatim.
"""
from __future__ import annotations

import sys
from pathlib import Path

BEGIN, END = "# --- tuned: ", "# --- end of tuned ---"


def tuned_tables(tuned_text: str) -> str:
    """tuned.toml's solver tables: everything from its first [[solver]] on."""
    start = tuned_text.find("[[solver]]")
    if start < 0:
        raise SystemExit("the tuned suite has no [[solver]] table")
    return tuned_text[start:].strip() + "\n"


def inserted(suite_text: str, tables: str) -> str:
    begin, end = suite_text.find(BEGIN), suite_text.find(END)
    if begin < 0 or end < begin:
        raise SystemExit(f"the suite needs a line starting {BEGIN!r} and a later {END!r}")
    head = suite_text[:suite_text.index("\n", begin) + 1]
    return head + "\n" + tables + "\n" + suite_text[end:]


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-4])
    tuned, suite = map(Path, argv)
    suite.write_text(inserted(suite.read_text(), tuned_tables(tuned.read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
