"""rows.jsonl: one JSON object per (solver, operator, image, seed, sample), appended and flushed one by one; `sample`
(the k-th posterior draw on one measurement, `bench run --samples`) is absent, and read as 0, in a run without.

A run split with `--shard K/N` keeps each shard's rows in rows.shard-K-of-N.jsonl beside it
(shard.py); `run_rows` and `load_rows` read them all as one run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ipbench.errors import UsageError
from ipbench.json_files import (OBJECT, OPTIONAL_STRING, STRING, check_fields, integer, list_of, object_of, read_json,
                                tables)
from ipbench.results.metric_registry import METRICS

if TYPE_CHECKING:
    import pandas as pd

ROW_KEY = ("solver", "operator", "image", "seed")  # and the sample index, 0 where a row has none
ROW_FILES = "rows*.jsonl"  # rows.jsonl, and rows.shard-K-of-N.jsonl of a sharded run


def row_key(row: dict[str, Any]) -> tuple:
    return (*(str(row[k]) for k in ROW_KEY), str(row.get("sample", 0)))


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
        an ipbench row (another tool's file), or bytes that are not UTF-8, a one-line UsageError naming the file."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_bytes().decode("utf-8")  # bench run writes ASCII (json.dumps escapes the rest)
        except UnicodeDecodeError as exc:
            raise UsageError(f"{self.path}: not UTF-8 text (byte {exc.start}); rows files hold only what `bench run` "
                             "writes") from None
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
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


RUN_JSON_REMEDY = "rerun `bench run` into a new --out (run.json is written by `bench run` only)"
_ENTRY = {"name": STRING, "label": STRING}
RUN_JSON_FIELDS = {  # what the readers of run.json (table, grid, report, status, a resumed run) rely on
    "config": OBJECT, "config.model": STRING, "config.seeds": list_of(integer(), non_empty=True),
    "config.solvers": tables({**_ENTRY, "params": OBJECT}, {"operators": list_of(STRING), "preset": STRING,
                                                           "preset_missing": list_of(STRING), "tuned": OBJECT,
                                                           "per_operator": object_of(OBJECT)}),
    "config.operators": tables(_ENTRY, {"params": OBJECT}),
    "model": OBJECT, "model.image_shape": list_of(integer(1), length=3),
    "images": OBJECT, "images.ids": list_of(STRING),
}
RUN_JSON_OPTIONAL = {
    "config.metrics": list_of(STRING), "config.reference": list_of(OBJECT),
    "images.sha256": object_of(STRING), "images.source": STRING, "images.split": OPTIONAL_STRING,
    "conventions": OBJECT, "conventions.metric_summary": object_of(STRING),
    "versions": OBJECT, "acceleration": OBJECT, "created": OPTIONAL_STRING, "command": OPTIONAL_STRING,
    "device": OPTIONAL_STRING,
}


def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's run.json; a one-line UsageError if it is missing or damaged (not UTF-8 JSON, or a field
    its readers use missing or of the wrong type)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no run.json); pass the folder `bench run` wrote")
    meta = read_json(path, RUN_JSON_REMEDY)
    check_fields(meta, path, RUN_JSON_FIELDS, RUN_JSON_REMEDY, RUN_JSON_OPTIONAL)
    return meta


def row_keys(config: dict[str, Any], image_ids: Sequence[str]) -> set[tuple[str, ...]]:
    """The keys (solver, operator, image, seed, sample) of every row a run config makes for these images; a
    solver listed with `operators` runs on those only, and makes its `samples` draws per measurement (1 where
    the config has none). Works on `RunSpec.config()` and on run.json's config alike."""
    operators = [o["label"] for o in config["operators"]]
    return {(s["label"], op, image, str(seed), str(k)) for s in config["solvers"] for op in operators
            if not s.get("operators") or op in s["operators"] for image in image_ids for seed in config["seeds"]
            for k in range(int(s.get("samples", 1)))}


def load_rows(run_dir: str | Path) -> pd.DataFrame:
    """The rows of a run as a DataFrame (metrics as floats)."""
    import pandas as pd  # here, not at the top: `bench status` reads rows without pandas

    frame = pd.DataFrame(run_rows(run_dir))
    for col in (*METRICS, "seconds", "compile_seconds", "clamped", "clamped_max"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame
