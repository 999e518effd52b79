"""The run folders a report covers: their rows and run.json, solver labels made unique across runs, the
warnings where runs differ in what their numbers mean, and each run's provenance as the page shows it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ipbench.errors import UsageError
from ipbench.results.evaluated_on import evaluation_warnings, split_text
from ipbench.results.rows import load_rows, read_run_json


@dataclass
class ReportRun:
    """One run folder as the report sees it: its run.json, its rows, and how its solvers are labelled
    in the report (a label that two runs share gets the run's name appended)."""

    name: str
    path: Path
    meta: dict[str, Any]
    rows: pd.DataFrame
    labels: dict[str, str]  # solver label in the run -> label in the report


def distinct_runs(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """`paths` with each run folder once (by resolved path: `a`, `a/`, `./a` and a link to it are one run, whose
    rows would otherwise count twice in every statistic), and a warning for each one dropped."""
    seen: dict[Path, Path] = {}
    warnings = []
    for path in map(Path, paths):
        first = seen.setdefault(path.resolve(), path)
        if first is not path:
            warnings.append(f"{path} is the run {first} given again; it is counted once")
    return list(seen.values()), warnings


def load_report_runs(paths: Sequence[str | Path]) -> list[ReportRun]:
    """The runs (each once, see distinct_runs), with solver labels made unique across them; a one-line
    UsageError for a folder that is not a run or has no rows yet."""
    if not paths:
        raise UsageError("bench report: give at least one run folder")
    runs = []
    for path in distinct_runs(paths)[0]:
        meta = read_run_json(path)
        rows = load_rows(path)
        if rows.empty:
            raise UsageError(f"{path}: no rows yet; wait for `bench run` to write some (bench status {path})")
        runs.append(ReportRun(Path(path).resolve().name, Path(path), meta, rows, {}))
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = str(run.path)
    seen: dict[str, int] = {}
    for run in runs:
        for label in dict.fromkeys(run.rows["solver"]):
            seen[label] = seen.get(label, 0) + 1
    for run in runs:
        run.labels = {label: label if seen[label] == 1 else f"{label} ({run.name})"
                      for label in dict.fromkeys(run.rows["solver"])}
    return runs


def run_warnings(runs: Sequence[ReportRun]) -> list[str]:
    """One line per run that evaluates on images its parameters were tuned on, or on a tuning split
    (evaluated_on.py), then one per way in which a run differs from the first one in what its numbers mean:
    model, conventions (metrics, seeding, units), operators of the same label, images (ids or content)."""
    warnings = [f"{run.name}: {line}" if len(runs) > 1 else line
                for run in runs for line in evaluation_warnings(run.meta)]
    if len(runs) < 2:
        return warnings
    first = runs[0]
    for run in runs[1:]:
        pair = f"{run.name} and {first.name}"
        if run.meta["config"]["model"] != first.meta["config"]["model"]:
            warnings.append(f"{pair} use different models ({run.meta['config']['model']} and "
                            f"{first.meta['config']['model']}): their numbers are not comparable")
        differ = _differing_keys(run.meta.get("conventions", {}), first.meta.get("conventions", {}))
        if differ:
            warnings.append(f"{pair} differ in conventions: {', '.join(differ)} (see their provenance below)")
        ops = {o.get("label", o["name"]): o for o in first.meta["config"]["operators"]}
        for operator in run.meta["config"]["operators"]:
            label = operator.get("label", operator["name"])
            if label in ops and operator.get("params") != ops[label].get("params"):
                warnings.append(f"{pair} run operator {label} with different parameters; rows are paired on "
                                "its label, and that pairing is not meaningful")
        ids, first_ids = run.meta["images"]["ids"], first.meta["images"]["ids"]
        hashes, first_hashes = run.meta["images"].get("sha256", {}), first.meta["images"].get("sha256", {})
        changed = [i for i in set(ids) & set(first_ids) if i in hashes and i in first_hashes
                   and hashes[i] != first_hashes[i]]
        only, only_first = len(set(ids) - set(first_ids)), len(set(first_ids) - set(ids))
        if only or only_first or changed:
            warnings.append(f"{pair} differ in images: {only} only in {run.name}, {only_first} only in "
                            f"{first.name}, {len(changed)} with the same id but different content; paired "
                            "comparisons use the images both have")
    return warnings


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (one level into sub-dicts per call)."""
    keys = []
    for key in dict.fromkeys([*a, *b]):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            keys += _differing_keys(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            keys.append(f"{prefix}{key}")
    return keys


def provenance(run: ReportRun) -> dict[str, Any]:
    """What the page says of a run: folder, command, model, images, seeds and seeding, device, versions,
    speed switches, solver and operator settings, conventions."""
    meta, config = run.meta, run.meta["config"]
    conventions = {k: v for k, v in meta.get("conventions", {}).items() if k not in ("metrics", "metric_summary")}
    return {
        "name": run.name, "path": str(run.path), "created": meta.get("created", "?"),
        "command": meta.get("command") or "(not run as `bench`)",
        "model": f"{config['model']} {tuple(meta['model'].get('image_shape', ()))}",
        "images": f"{meta['images'].get('source', '?')} ({split_text(meta['images'])}), "
                  f"{len(meta['images']['ids'])} images",
        "seeds": ", ".join(str(s) for s in config["seeds"]),
        "seeding": config.get("seeding", "independent"),
        "device": meta.get("device", "?"), "ipbench": meta.get("ipbench_version", "?"),
        "versions": ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
        "acceleration": ", ".join(f"{k}={v}" for k, v in meta.get("acceleration", {}).items()
                                  if v not in (False, None)),
        "solvers": [f"{run.labels.get(s['label'], s['label'])}: {s['name']} "
                    + ", ".join(f"{k}={v}" for k, v in s["params"].items()) + _per_operator_text(s)
                    for s in config["solvers"]],
        "operators": [f"{o.get('label', o['name'])}: " + ", ".join(f"{k}={v}" for k, v in o.get("params", {}).items())
                      for o in config["operators"]],
        "conventions": conventions,
        "metrics": meta.get("conventions", {}).get("metric_summary", {}),
    }


def _per_operator_text(solver: dict[str, Any]) -> str:
    """A solver entry's preset and per-operator values as the provenance shows them after its params."""
    parts = [f"preset {solver['preset']}"] if "preset" in solver else []
    for label, own in solver.get("per_operator", {}).items():
        values = ", ".join(f"{k}={v}" for k, v in own.get("params", {}).items())
        parts.append(f"on {label}: {values or 'as above'}{' (tuned)' if 'tuned' in own else ''}")
    return "".join(f"; {part}" for part in parts)


def all_rows(runs: Sequence[ReportRun]) -> pd.DataFrame:
    """Every run's rows in one frame, solvers under their report labels, with the run's name in `run`."""
    frames = []
    for run in runs:
        rows = run.rows.copy()
        rows["solver"] = rows["solver"].map(run.labels)
        rows["run"] = run.name
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)
