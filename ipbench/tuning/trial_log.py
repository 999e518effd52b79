"""Writing trials.jsonl (its reader, free of optuna, is results/tune_log.py): every trial of a tune folder,
one JSON object a line.

Each line: `solver`, `operator` (labels), `number` (the trial's number in its pair's study), `state`
(complete, pruned, failed; interrupted for one cut off, which counts for nothing and is tried again as
`retry_of` its number; running, waiting), `params`, `rungs` ([{"images": n, "value": v}], the mean after
each rung the trial reached), `value` (complete: over all tuning images; pruned: at its last rung),
`se` (standard error over images of that value), `images`, `seconds` (wall time) and `cpu_seconds`
(process CPU time) of the trial, `error`, `worker` (host:pid), `folder` (its run folder, relative to the
tune folder). Rewritten whole (atomically) after every trial from the studies, so it is what they hold.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ipbench.files import atomic_write_text
from ipbench.results.tune_log import LOG_FILE
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def record(solver: str, operator: str, trial: Any, folder: str) -> dict[str, Any]:
    """One line of the log for an optuna (frozen) trial of pair (solver, operator)."""
    attrs = trial.user_attrs
    state = STATES.get(trial.state.name, trial.state.name.lower())
    if state == "failed" and "error" not in attrs:
        state = "interrupted"
    value = trial.value if state in ("complete", "pruned") else None
    if state == "pruned" and value is None and trial.intermediate_values:  # optuna keeps the last report
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return {"solver": solver, "operator": operator, "number": trial.number, "state": state,
            "params": dict(trial.params),
            "rungs": [{"images": int(step), "value": _finite(v)}
                      for step, v in sorted(trial.intermediate_values.items())],
            "value": _finite(value), "se": _finite(attrs.get("se")), "images": attrs.get("images"),
            "seconds": _finite(attrs.get("seconds")), "cpu_seconds": _finite(attrs.get("cpu_seconds")),
            "error": attrs.get("error"), "worker": attrs.get("worker"), "folder": folder,
            **({"retry_of": attrs["retry_of"]} if "retry_of" in attrs else {})}


def write_log(out: Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(out / LOG_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
