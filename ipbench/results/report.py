"""How the benchmark scripts hand over a Markdown report: printed, and kept in a file where one is named."""
from __future__ import annotations

from pathlib import Path


def publish(report: str, out: str | Path | None) -> None:
    """Print `report`; if `out` is given, also write it there (parent folders created)."""
    print(report)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report if report.endswith("\n") else report + "\n")
