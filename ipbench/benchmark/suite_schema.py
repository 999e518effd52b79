"""The shape of a TOML suite, checked as a whole before anything is built from it.

Each mistake is one UsageError naming the file, the key (with the table's position) and what is expected,
instead of a traceback or a silent conversion (`seeds = [0.5, 1.7]` is not seeds 0 and 1).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ipbench.benchmark.condition import CONDITIONS
from ipbench.errors import UsageError
from ipbench.models.acceleration import PRECISIONS
from ipbench.seeding import SEEDINGS

TOP_LEVEL = {"model": "a string", "images": "a string", "num_images": "an integer >= 1", "seeds": "a list of integers",
             "title": "a string", "notes": "a string", "precision": "fp32 or bf16", "seeding": "independent or common", "metrics": "a list of metric names",
             "condition": "true, wrong or none (a class-conditional model's class)",
             "guidance": "a finite number >= 0 (classifier-free guidance; with condition)",
             "samples": "an integer in 1..64 (posterior draws per measurement)",
             "preset": "a preset name (e.g. paper) for every [[solver]] without its own", "solver": "[[solver]] tables", "operator": "[[operator]] tables", "reference": "[[reference]] tables"}
REFERENCE_KEYS = {"solver": str, "operator": str, "metric": str, "value": (int, float)}  # required
REFERENCE_OPTIONAL = {"source": str, "verified": bool, "setting": str}  # setting: data etc. when not the run's

# A `tuned` table: the provenance of tuned values, as `bench tune` writes it (run.json carries it as given).
# key -> (what it must be, check); `fields` and `image_set` are required.
TUNED_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "fields": ("a non-empty list of field names", lambda v: _is_str_list(v) and len(v) > 0),
    "image_set": ("a non-empty string (a registered image set or folder)", lambda v: isinstance(v, str) and bool(v.strip())),
    "ids": ("a list of image ids as strings", lambda v: _is_str_list(v)),
    "seeds": ("a list of integers", lambda v: isinstance(v, list) and all(map(_is_int, v))),
    "budget": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "objective": ("a metric name", lambda v: isinstance(v, str) and bool(v.strip())),
    "best": ("a finite number", lambda v: _is_number(v)),
    "best_se": ("a finite number >= 0", lambda v: _is_number(v) and v >= 0),
    "trials": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "pruned": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "failed": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "sampler": ("a string", lambda v: isinstance(v, str)),
    "study": ("a path (relative to the suite file)", lambda v: isinstance(v, str) and bool(v.strip())),
}
TUNED_REQUIRED = ("fields", "image_set")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_suite(data: dict[str, Any], path: Path) -> None:
    """Raise a one-line UsageError for the first key of `data` (a parsed suite) that has the wrong shape."""
    where = f"--config {path}"
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(TOP_LEVEL))}")

    def expect(key: str, ok: bool) -> None:
        if not ok:
            raise UsageError(f"{where}: {key} = {data[key]!r}; expected {TOP_LEVEL[key]}")

    if "precision" in data and (not isinstance(data["precision"], str) or data["precision"] not in PRECISIONS):
        raise UsageError(f"{where}: precision = {data['precision']!r}; valid: {', '.join(PRECISIONS)}")
    if "condition" in data or "guidance" in data:
        if "condition" in data:
            expect("condition", isinstance(data["condition"], str) and data["condition"] in CONDITIONS)
        if "guidance" in data:
            expect("guidance", "condition" in data and _is_number(data["guidance"]) and data["guidance"] >= 0)
    if "samples" in data:
        expect("samples", _is_int(data["samples"]) and 1 <= data["samples"] <= 64)
    if "seeding" in data and data["seeding"] not in SEEDINGS:
        raise UsageError(f"{where}: seeding = {data['seeding']!r}; valid: {', '.join(SEEDINGS)}")
    for key in ("model", "images", "title", "notes"):
        if key in data:
            expect(key, isinstance(data[key], str) and (key not in ("model", "images") or bool(data[key].strip())))
    if "num_images" in data:
        expect("num_images", _is_int(data["num_images"]) and data["num_images"] >= 1)
    if "seeds" in data:
        seeds = data["seeds"]
        expect("seeds", _is_int(seeds) or (isinstance(seeds, list) and len(seeds) > 0 and all(map(_is_int, seeds))))
    if "metrics" in data:
        expect("metrics", isinstance(data["metrics"], str) or _is_str_list(data["metrics"]))
    if "preset" in data:
        expect("preset", isinstance(data["preset"], str))
    for kind in ("solver", "operator", "reference"):
        tables = data.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise UsageError(f"{where}: {kind} must be [[{kind}]] tables (an array of tables), got {tables!r}")
        for i, table in enumerate(tables, start=1):
            _check_table(kind, i, table, where)


def _check_table(kind: str, index: int, table: dict[str, Any], where: str) -> None:
    at = f"{where}: [[{kind}]] number {index}"
    if kind == "reference":
        for key, types in REFERENCE_KEYS.items():
            if key not in table:
                raise UsageError(f"{at} has no {key!r}; a reference needs {', '.join(REFERENCE_KEYS)}")
            if not isinstance(table[key], types) or isinstance(table[key], bool):
                raise UsageError(f"{at}: {key} = {table[key]!r}; expected a {'number' if key == 'value' else 'string'}")
        for key, tp in REFERENCE_OPTIONAL.items():
            if key in table and not isinstance(table[key], tp):
                raise UsageError(f"{at}: {key} = {table[key]!r}; expected a {tp.__name__}")
        extra = sorted(set(table) - set(REFERENCE_KEYS) - set(REFERENCE_OPTIONAL))
        if extra:
            raise UsageError(f"{at}: unknown key {extra[0]!r}; valid: "
                             f"{', '.join([*REFERENCE_KEYS, *REFERENCE_OPTIONAL])}")
        return
    if "name" not in table:
        raise UsageError(f"{at} has no 'name'")
    for key in ("name", "label"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise UsageError(f"{at}: {key} = {table[key]!r}; expected a non-empty string")
    if kind == "solver" and "operators" in table and not _is_str_list(table["operators"]):
        raise UsageError(f"{at}: operators = {table['operators']!r}; expected a list of operator labels")
    if kind == "solver":
        _check_solver_extras(table, f"{at}{_label_of(table)}")


def _label_of(table: dict[str, Any]) -> str:
    label = table.get("label", table.get("name"))
    return f" ({label})" if isinstance(label, str) else ""


def _check_solver_extras(table: dict[str, Any], at: str) -> None:
    """The shape of a solver table's `preset`, `tuned` and `per_operator` (field names and values are the
    solver's to check, in spec.py)."""
    if "preset" in table and not isinstance(table["preset"], str):
        raise UsageError(f"{at}: preset = {table['preset']!r}; expected a preset name (e.g. \"paper\")")
    if "tuned" in table:
        check_tuned(table["tuned"], f"{at}: tuned")
    per_operator = table.get("per_operator", {})
    if not isinstance(per_operator, dict) or not all(isinstance(t, dict) for t in per_operator.values()):
        raise UsageError(f"{at}: per_operator must hold one table per operator label, "
                         f"[solver.per_operator.\"LABEL\"], got {per_operator!r}")
    for label, own in per_operator.items():
        for key in ("name", "label", "operators", "preset", "per_operator"):
            if key in own:
                raise UsageError(f"{at}: per_operator.\"{label}\".{key}: not a per-operator key; a per_operator table "
                                 "holds the solver's fields (and `tuned`)")
        if "tuned" in own:
            check_tuned(own["tuned"], f"{at}: per_operator.\"{label}\".tuned")


def check_tuned(tuned: Any, at: str) -> None:
    """One-line UsageError for the first key of a `tuned` table with the wrong shape (TUNED_KEYS)."""
    if not isinstance(tuned, dict):
        raise UsageError(f"{at} = {tuned!r}; expected a table of tuning provenance ({', '.join(TUNED_KEYS)})")
    for key in TUNED_REQUIRED:
        if key not in tuned:
            raise UsageError(f"{at} has no {key!r}; a tuned table needs {', '.join(TUNED_REQUIRED)}")
    for key, value in tuned.items():
        if key not in TUNED_KEYS:
            raise UsageError(f"{at}: unknown key {key!r}; valid: {', '.join(TUNED_KEYS)}")
        what, ok = TUNED_KEYS[key]
        if not ok(value):
            raise UsageError(f"{at}.{key} = {value!r}; expected {what}")
