"""What to run: solvers x operators x images x seeds on one model, from the CLI or a TOML suite."""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ipbench.benchmark.suite_schema import check_suite
from ipbench.errors import UsageError, first_line
from ipbench.operators import OPERATORS, Operator
from ipbench.paths import expand_user
from ipbench.results.metric_registry import DEFAULT_METRICS, metric_names
from ipbench.run_paths import MAX_NAME_BYTES, check_run_names, file_name
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
    precision: str | None = None  # the network's, fp32 or bf16 (autocast); None: fp32, or bf16 under --fast on CUDA
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # always these, then extras
    seeding: str = "independent"  # of solver draws (seeding.py): per solver, or common to all solvers

    def config(self) -> dict[str, Any]:
        """A JSON-able description; equal configs give equal rows."""
        return {
            "model": self.model,
            "images": self.images,
            "num_images": self.num_images,
            "seeds": list(self.seeds),
            "solvers": [{"name": s.name, "label": s.label, "params": s.solver.hyperparameters(),
                         "code": code_fingerprint(type(s.solver)),
                         **({"operators": list(s.operators)} if s.operators else {})} for s in self.solvers],
            "operators": [{"name": o.name, "label": o.label, "params": o.params,
                           "code": code_fingerprint(OPERATORS.get(o.name).make)} for o in self.operators],
            **({"reference": self.reference} if self.reference else {}),
            **({"precision": self.precision} if self.precision not in (None, "fp32") else {}),  # bf16 changes results
            **({"metrics": list(self.metrics)} if list(self.metrics) != list(DEFAULT_METRICS) else {}),
            **({"seeding": self.seeding} if self.seeding != "independent" else {}),  # common draws change results
        }

    def default_out(self) -> Path:
        """runs/<solvers>_<operators>_<hash>: the same command resumes into the same folder. The labels are
        file names (run_paths.py), cut to keep the folder's name short; the hash keeps it unique."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:8]
        check_run_names([s.label for s in self.solvers], [o.label for o in self.operators])
        solvers = "-".join(file_name(s.label) for s in self.solvers)
        operators = "-".join(file_name(o.label) for o in self.operators)
        return Path("runs") / f"{solvers[:MAX_NAME_BYTES // 2]}_{operators[:MAX_NAME_BYTES // 2]}_{digest}"


def code_files(spec: RunSpec) -> dict[str, dict[str, Any]]:
    """For run.json: the file (and its fingerprint) that defines each solver and operator of `spec`, by label,
    and the helper modules beside it that the fingerprint covers (`helper_modules`), each with its own hash;
    a plugin's path shows here (the run's identity holds the fingerprints only, so that machines agree)."""
    def describe(obj: Any) -> dict[str, Any]:
        path = _source_file(obj)
        helpers = {} if path is None else {str(f.relative_to(Path(path).resolve().parent)): _file_hash(f)
                                             for f in helper_modules(Path(path))}
        return {"file": path, "sha256": code_fingerprint(obj), **({"helpers": helpers} if helpers else {})}

    return {**{f"solver {s.label}": describe(type(s.solver)) for s in spec.solvers},
            **{f"operator {o.label}": describe(OPERATORS.get(o.name).make) for o in spec.operators}}


def _source_file(obj: Any) -> str | None:
    """The file that defines `obj`, or None (code typed at a prompt, a builtin)."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    return path if path is not None and Path(path).is_file() else None


def helper_modules(path: Path) -> list[Path]:
    """The files of the loaded modules that were imported from `path`'s folder: every module in sys.modules
    whose top-level name is a .py file or a package in that folder (ipbench itself aside), as a plugin's
    `import helpers` / `from helpers.maths import f` finds them (plugins.py puts the folder on sys.path).

    Why loaded modules and not the folder's .py files: a helper's constant (`from helpers import TARGET`)
    and a package beside the plugin count, while an unrelated script in the same folder, or a virtual
    environment there, does not. A module imported only inside `solve` is not loaded yet when the run's
    identity is taken: import helpers at the top of the plugin. Built-in solvers live inside the ipbench
    package, so nothing is beside them and their fingerprints are their files' alone."""
    folder = path.resolve().parent
    found: set[Path] = set()
    tops: dict[str, Path | None] = {}  # top-level name -> where it would be found in `folder`, if there
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top == "ipbench":
            continue
        if top not in tops:
            tops[top] = next((c for c in (folder / f"{top}.py", folder / top) if c.exists()), None)
        where, file = tops[top], getattr(module, "__file__", None)
        if where is None or not isinstance(file, str):
            continue
        file_path = Path(file).resolve()
        if file_path != path.resolve() and (file_path == where.resolve() or where.resolve() in file_path.parents):
            found.add(file_path)
    return sorted(found)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def code_fingerprint(obj: Any) -> str | None:
    """sha256 (16 hex digits) of the file that defines `obj` (a solver class, an operator factory) and of
    the helper modules imported from beside it (`helper_modules`), so that editing a solver's, a plugin's
    or its helpers' code makes a new run instead of resuming on the old numbers; None where there is no
    source file. Without helpers it is the file's own hash."""
    path = _source_file(obj)
    if path is None:
        return None
    helpers = helper_modules(Path(path))
    if not helpers:
        return _file_hash(Path(path))
    digest = hashlib.sha256(Path(path).read_bytes())
    folder = Path(path).resolve().parent
    for helper in helpers:  # names too: moving code between helpers is a change
        digest.update(b"\0" + str(helper.relative_to(folder)).encode() + b"\0" + helper.read_bytes())
    return digest.hexdigest()[:16]


