"""summary.md: what a tune did, for a person: the budget, the trials per pair (complete, pruned, failed), the
best value ± its standard error over images and its parameters, and the time spent."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ipbench.files import atomic_write_text
from ipbench.results.tune_log import best, pair_records, params_text, with_error
from ipbench.tuning import study as studies
from ipbench.tuning.suite_out import SUITE_FILE, evaluation_set

if TYPE_CHECKING:
    from ipbench.tuning.engine import Prepared, TuneOptions

SUMMARY_FILE = "summary.md"


def summary_text(prepared: "Prepared", options: "TuneOptions", records: Sequence[dict[str, Any]], budget: int,
                 complete: bool) -> str:
    metric = options.objective
    better = "higher" if prepared.higher_is_better else "lower"
    ids = prepared.ids
    rungs = prepared.plan
    lines = [f"# bench tune: {prepared.out.name}", "",
             f"- Objective: {metric} ({better} is better), the mean over {len(ids)} images of {prepared.image_set} "
             f"(split {prepared.split or 'not declared'}; ids {ids[0]} .. {ids[-1]}) of each image's mean over seeds "
             f"{list(prepared.spec.seeds)}; ± is its standard error over images.",
             f"- Budget: {budget} trials per (solver, operator), the same for every pair.",
             f"- Sampler: {studies.sampler_text(options.sampler_seed, budget)}; trial n's sampler is seeded from "
             f"(seed, n).",
             f"- Pruning: {studies.pruner_text(options.pruner, budget) if rungs.rungs > 1 else 'none'}, after "
             f"{rungs.describe()}.",
             f"- Status: {'complete' if complete else 'not complete (trials still to run or running elsewhere)'}.",
             "", "| solver | operator | trials | complete | pruned | failed | best | best parameters | trial |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    seconds = cpu = 0.0
    for pair in prepared.pairs:
        mine = pair_records(records, pair.entry.label, pair.operator.label)
        states = [r["state"] for r in mine]
        top = best(mine, prepared.higher_is_better)
        finished = sum(s in ("complete", "pruned", "failed") for s in states)
        lines.append(f"| {pair.entry.label} | {pair.operator.label} | {finished} of {budget} | "
                     f"{states.count('complete')} | {states.count('pruned')} | {states.count('failed')} | "
                     + (f"{with_error(top['value'], top.get('se'))} | {params_text(top['params'])} | "
                        f"{top['number']} ({top['folder']}) |" if top else "n/a | no complete trial | |"))
        seconds += sum(r.get("seconds") or 0.0 for r in mine)
        cpu += sum(r.get("cpu_seconds") or 0.0 for r in mine)
    interrupted = sum(r["state"] == "interrupted" for r in records)
    lines += ["", f"Time: {cpu / 3600:.3g} CPU-hours (process CPU time of the trials, every worker), "
                  f"{seconds / 3600:.3g} hours of trial wall time summed over trials."]
    if interrupted:
        lines.append(f"{interrupted} interrupted trial{'s were' if interrupted > 1 else ' was'} tried again "
                     "(not counted).")
    failed = [r for r in records if r["state"] == "failed"]
    if failed:
        lines += ["", "Failed trials:", ""] + [f"- {r['solver']} on {r['operator']}, trial {r['number']} "
                                               f"({params_text(r['params'])}): {r['error']}" for r in failed]
    if complete:
        target = evaluation_set(prepared.image_set)
        lines += ["", f"The best parameters are in {SUITE_FILE}, evaluated on {target}: "
                      f"bench run --config {prepared.out / SUITE_FILE}"]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, prepared: "Prepared", options: "TuneOptions", records: Sequence[dict[str, Any]],
                  budget: int, complete: bool) -> None:
    atomic_write_text(out / SUMMARY_FILE, summary_text(prepared, options, records, budget, complete))
