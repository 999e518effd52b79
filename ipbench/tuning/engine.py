"""The loop of `bench tune`: for each (solver, operator) pair, ask the study for trials until the budget is
reached, run each trial as an ordinary run folder rung by rung, and tell the study what it scored.

What is tuned on: the first M images of the tuning set (`--images`, default the validation split of the
model's default set, e.g. fashion32-val), the run's seeds, and per pair the solver's base parameters
(defaults < suite < --param) with the trial's values of its search space on top. A trial's run folder is
DIR/trials/<solver>/<operator>/<NNNN>/ (run.json, rows, images: `bench table` and `bench report` read it).

A trial is complete (scored on all M images), pruned (stopped by the pruner after a rung), or failed: a row
failed (the solver raised, returned non-finite values), or its values are refused by the solver (a bound
between fields, one the model sets). A failed trial is recorded with its error and the tune goes on. An
error that is not the trial's (a full disk, Ctrl-C) stops the tune; the trial is then marked interrupted
and a rerun tries it again (study.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ipbench.benchmark.runner import run
from ipbench.benchmark.shard import Shard
from ipbench.benchmark.spec import ParamAssignment, RunSpec, SolverEntry, make_spec
from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.operators import Operator
from ipbench.paths import expand_user
from ipbench.data.sets import IMAGE_SETS
from ipbench.results.metric_registry import DEFAULT_METRICS, METRICS
from ipbench.results.tune_log import counted
from ipbench.run_paths import MAX_NAME_BYTES, file_name
from ipbench.seeding import measurement_generator
from ipbench.solvers import SOLVERS
from ipbench.solvers.base import SOLVER_FAILURES
from ipbench.tuning import study as studies
from ipbench.tuning.options import OBJECTIVES, PRUNERS, TuneOptions
from ipbench.tuning.objective import Outcome, trial_outcome
from ipbench.tuning.rungs import RungPlan, plan
from ipbench.tuning.settings import set_budget, settle
from ipbench.tuning.space import Dimension, SpaceOption, options_by_entry, solver_space
from ipbench.tuning.splits import counterpart
from ipbench.tuning.trial_log import record, write_log

SUITE_KEYS_NOT_FIELDS = {"name", "label", "operators", "preset", "tuned", "per_operator"}


@dataclass
class Pair:
    """One (solver entry, operator) pair of the tune, with its search space."""

    entry: SolverEntry
    operator: Operator
    space: dict[str, Dimension]

    @property
    def study(self) -> str:
        return json.dumps([self.entry.label, self.operator.label])

    def folder(self, number: int) -> str:
        """Its trial's run folder, relative to the tune folder."""
        return f"trials/{file_name(self.entry.label)}/{file_name(self.operator.label)}/{number:04d}"


@dataclass
class Prepared:
    """Everything a tune needs, checked before any trial runs."""

    spec: RunSpec  # every solver and operator, on the tuning images
    pairs: list[Pair]
    image_set: str  # as given (or chosen), for the provenance
    ids: list[str]
    split: str | None
    plan: RungPlan
    higher_is_better: bool
    out: Path
    identity: dict[str, Any]
    notes: list[str]
    model: Any
    suite_metrics: list[str]  # the metrics the suite asks of its evaluation (trials compute the defaults)


@dataclass
class TuneResult:
    out: Path
    complete: bool  # every pair has its budget of counted trials, none running
    waiting_for: int  # trials still running in other workers
    ran: int  # trials this process ran


def _fixed_fields(options: TuneOptions, spec: RunSpec) -> list[set[str]]:
    """Per solver entry, the fields set by --param or by its suite table: those are not tuned."""
    fixed: list[set[str]] = [set() for _ in spec.solvers]
    if options.config is not None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            import tomli as tomllib  # type: ignore[no-redef]

        tables = tomllib.loads(expand_user(options.config, "--config").read_text()).get("solver", [])
        for keys, table in zip(fixed, tables):
            keys.update(set(table) - SUITE_KEYS_NOT_FIELDS)
    for assignment in map(ParamAssignment.parse, options.params):
        for keys, entry in zip(fixed, spec.solvers):
            fields = {p.name for p in entry.solver.params()}
            named = assignment.target in (entry.label, entry.name) or (
                assignment.target in SOLVERS and SOLVERS.canonical(assignment.target) == entry.name)
            if (named or not assignment.target) and assignment.name in fields:
                keys.add(assignment.name)
    return fixed


