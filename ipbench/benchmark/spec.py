"""What to run: solvers x operators x images x seeds on one model, from the CLI or a TOML suite."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipbench.errors import UsageError
from ipbench.operators import OPERATORS, Operator
from ipbench.results.metrics import DEFAULT_METRICS, METRICS
from ipbench.solvers import SOLVERS, Solver

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_MODEL = "fashion32"


@dataclass
class SolverEntry:
    """A solver to run, with its label in the results (its name unless given)."""

    solver: Solver
    label: str
    operators: tuple[str, ...] = ()  # operator labels it runs on; empty = all

    @property
    def name(self) -> str:
        return self.solver.name

    def runs_on(self, operator_label: str) -> bool:
        return not self.operators or operator_label in self.operators


@dataclass
class RunSpec:
    """Everything that determines a run's results (device and batch size do not, by design)."""

    solvers: list[SolverEntry]
    operators: list[Operator]
    model: str = DEFAULT_MODEL
    images: str | None = None  # None: the model's default image set
    num_images: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    reference: list[dict[str, Any]] = field(default_factory=list)  # published numbers to print beside ours
    precision: str = "fp32"  # the score network's: fp32, or bf16 autocast (solver arithmetic stays float32)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # always these, then extras

    def config(self) -> dict[str, Any]:
        """A JSON-able description; equal configs give equal rows."""
        return {
            "model": self.model,
            "images": self.images,
            "num_images": self.num_images,
            "seeds": list(self.seeds),
            "solvers": [{"name": s.name, "label": s.label, "params": s.solver.hyperparameters(),
                         **({"operators": list(s.operators)} if s.operators else {})} for s in self.solvers],
            "operators": [{"name": o.name, "label": o.label, "params": o.params} for o in self.operators],
            **({"reference": self.reference} if self.reference else {}),
            **({"precision": self.precision} if self.precision != "fp32" else {}),  # bf16 changes results
            **({"metrics": list(self.metrics)} if list(self.metrics) != list(DEFAULT_METRICS) else {}),
        }

    def default_out(self) -> Path:
        """runs/<solvers>_<operators>_<hash>: the same command resumes into the same folder."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:8]
        solvers = "-".join(s.label for s in self.solvers)
        operators = "-".join(o.label for o in self.operators)
        return Path("runs") / f"{solvers}_{operators}_{digest}"


def split_params(assignments: list[str], solver_names: list[str], operator_names: list[str]
                 ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Route `[target.]name=value` strings to solvers and operators.

    `target` is a solver or operator name (or alias); without a target the parameter goes to every
    selected solver and operator that has it, and it is an error if none has.
    """
    per_solver: dict[str, dict[str, str]] = {s: {} for s in solver_names}
    per_operator: dict[str, dict[str, str]] = {o: {} for o in operator_names}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {text!r}: expected NAME=VALUE or TARGET.NAME=VALUE")
        target, dot, name = key.rpartition(".")
        if dot:
            solver = SOLVERS.canonical(target) if target in SOLVERS else None
            operator = OPERATORS.canonical(target) if target in OPERATORS else None
            if solver in per_solver:
                per_solver[solver][name] = value
            elif operator in per_operator:
                per_operator[operator][name] = value
            else:
                chosen = ", ".join(solver_names + operator_names)
                raise UsageError(f"--param {text!r}: {target!r} is not a selected solver or operator ({chosen})")
            continue
        hits = 0
        for s in solver_names:
            if name in {p.name for p in SOLVERS.get(s).params()}:
                per_solver[s][name] = value
                hits += 1
        for o in operator_names:
            if name in {p.name for p in OPERATORS.get(o).params}:
                per_operator[o][name] = value
                hits += 1
        if not hits:
            raise UsageError(f"--param {text!r}: no selected solver or operator has a parameter {name!r} (see `bench list`)")
    return per_solver, per_operator


def build_spec(solvers: list[str], operators: list[str], params: list[str], **options: Any) -> RunSpec:
    """A RunSpec from names and `--param` strings (the CLI's path)."""
    if not solvers:
        raise UsageError("no solver given: use --solver NAME (see `bench list`)")
    if not operators:
        raise UsageError("no operator given: use --op NAME (see `bench list`)")
    solver_names = _unique([SOLVERS.canonical(s) for s in solvers], "--solver")
    operator_names = _unique([OPERATORS.canonical(o) for o in operators], "--op")
    per_solver, per_operator = split_params(params, solver_names, operator_names)
    return RunSpec(
        solvers=[SolverEntry(SOLVERS.get(s).create(per_solver[s]), s) for s in solver_names],
        operators=[Operator.create(o, per_operator[o]) for o in operator_names],
        **{k: v for k, v in options.items() if v is not None},
    )


