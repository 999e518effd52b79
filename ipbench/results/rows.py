"""rows.jsonl: one JSON object per (solver, operator, image, seed), appended and flushed one by one.

A run split with `--shard K/N` keeps each shard's rows in rows.shard-K-of-N.jsonl beside it
(shard.py); `run_rows` and `load_rows` read them all as one run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ipbench.errors import UsageError, first_line
from ipbench.results.metric_registry import METRICS

ROW_KEY = ("solver", "operator", "image", "seed")
ROW_FILES = "rows*.jsonl"  # rows.jsonl, and rows.shard-K-of-N.jsonl of a sharded run


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(str(row[k]) for k in ROW_KEY)


def _json_value(v: Any) -> Any:
    """JSON has no inf/nan: store them as strings pandas reads back as floats."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class RowStore:
    """Append-only row file. A partly written last line (a run killed mid-write) is ignored."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """The file's rows; a torn line (a run killed mid-write) is skipped, and a line that is JSON but not
        an ipbench row (another tool's file) is a one-line UsageError naming the file and line."""
        if not self.path.exists():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted run; its row is recomputed
            if not isinstance(row, dict) or not {*ROW_KEY, "status"} <= set(row):
                raise UsageError(f"{self.path}, line {number}: not an ipbench row (needs {', '.join(ROW_KEY)} and "
                                 "status); rows files hold only what `bench run` writes")
            rows.append(row)
        return rows

    def _ends_mid_line(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        torn = self._ends_mid_line()
        with self.path.open("a") as f:
            if torn:
                f.write("\n")  # end a torn line so the next row starts on its own
            for row in rows:
                f.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")
                f.flush()
                os.fsync(f.fileno())


FINAL = ("ok", "skipped")  # row statuses a rerun keeps; a `failed` row is computed again


def run_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of a run folder, from rows.jsonl and any shard files, once per key: an ok (or skipped) row
    if there is one (a failed row is retried by a rerun, and its retry supersedes it), else the last failed one."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in sorted(Path(run_dir).glob(ROW_FILES)):
        for row in RowStore(path).read():
            key = row_key(row)
            if rows.get(key, {}).get("status") not in FINAL:
                rows[key] = row
    return list(rows.values())


def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's run.json; a one-line UsageError if it is missing or damaged."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no run.json); pass the folder `bench run` wrote")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # nested past Python's stack
        raise UsageError(f"{path}: damaged, not readable JSON ({first_line(exc)}); rerun `bench run` into a new "
                         "--out") from None
    ok = (isinstance(meta, dict) and isinstance(meta.get("config"), dict)
          and {"solvers", "operators", "seeds", "model"} <= set(meta["config"])
          and isinstance(meta.get("model"), dict) and "image_shape" in meta["model"]
          and isinstance(meta.get("images"), dict) and isinstance(meta["images"].get("ids"), list))
    if not ok:
        raise UsageError(f"{path}: not a run.json written by `bench run` (it needs config, model and images); rerun "
                         "`bench run` into a new --out")
    return meta


def load_rows(run_dir: str | Path) -> pd.DataFrame:
    """The rows of a run as a DataFrame (metrics as floats)."""
    frame = pd.DataFrame(run_rows(run_dir))
    for col in (*METRICS, "seconds", "compile_seconds", "clamped", "clamped_max"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame
