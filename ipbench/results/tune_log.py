"""Reading a `bench tune` folder without optuna: its settings (tune.json) and trial log (trials.jsonl).

The log (written by tuning/trial_log.py) holds one JSON object per trial: `solver`, `operator`, `number`,
`state` (complete, pruned, failed, interrupted, running, waiting), `params`, `rungs` ([{"images", "value"}]),
`value`, `se`, `images`, `seconds`, `cpu_seconds`, `error`, `worker`, `folder`. `bench report DIR`
(results/tune_report.py) and the tune's own summary and suite are made from these two files alone.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ipbench.errors import UsageError

LOG_FILE = "trials.jsonl"
SETTINGS_FILE = "tune.json"
COUNTED = ("complete", "pruned", "failed")


def is_tune_folder(path: str | Path) -> bool:
    """A folder `bench tune` wrote: tune.json and no run.json."""
    folder = Path(path)
    return (folder / SETTINGS_FILE).is_file() and not (folder / "run.json").exists()


def read_tune_settings(folder: Path) -> dict[str, Any]:
    """tune.json; a one-line UsageError where it is missing or damaged."""
    path = folder / SETTINGS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{folder}: not a bench tune folder (no {SETTINGS_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as bench tune's settings ({type(exc).__name__}); the tune "
                         "that wrote it rewrites it when resumed") from None
    if not isinstance(data, dict) or not isinstance(data.get("identity"), dict):
        raise UsageError(f"{path}: not a bench tune settings file (no identity)")
    return data


def read_log(folder: Path) -> list[dict[str, Any]]:
    """The trial log's records; none where no trial has finished yet. A damaged line is a UsageError."""
    path = folder / LOG_FILE
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}, line {number}: not JSON; the tune rewrites the log after each trial "
                             "(rerun the same bench tune to rewrite it)") from None
        if not isinstance(record, dict) or not {"solver", "operator", "number", "state"} <= set(record):
            raise UsageError(f"{path}, line {number}: not a trial record")
        records.append(record)
    return records


def counted(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials that count towards the budget: complete, pruned and failed."""
    return [r for r in records if r["state"] in COUNTED]


def best(records: Sequence[dict[str, Any]], higher_is_better: bool) -> dict[str, Any] | None:
    """The complete trial with the best value (the lowest number among equals), or None."""
    complete = [r for r in records if r["state"] == "complete" and r.get("value") is not None]
    if not complete:
        return None
    sign = -1.0 if higher_is_better else 1.0
    return min(complete, key=lambda r: (sign * r["value"], r["number"]))


def pair_records(records: Sequence[dict[str, Any]], solver: str, operator: str) -> list[dict[str, Any]]:
    """The records of one (solver, operator) pair, by trial number."""
    return sorted((r for r in records if r["solver"] == solver and r["operator"] == operator),
                  key=lambda r: r["number"])


def with_error(value: float | None, se: float | None) -> str:
    """`21.34 ± 0.41`: the value to its standard error's second significant digit; without an SE, 4 digits."""
    if value is None:
        return "n/a"
    if se is None or not math.isfinite(se) or se <= 0 or not math.isfinite(value):
        return f"{value:.4g}"
    decimals = max(0, 1 - int(math.floor(math.log10(se))))
    return f"{value:.{decimals}f} ± {se:.{decimals}f}"


def params_text(params: dict[str, Any]) -> str:
    """`zeta=0.4121, normalize=residual`: a trial's parameters, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