def without_code(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the code fingerprints: what is left to compare when only code may have changed."""
    strip = lambda tables: [{k: v for k, v in t.items() if k != "code"} for t in tables]  # noqa: E731
    return {**config, "solvers": strip(config.get("solvers", [])), "operators": strip(config.get("operators", []))}


def check_same_run(out: Path, previous: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse (one line) to add rows of `config` to the folder `out` whose run.json holds the config `previous`:
    a different run, or the same one after a solver's or operator's code changed. `bench run` checks this
    before resuming, and `bench submit` before submitting anything."""
    config = json.loads(json.dumps(config))  # as run.json holds it: lists, not tuples
    if previous == config:
        return
    if without_code(previous) == without_code(config):
        changed = [t["label"] for t in config["solvers"] + config["operators"]
                   if t not in previous["solvers"] + previous["operators"]]
        raise UsageError(f"--out {out}: the code of {', '.join(changed)} changed since these rows were "
                         "computed (a solver or plugin file, or a module beside a plugin, was edited); choose "
                         "another --out for new rows, or restore the file to add to the old ones")
    raise UsageError(f"--out {out}: the folder holds a different run (see its run.json); choose another --out")


@dataclass(frozen=True)
class ParamAssignment:
    """One `[TARGET.]NAME=VALUE` from --param: TARGET is a solver or operator label, name or alias (or none)."""

    target: str
    name: str
    value: str
    text: str  # as written, for error messages

    @classmethod
    def parse(cls, text: str) -> ParamAssignment:
        key, sep, value = text.partition("=")
        target, _, name = key.strip().rpartition(".")
        if not sep or not name:
            raise UsageError(f"--param {text!r}: expected NAME=VALUE or TARGET.NAME=VALUE")
        return cls(target, name, value, text)


def _is_target(target: str, label: str, name: str, registry: Any) -> bool:
    """Whether `target` names this entry: its label, its registered name, or an alias of that name."""
    return target in (label, name) or (target in registry and registry.canonical(target) == name)


def apply_params(solvers: list[SolverEntry], operators: list[Operator], params: list[str]
                 ) -> tuple[list[SolverEntry], list[Operator]]:
    """Solvers and operators with the `--param` assignments applied, checked by each one's parameter types.

    With a target, the value goes to the solvers and operators it names (an unknown parameter there is
    an error); without one, to every solver and operator that has the parameter, and it is an error if
    none has. The same grammar serves the CLI's --solver/--op selection and a TOML suite.
    """
    solver_values: list[dict[str, Any]] = [{} for _ in solvers]
    operator_values: list[dict[str, Any]] = [{} for _ in operators]
    for assignment in map(ParamAssignment.parse, params):
        target, name = assignment.target, assignment.name
        if target:
            hits = [values for entry, values in zip(solvers, solver_values)
                    if _is_target(target, entry.label, entry.name, SOLVERS)]
            hits += [values for operator, values in zip(operators, operator_values)
                     if _is_target(target, operator.label, operator.name, OPERATORS)]
            if not hits:
                chosen = ", ".join([s.label for s in solvers] + [o.label for o in operators])
                raise UsageError(f"--param {assignment.text!r}: {target!r} is not a selected solver or operator "
                                 f"({chosen})")
        else:
            hits = [values for entry, values in zip(solvers, solver_values)
                    if name in {p.name for p in entry.solver.params()}]
            hits += [values for operator, values in zip(operators, operator_values)
                     if name in {p.name for p in OPERATORS.get(operator.name).params}]
            if not hits:
                raise UsageError(f"--param {assignment.text!r}: no selected solver or operator has a parameter "
                                 f"{name!r} (see `bench list`)")
        for values in hits:
            values[name] = assignment.value
    return ([_solver_with(entry, values) for entry, values in zip(solvers, solver_values)],
            [_operator_with(operator, values) for operator, values in zip(operators, operator_values)])


def _solver_with(entry: SolverEntry, values: dict[str, Any]) -> SolverEntry:
    """`entry` with `values` over its solver's hyperparameters (checked by the solver's `create`)."""
    if not values:
        return entry
    solver = type(entry.solver).create({**entry.solver.hyperparameters(), **values})
    return dataclasses.replace(entry, solver=solver)


def _operator_with(operator: Operator, values: dict[str, Any]) -> Operator:
    """`operator` with `values` over its parameters (checked by `Operator.create`), its label kept."""
    return Operator.create(operator.name, {**operator.params, **values}, operator.label) if values else operator


def build_spec(solvers: list[str], operators: list[str], params: list[str] | None = None, **options: Any) -> RunSpec:
    """A RunSpec from solver and operator names, `--param` strings and RunSpec fields (None: the default)."""
    if not solvers:
        raise UsageError("no solver given: use --solver NAME (see `bench list`)")
    if not operators:
        raise UsageError("no operator given: use --op NAME (see `bench list`)")
    solver_names = _unique([SOLVERS.canonical(s) for s in solvers], "--solver")
    operator_names = _unique([OPERATORS.canonical(o) for o in operators], "--op")
    entries, ops = apply_params([SolverEntry(SOLVERS.get(s).create(), s) for s in solver_names],
                                [Operator.create(o) for o in operator_names], list(params or []))
    return RunSpec(solvers=entries, operators=ops, **{k: v for k, v in options.items() if v is not None})


def make_spec(config: str | Path | None, solvers: list[str], operators: list[str], params: list[str],
              **overrides: Any) -> RunSpec:
    """The CLI's one way to a RunSpec: a suite (`--config`) or --solver/--op names, then --param, then the
    options that override the suite's values (model, images, num_images, seeds, metrics, seeding; None: keep)."""
    if config is None:
        return build_spec(solvers, operators, params, **overrides)
    if solvers or operators:
        raise UsageError("--config sets the solvers and operators; drop --solver/--op (--param still applies)")
    suite = load_suite(config)
    entries, ops = apply_params(suite.solvers, suite.operators, params)
    return dataclasses.replace(suite, solvers=entries, operators=ops,
                               **{k: v for k, v in overrides.items() if v is not None})


def load_suite(path: str | Path) -> RunSpec:
    """A RunSpec from a TOML suite: top-level model/images/num_images/seeds, [[solver]] and [[operator]] tables.

    Each table has `name`, an optional `label` (its name in the results) and its parameters as keys; a
    solver may list `operators = [labels]` to run on those only. [[reference]] tables hold published
    numbers (solver, operator, metric, value, source, verified) that `bench table` prints beside ours.
    """
    path = expand_user(path, "--config")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it as a TOML file ({first_line(exc)})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: invalid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise UsageError(f"--config {path}: nested too deeply to parse (arrays or tables inside each other "
                         "hundreds of levels deep); a suite needs two levels") from None
    check_suite(data, path)
    operators = []
    for table in data.get("operator", []):
        table = dict(table)
        name = table.pop("name")
        label = table.pop("label", None)
        operators.append(_in_suite(path, Operator.create, name, table, label))
    labels = _unique([o.label for o in operators], f"--config {path}: operator label")
    solvers = []
    for table in data.get("solver", []):
        table = dict(table)
        name = _in_suite(path, SOLVERS.canonical, table.pop("name"))
        label = table.pop("label", name)
        only = tuple(table.pop("operators", ()))
        unknown = [o for o in only if o not in labels]
        if unknown:
            raise UsageError(f"--config {path}: solver {label} lists operator {unknown[0]!r}; operators are {', '.join(labels)}")
        solvers.append(SolverEntry(_in_suite(path, SOLVERS.get(name).create, table), label, only))
    if not solvers or not operators:
        raise UsageError(f"--config {path}: needs at least one [[solver]] and one [[operator]] table")
    _unique([s.label for s in solvers], f"--config {path}: solver label")
    _in_suite(path, check_run_names, [s.label for s in solvers], [o.label for o in operators])  # file names
    seeds = data.get("seeds", [0])
    return RunSpec(solvers=solvers, operators=operators, model=data.get("model", DEFAULT_MODEL),
                   images=data.get("images"), num_images=data.get("num_images"),
                   seeds=list(seeds) if isinstance(seeds, list) else [seeds],
                   reference=[dict(r) for r in data.get("reference", [])],
                   precision=data.get("precision"), seeding=data.get("seeding", "independent"),
                   metrics=metric_names(data.get("metrics", list(DEFAULT_METRICS)), f"--config {path}: metrics"))


def _in_suite(path: Path, build: Any, *args: Any) -> Any:
    """`build(*args)`, its UsageError prefixed with the suite's path, so the message names the file."""
    try:
        return build(*args)
    except UsageError as exc:
        raise UsageError(f"--config {path}: {exc}") from None


def _unique(names: list[str], where: str) -> list[str]:
    seen = set()
    for n in names:
        if n in seen:
            raise UsageError(f"{where}: {n!r} appears twice")
        seen.add(n)
    return names