def apply_params(spec: RunSpec, params: list[str]) -> RunSpec:
    """Override a suite's values with `--param [TARGET.]NAME=VALUE`; TARGET is a label or a name."""
    for text in params:
        key, sep, value = text.partition("=")
        target, _, name = key.rpartition(".")
        if not sep or not name:
            raise UsageError(f"--param {text!r}: expected NAME=VALUE or TARGET.NAME=VALUE")
        hits = 0
        for entry in spec.solvers:
            if (not target or target in (entry.label, entry.name)) and name in {p.name for p in entry.solver.params()}:
                entry.solver = type(entry.solver).create({**entry.solver.hyperparameters(), name: value})
                hits += 1
        for i, op in enumerate(spec.operators):
            if (not target or target in (op.label, op.name)) and name in {p.name for p in OPERATORS.get(op.name).params}:
                spec.operators[i] = Operator.create(op.name, {**op.params, name: value}, op.label)
                hits += 1
        if not hits:
            raise UsageError(f"--param {text!r}: no solver or operator of the suite has a parameter {name!r}"
                             + (f" under {target!r}" if target else ""))
    return spec


def load_suite(path: str | Path) -> RunSpec:
    """A RunSpec from a TOML suite: top-level model/images/num_images/seeds, [[solver]] and [[operator]] tables.

    Each table has `name`, an optional `label` (its name in the results) and its parameters as keys; a
    solver may list `operators = [labels]` to run on those only. [[reference]] tables hold published
    numbers (solver, operator, metric, value, source, verified) that `bench table` prints beside ours.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: invalid TOML ({exc})") from None
    allowed = {"model", "images", "num_images", "seeds", "solver", "operator", "title", "notes", "reference", "precision",
               "metrics"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"--config {path}: unknown key {unknown[0]!r}; valid: {', '.join(sorted(allowed))}")
    operators = []
    for table in data.get("operator", []):
        table = dict(table)
        name = _required(table, "name", path, "[[operator]]")
        label = table.pop("label", None)
        operators.append(Operator.create(name, table, None if label is None else str(label)))
    labels = _unique([o.label for o in operators], f"--config {path}: operator label")
    solvers = []
    for table in data.get("solver", []):
        table = dict(table)
        name = SOLVERS.canonical(_required(table, "name", path, "[[solver]]"))
        label = str(table.pop("label", name))
        only = tuple(str(o) for o in table.pop("operators", ()))
        unknown = [o for o in only if o not in labels]
        if unknown:
            raise UsageError(f"--config {path}: solver {label} lists operator {unknown[0]!r}; operators are {', '.join(labels)}")
        solvers.append(SolverEntry(SOLVERS.get(name).create(table), label, only))
    if not solvers or not operators:
        raise UsageError(f"--config {path}: needs at least one [[solver]] and one [[operator]] table")
    _unique([s.label for s in solvers], f"--config {path}: solver label")
    seeds = data.get("seeds", [0])
    return RunSpec(solvers=solvers, operators=operators, model=data.get("model", DEFAULT_MODEL),
                   images=data.get("images"), num_images=data.get("num_images"),
                   seeds=[int(s) for s in (seeds if isinstance(seeds, list) else [seeds])],
                   reference=[dict(r) for r in data.get("reference", [])], precision=str(data.get("precision", "fp32")),
                   metrics=metric_names(data.get("metrics", list(DEFAULT_METRICS)), f"--config {path}: metrics"))


def metric_names(names: Any, where: str) -> list[str]:
    """The run's metrics: PSNR, SSIM and LPIPS always (every row has them), then the extra ones named in
    `names`; an unknown name is a one-line UsageError that says `where` and what is valid."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [str(n) for n in names if n not in METRICS]
    if unknown:
        raise UsageError(f"{where}: unknown metric {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    return list(dict.fromkeys([*DEFAULT_METRICS, *(str(n) for n in names)]))


def _required(table: dict, key: str, path: Path, where: str) -> str:
    if key not in table:
        raise UsageError(f"--config {path}: a {where} table has no {key!r}")
    return str(table.pop(key))


def _unique(names: list[str], where: str) -> list[str]:
    seen = set()
    for n in names:
        if n in seen:
            raise UsageError(f"{where}: {n!r} appears twice")
        seen.add(n)
    return names