def _tuning_images(options: TuneOptions, model: Any, log: Callable[[str], None]) -> str:
    """The tuning set: --images, else the validation split of the model's default set (said so)."""
    if options.images is not None:
        return options.images
    default = model.default_image_set
    val = counterpart(default, "val") if default else None
    if val is None:
        raise UsageError("--images: give the tuning images, a validation split (e.g. fashion32-val) or a folder; "
                         f"the model's default set {default!r} has no registered validation split")
    log(f"tuning on {val}, the validation split of {default} (--images to choose)")
    return val


def _check_bounds(pair_entry: SolverEntry, space: dict[str, Dimension], model: Any) -> None:
    """Each dimension's ends (or choices) as values of the solver, checked as a run checks a setting: the
    solver's own checks between fields and the model's bounds (times below T, steps a grid has)."""
    cls, base = type(pair_entry.solver), pair_entry.solver.hyperparameters()
    for dim in space.values():
        for end in (dim.choices if dim.kind == "categorical" else (dim.low, dim.high)):
            try:
                cls.create({**base, dim.field: end}).check_model(model)
            except UsageError as exc:
                where = f"--space {dim.source!r}" if dim.source != "declared" else "the declared search space"
                raise UsageError(f"{where} ({pair_entry.label}.{dim.describe()}): at {dim.field}={end!r}: {exc}; "
                                 "narrow it with --space") from None


def _unsupported(entry: SolverEntry, operator: Operator, model: Any, first_id: str, seed: int,
                 device: torch.device) -> str | None:
    """Why the solver does not apply to the operator (its pair is then not tuned), or None."""
    generator = measurement_generator(seed, first_id, operator.label, device)
    physics = operator.build(model.image_shape, [generator], device)
    try:
        return entry.solver.unsupported(physics, torch.zeros(1, *model.image_shape, device=device))
    except SOLVER_FAILURES:  # a check that raises is the trials' failure to record, not a reason to skip
        return None


def prepare(options: TuneOptions, device: torch.device, log: Callable[[str], None]) -> Prepared:
    """Check everything that can be checked before a trial runs, and build the pairs."""
    studies.require_optuna()
    if options.budget < 1:
        raise UsageError(f"--budget {options.budget}: must be >= 1 trial per (solver, operator)")
    if options.objective not in OBJECTIVES:
        raise UsageError(f"--objective {options.objective}: valid: {', '.join(OBJECTIVES)}")
    if options.pruner not in PRUNERS:
        raise UsageError(f"--pruner {options.pruner}: valid: {', '.join(PRUNERS)}")
    if options.rungs < 1:
        raise UsageError(f"--rungs {options.rungs}: must be >= 1 (1: no pruning)")
    if options.num_images < 1:
        raise UsageError(f"--num-images {options.num_images}: must be >= 1")
    spec = make_spec(options.config, list(options.solvers), list(options.operators), list(options.params),
                     model=options.model, seeds=options.seeds)
    space_options = [SpaceOption.parse(text) for text in options.space]
    fixed = _fixed_fields(options, spec)
    entries = [(e.label, e.name, {p.name for p in e.solver.params()}) for e in spec.solvers]
    notes: list[str] = []
    spaces = []
    for entry, keys, mine in zip(spec.solvers, fixed, options_by_entry(space_options, entries)):
        space, more = solver_space(entry.solver.params(), entry.label, mine, keys, f"solver {entry.name}")
        if not space:
            why = "all its tunable fields are set" if keys else "it declares none"
            raise UsageError(f"{entry.label}: no field to tune ({why}); give --space FIELD=LOW:HIGH[:log] (see bench list)")
        spaces.append(space)
        notes += more
    model = load_model(spec.model, device)
    image_set = _tuning_images(options, model, log)
    if image_set not in IMAGE_SETS:  # a folder: absolute, so the provenance names it from anywhere
        image_set = str(expand_user(image_set, "--images").resolve())
    images = load_images(image_set, model.image_shape, options.num_images)
    suite_metrics = list(spec.metrics)
    # trials score the per-image metrics only (the objective is one): a suite's FID is the evaluation's business
    spec = dataclasses.replace(spec, images=image_set, num_images=len(images), reference=[],
                               metrics=list(DEFAULT_METRICS))
    if images.split == "test":
        notes.append(f"{image_set} is a test split: parameters tuned on it are not held out from an evaluation on "
                     "it (bench run warns); tune on a validation split")
    pairs = []
    for entry, space in zip(spec.solvers, spaces):
        _check_bounds(entry, space, model)
        for operator in spec.operators:
            if not entry.runs_on(operator.label):
                continue
            reason = _unsupported(entry, operator, model, images.ids[0], spec.seeds[0], device)
            if reason is not None:
                notes.append(f"{entry.label} does not apply to {operator.label} ({reason}): not tuned")
                continue
            pairs.append(Pair(entry, operator, space))
    if not pairs:
        raise UsageError("no (solver, operator) pair to tune: every solver is inapplicable to every operator")
    rung_plan = plan(len(images), options.rungs)
    identity = {
        "objective": options.objective, "images": {"source": image_set, "split": images.split, "ids": images.ids},
        "seeds": list(spec.seeds), "model": spec.model, "pruner": options.pruner, "rungs": rung_plan.rungs,
        "sampler_seed": options.sampler_seed,
        "pairs": [{"solver": p.entry.label, "operator": p.operator.label, "study": p.study,
                   "space": {name: d.as_json() for name, d in p.space.items()},
                   "run": _pair_spec(spec, p.entry, p.operator).config()} for p in pairs],
    }
    out = expand_user(options.out, "--out") if options.out is not None else _default_out(spec, identity)
    return Prepared(spec, pairs, image_set, list(images.ids), images.split, rung_plan,
                    METRICS[options.objective].better == "higher", out, identity, notes, model, suite_metrics)


