"""tune.json: what a tune folder's studies are a search of, written by its first worker.

Its `identity` (objective, images and ids, seeds, model, pruner, rungs, sampler seed, and per pair the run
config with code fingerprints and the search space) is what decides the trials; a later `bench tune` on the
folder (a resume, a second worker) must bring the same, or it is refused naming the first key that differs.
The budget may be raised on a rerun (every pair then goes on to the new N); it may not drop below the trials
a pair has already counted.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.results.tune_log import SETTINGS_FILE, read_tune_settings


def _first_difference(old: Any, new: Any, where: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=lambda k: (k == "pairs", k)):  # the tune's own keys first
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if old == new else where or "(all)"


def settle(folder: Path, identity: dict[str, Any], budget: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The folder's settings: created with `identity`, `budget` and `extra`, or checked against the ones
    there, the budget left as it is (`set_budget` changes it). Call under the study lock."""
    identity = json.loads(json.dumps(identity))  # as the file holds it: lists, not tuples
    existing = read_tune_settings(folder) if (folder / SETTINGS_FILE).is_file() else None
    if existing is None:
        if (folder / "run.json").exists():
            raise UsageError(f"--out {folder}: holds a bench run (run.json); give bench tune its own folder")
        data = {"identity": identity, "budget": budget,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
        atomic_write_text(folder / SETTINGS_FILE, json.dumps(data, indent=2) + "\n")
        return data
    differs = _first_difference(existing["identity"], identity)
    if differs is not None:
        raise UsageError(f"--out {folder}: holds a tune of other settings ({differs} differs; see its "
                         f"{SETTINGS_FILE}); choose another --out, or give the same options to resume it")
    return existing


def set_budget(folder: Path, budget: int) -> None:
    """Record a changed budget in tune.json (after the caller has checked that no pair is past it)."""
    existing = read_tune_settings(folder)
    if existing.get("budget") != budget:
        atomic_write_text(folder / SETTINGS_FILE, json.dumps({**existing, "budget": budget}, indent=2) + "\n")
