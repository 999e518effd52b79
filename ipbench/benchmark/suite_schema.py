"""The shape of a TOML suite, checked as a whole before anything is built from it.

Each mistake is one UsageError naming the file, the key (with the table's position) and what is expected,
instead of a traceback or a silent conversion (`seeds = [0.5, 1.7]` is not seeds 0 and 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ipbench.errors import UsageError
from ipbench.models.acceleration import PRECISIONS
from ipbench.seeding import SEEDINGS

TOP_LEVEL = {"model": "a string", "images": "a string", "num_images": "an integer >= 1", "seeds": "a list of integers",
             "title": "a string", "notes": "a string", "precision": "fp32 or bf16", "seeding": "independent or common", "metrics": "a list of metric names",
             "solver": "[[solver]] tables", "operator": "[[operator]] tables", "reference": "[[reference]] tables"}
REFERENCE_KEYS = {"solver": str, "operator": str, "metric": str, "value": (int, float)}  # required
REFERENCE_OPTIONAL = {"source": str, "verified": bool, "setting": str}  # setting: data etc. when not the run's


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


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