def _pair_spec(spec: RunSpec, entry: SolverEntry, operator: Operator) -> RunSpec:
    return dataclasses.replace(spec, solvers=[entry], operators=[operator])


def _default_out(spec: RunSpec, identity: dict[str, Any]) -> Path:
    """runs/tune_<solvers>_<operators>_<hash>: the same command resumes into the same folder."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    solvers = "-".join(file_name(s.label) for s in spec.solvers)
    operators = "-".join(file_name(o.label) for o in spec.operators)
    return Path("runs") / f"tune_{solvers[:MAX_NAME_BYTES // 2]}_{operators[:MAX_NAME_BYTES // 2]}_{digest}"


def tune(options: TuneOptions, device: torch.device, log: Callable[[str], None],
         prepared: Prepared | None = None) -> TuneResult:
    """Run the tune into its folder (resuming what is there) until every pair has its budget of trials."""
    optuna = studies.require_optuna()
    prepared = prepared or prepare(options, device, log)
    out = prepared.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the tune")
    out.mkdir(parents=True, exist_ok=True)
    extra = {"command": options.command, "suite": options.config, "rung_images":
             [prepared.plan.images_after(j) for j in range(prepared.plan.rungs)]}
    storage = studies.storage(out)
    direction = "maximize" if prepared.higher_is_better else "minimize"
    with studies.exclusive(out):
        settle(out, prepared.identity, options.budget, extra)
        loaded = {p.study: optuna.create_study(storage=storage, study_name=p.study, direction=direction,
                                               load_if_exists=True) for p in prepared.pairs}
        for pair in prepared.pairs:
            done = len(counted([record(pair.entry.label, pair.operator.label, t, "")
                                for t in loaded[pair.study].get_trials(deepcopy=False)]))
            if done > options.budget:
                raise UsageError(f"--budget {options.budget}: {pair.entry.label} on {pair.operator.label} already "
                                 f"has {done} trials in {out}; a budget only grows")
        set_budget(out, options.budget)
    for line in prepared.notes:
        log(f"note: {line}")
    log(f"tuning {len(prepared.pairs)} (solver, operator) pair{'s' if len(prepared.pairs) > 1 else ''} on "
        f"{len(prepared.ids)} images of {prepared.image_set} x seeds {prepared.spec.seeds}, {options.budget} trials "
        f"each, objective {options.objective} ({'higher' if prepared.higher_is_better else 'lower'} is better); "
        f"sampler {studies.sampler_text(options.sampler_seed, options.budget)}; pruning: "
        f"{studies.pruner_text(options.pruner, options.budget) if prepared.plan.rungs > 1 else 'none'} after "
        f"{prepared.plan.describe()}; folder {out}")
    ran = 0
    for pair in prepared.pairs:
        study = optuna.load_study(study_name=pair.study, storage=storage,
                                  pruner=studies.make_pruner(options.pruner, options.budget,
                                                             prepared.plan.images_after(0)))
        log(f"{pair.entry.label} on {pair.operator.label}: {', '.join(d.describe() for d in pair.space.values())}")
        distributions = {name: d.distribution() for name, d in pair.space.items()}
        while True:
            with studies.exclusive(out):
                budget = _budget(out)
                for line in studies.recover(study):
                    log(f"note: {line}")
                trial = studies.ask(study, distributions, options.sampler_seed, budget)
            if trial is None:
                break
            line = _run_trial(study, trial, pair, prepared, options, device)
            ran += 1
            log(f"  {line}")
            with studies.exclusive(out):
                write_log(out, _records(out, storage, prepared.pairs))
    with studies.exclusive(out):
        records = _records(out, storage, prepared.pairs)
        write_log(out, records)
        budget = _budget(out)
        running = sum(r["state"] in ("running", "waiting") for r in records)
        complete = running == 0 and all(
            len(counted([r for r in records if (r["solver"], r["operator"]) == (p.entry.label, p.operator.label)]))
            >= budget for p in prepared.pairs)
        _write_outputs(out, prepared, options, records, budget, complete)
    return TuneResult(out, complete, running, ran)


def _budget(out: Path) -> int:
    """The budget in tune.json now (a rerun may have raised it)."""
    from ipbench.results.tune_log import read_tune_settings

    return int(read_tune_settings(out)["budget"])


def _records(out: Path, storage: Any, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    optuna = studies.require_optuna()
    records = []
    for pair in pairs:
        study = optuna.load_study(study_name=pair.study, storage=storage)
        for trial in study.get_trials(deepcopy=False):
            folder = pair.folder(int(trial.user_attrs.get("folder", trial.number)))
            records.append(record(pair.entry.label, pair.operator.label, trial, folder))
    return records


def _run_trial(study: Any, trial: Any, pair: Pair, prepared: Prepared, options: TuneOptions,
               device: torch.device) -> str:
    """Run one trial, tell the study its state, and return its line for the log."""
    from optuna.trial import TrialState

    params = {name: trial.params[name] for name in pair.space}
    folder = prepared.out / pair.folder(int(trial.user_attrs["folder"]))
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with studies.heartbeat(trial):
            state, outcome, error = _evaluate(trial, pair, params, folder, prepared, options, device)
    except BaseException:  # not the trial's fault (Ctrl-C, a full disk): interrupted, tried again on a rerun
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    trial.set_user_attr("seconds", time.perf_counter() - wall)
    trial.set_user_attr("cpu_seconds", time.process_time() - cpu)
    if outcome is not None and outcome.value is not None:
        trial.set_user_attr("images", outcome.images)
        if outcome.se is not None:
            trial.set_user_attr("se", outcome.se)
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    where = f"trial {trial.number} ({shown})"
    if state == "failed":
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)
        return f"{where}: failed: {error}"
    metric = options.objective
    value = f"{metric} {outcome.value:.4g}" + (f" ± {outcome.se:.2g}" if outcome.se is not None else "")
    seconds = time.perf_counter() - wall
    if state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
        return f"{where}: pruned after {outcome.images} images ({value}) [{seconds:.1f} s]"
    study.tell(trial, outcome.value)
    return f"{where}: {value} on {outcome.images} images [{seconds:.1f} s]"


def _evaluate(trial: Any, pair: Pair, params: dict[str, Any], folder: Path, prepared: Prepared,
              options: TuneOptions, device: torch.device) -> tuple[str, Outcome | None, str | None]:
    """(state, outcome, error) of one trial: its run, rung by rung, reported to the pruner."""
    entry = pair.entry
    try:
        solver = type(entry.solver).create({**entry.solver.hyperparameters(), **params})
        solver.check_model(prepared.model)
    except UsageError as exc:  # values this solver refuses together (or this model bounds): the trial's failure
        return "failed", None, str(exc)
    spec = _pair_spec(prepared.spec, dataclasses.replace(entry, solver=solver), pair.operator)
    rung_plan = prepared.plan
    for rung, shards in enumerate(rung_plan.rung_shards()):
        for k in shards:
            shard = Shard(k, rung_plan.shards) if rung_plan.shards > 1 else None
            run(spec, out=folder, batch_size=options.batch_size, device=device, shard=shard,
                command=options.command, progress=False, log=None)
        ids = [prepared.ids[i] for i in rung_plan.positions(rung)]
        outcome = trial_outcome(folder, options.objective, entry.label, pair.operator.label, ids)
        if outcome.failed is not None:
            return "failed", outcome, outcome.failed
        if outcome.skipped is not None or outcome.value is None:
            return "failed", outcome, f"no scored row: {outcome.skipped or 'the run wrote none'}"
        trial.report(outcome.value, step=len(ids))
        if rung < rung_plan.rungs - 1 and trial.should_prune():
            return "pruned", outcome, None
    _write_tables(folder)
    return "complete", outcome, None


def _write_tables(folder: Path) -> None:
    """table.md/.csv/.tex of a complete trial, as `bench run` leaves them."""
    from ipbench.results.table import write_tables

    try:
        write_tables(folder)
    except UsageError:  # a table is a convenience here; `bench table` remakes it
        pass


def _write_outputs(out: Path, prepared: Prepared, options: TuneOptions, records: list[dict[str, Any]], budget: int,
                   complete: bool) -> None:
    from ipbench.tuning.suite_out import write_suite
    from ipbench.tuning.summary import write_summary

    write_summary(out, prepared, options, records, budget, complete)
    if complete:
        write_suite(out, prepared, options, records, budget)

