"""tuned.toml: the tune's solvers and operators as a suite, with each pair's best parameters in the solver's
`[solver.per_operator."<operator label>"]` table and their provenance in its `tuned` table, ready for
`bench run --config DIR/tuned.toml`.

Its `images` is the test split of the tuning set's origin where one is registered (fashion32-val ->
fashion32-test), so the suite evaluates on images disjoint from the tuning ones; for a set without one (a
folder, a test split) it is the tuning set itself, which `bench run` then warns about. Its top-level solver
keys are the parameters set for every operator (the suite's and --param's); a pair without a complete trial
keeps them, and the file says so. The number of images is left to the run (`--num-images`).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ipbench.files import atomic_write_text
from ipbench.operators import Operator
from ipbench.results.metric_registry import DEFAULT_METRICS
from ipbench.results.tune_log import best, pair_records
from ipbench.tuning import study as studies
from ipbench.tuning.splits import counterpart
from ipbench.tuning.toml_out import assignment

if TYPE_CHECKING:
    from ipbench.tuning.engine import Prepared, TuneOptions

SUITE_FILE = "tuned.toml"


def evaluation_set(image_set: str) -> str:
    """The set a tuned suite evaluates on: the test split of the tuning set's origin, else the set itself."""
    return counterpart(image_set, "test") or image_set


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


def provenance(prepared: "Prepared", options: "TuneOptions", mine: Sequence[dict[str, Any]], top: dict[str, Any],
               budget: int, fields: Sequence[str]) -> dict[str, Any]:
    """The `tuned` table of one pair, with the keys the suite format defines."""
    states = [r["state"] for r in mine]
    table: dict[str, Any] = {
        "fields": list(fields), "image_set": prepared.image_set, "ids": list(prepared.ids),
        "seeds": list(prepared.spec.seeds), "budget": budget, "objective": options.objective,
        "best": top["value"]}
    if top.get("se") is not None:
        table["best_se"] = top["se"]
    table.update({"trials": sum(s in ("complete", "pruned", "failed") for s in states),
                  "pruned": states.count("pruned"), "failed": states.count("failed"),
                  "sampler": studies.sampler_text(options.sampler_seed, budget), "study": studies.STUDY_FILE})
    return table


def suite_text(prepared: "Prepared", options: "TuneOptions", records: Sequence[dict[str, Any]], budget: int) -> str:
    spec = prepared.spec
    target = evaluation_set(prepared.image_set)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [f"# Written by bench tune ({when}): per (solver, operator) the best of {budget} trials on "
             f"{len(prepared.ids)} images of {prepared.image_set}",
             f"# x seeds {list(spec.seeds)}, objective {options.objective}; pruning "
             f"{options.pruner if prepared.plan.rungs > 1 else 'none'} after {prepared.plan.describe()}.",
             f"# bench run --config {prepared.out / SUITE_FILE}  (the trials: trials.jsonl, summary.md)"]
    if target == prepared.image_set:
        lines.append(f"# No test split of {prepared.image_set}'s origin is registered: images is the tuning set; "
                     "set it to held-out images.")
    lines += [assignment("model", spec.model), assignment("images", target), assignment("seeds", list(spec.seeds))]
    config = spec.config()
    for name in ("precision", "seeding"):
        if name in config:
            lines.append(assignment(name, config[name]))
    if prepared.suite_metrics != list(DEFAULT_METRICS):
        lines.append(assignment("metrics", list(prepared.suite_metrics)))
    for operator in spec.operators:
        lines += ["", "[[operator]]", assignment("name", operator.name)]
        if operator.label != operator.name:
            lines.append(assignment("label", operator.label))
        defaults = Operator.create(operator.name).params
        lines += [assignment(k, v) for k, v in _changed(operator.params, defaults).items()]
    pairs = {(p.entry.label, p.operator.label): p for p in prepared.pairs}
    for entry in spec.solvers:
        lines += ["", "[[solver]]", assignment("name", entry.name)]
        if entry.label != entry.name:
            lines.append(assignment("label", entry.label))
        if entry.operators:
            lines.append(assignment("operators", list(entry.operators)))
        defaults = type(entry.solver).create().hyperparameters()
        lines += [assignment(k, v) for k, v in _changed(entry.solver.hyperparameters(), defaults).items()]
        for operator in spec.operators:
            pair = pairs.get((entry.label, operator.label))
            if pair is None:
                continue
            mine = pair_records(records, entry.label, operator.label)
            top = best(mine, prepared.higher_is_better)
            if top is None:
                lines.append(f"# {operator.label}: no complete trial of {budget}; the parameters above apply")
                continue
            table = f"solver.per_operator.{json.dumps(operator.label, ensure_ascii=False)}"
            lines += ["", f"[{table}]"] + [assignment(k, top["params"][k]) for k in pair.space]
            lines += ["", f"[{table}.tuned]"]
            lines += [assignment(k, v) for k, v in provenance(prepared, options, mine, top, budget,
                                                               list(pair.space)).items()]
    return "\n".join(lines) + "\n"


def write_suite(out: Path, prepared: "Prepared", options: "TuneOptions", records: Sequence[dict[str, Any]],
                budget: int) -> None:
    atomic_write_text(out / SUITE_FILE, suite_text(prepared, options, records, budget))
