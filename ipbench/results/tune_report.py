"""`bench report DIR` on a `bench tune` folder: one self-contained page (figures inline, no script, opens
offline) from tune.json and trials.jsonl alone (no optuna): what was tuned on and how, then per (solver,
operator) pair its best trial, the best-so-far curve, each tuned parameter against the objective, and every
trial (state, parameters, value after each rung, time, error). A trial's own run folder is an ordinary run:
`bench report DIR/trials/<solver>/<operator>/<trial>` shows it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.results import tune_plots
from ipbench.results.html_report import _data_uri, _version, render
from ipbench.results.metric_registry import METRICS
from ipbench.results.tune_log import best, pair_records, params_text, read_log, read_tune_settings, with_error

TEMPLATE = "tune_report.html.j2"
SUMMARY_FILE = "summary.md"  # written by the tune (tuning/summary.py), shown as it is


def _rungs(record: dict[str, Any]) -> str:
    return "; ".join(f"{r['images']}: {r['value']:.4g}" for r in record.get("rungs", []) if r.get("value") is not None)


def _pair(pair: dict[str, Any], records: list[dict[str, Any]], metric: str, budget: int) -> dict[str, Any]:
    mine = pair_records(records, pair["solver"], pair["operator"])
    title = f"{pair['solver']} on {pair['operator']}"
    higher = METRICS[metric].better == "higher"
    top = best(mine, higher)
    states = [r["state"] for r in mine]
    space = pair.get("space", {})
    return {
        "solver": pair["solver"], "operator": pair["operator"],
        "space": ", ".join(_space_text(name, dim) for name, dim in space.items()),
        "counted": sum(s in ("complete", "pruned", "failed") for s in states), "budget": budget,
        "complete": states.count("complete"), "pruned": states.count("pruned"), "failed": states.count("failed"),
        "interrupted": states.count("interrupted"), "running": states.count("running") + states.count("waiting"),
        "best": None if top is None else {"value": with_error(top["value"], top.get("se")), "number": top["number"],
                                          "params": params_text(top["params"]), "folder": top["folder"]},
        "curve": _data_uri(tune_plots.best_so_far_png(mine, metric, title)) if mine else None,
        "parameters": _data_uri(tune_plots.parameters_png(mine, space, metric, title)) if mine and space else None,
        "trials": [{"number": r["number"], "state": r["state"], "params": params_text(r["params"]),
                    "value": with_error(r.get("value"), r.get("se")), "rungs": _rungs(r),
                    "seconds": "" if r.get("seconds") is None else f"{r['seconds']:.1f}",
                    "error": r.get("error") or "", "folder": r.get("folder") or "",
                    "retry_of": r.get("retry_of")} for r in mine],
    }


def _space_text(name: str, dim: dict[str, Any]) -> str:
    if dim.get("kind") == "categorical":
        return f"{name} in {{{', '.join(map(str, dim.get('choices', [])))}}}"
    return f"{name} in [{dim.get('low'):g}, {dim.get('high'):g}]{' log' if dim.get('log') else ''}"


def build_tune_report(folder: Path) -> dict[str, Any]:
    """What the page shows, from the folder's tune.json and trials.jsonl."""
    settings = read_tune_settings(folder)
    identity = settings["identity"]
    metric = identity.get("objective")
    if metric not in METRICS:
        raise UsageError(f"{folder / 'tune.json'}: objective {metric!r} is not a metric ipbench knows")
    records = read_log(folder)
    budget = int(settings.get("budget", 0))
    images = identity.get("images", {})
    ids = images.get("ids", [])
    warnings = []
    if images.get("split") == "test":
        warnings.append(f"tuned on {images.get('source')}, a test split: an evaluation on it is not held out")
    summary = folder / SUMMARY_FILE
    return {
        "title": f"bench tune {folder.name}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ipbench_version": _version(),
        "folder": str(folder), "command": settings.get("command") or "(not recorded)",
        "created": settings.get("created", ""), "objective": METRICS[metric].label,
        "better": METRICS[metric].better, "budget": budget, "model": identity.get("model"),
        "images": f"{len(ids)} images of {images.get('source')} (split {images.get('split') or 'not declared'})"
                  + (f", ids {ids[0]} .. {ids[-1]}" if ids else ""),
        "seeds": identity.get("seeds"), "pruner": identity.get("pruner"),
        "rung_images": settings.get("rung_images", []), "sampler_seed": identity.get("sampler_seed"),
        "warnings": warnings, "summary": summary.read_text() if summary.is_file() else None,
        "pairs": [_pair(pair, records, metric, budget) for pair in identity.get("pairs", [])],
    }


def write_tune_report(folder: Path, out: Path | None = None) -> Path:
    """Write the page of tune folder `folder` to `out` (default DIR/report.html), whole and atomically."""
    target = out if out is not None else folder / "report.html"
    if target.is_dir():
        raise UsageError(f"--out {target}: is a folder; give an .html file name, e.g. {target / 'report.html'}")
    context = build_tune_report(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, render(context, TEMPLATE))
    return target
