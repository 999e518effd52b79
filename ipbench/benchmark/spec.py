"""What to run: solvers x operators x images x seeds on one model, from the CLI or a TOML suite."""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ipbench.benchmark.condition import check_condition
from ipbench.benchmark.suite_schema import check_suite
from ipbench.errors import UsageError, first_line
from ipbench.operators import OPERATORS, Operator
from ipbench.paths import expand_user
from ipbench.results.metric_registry import DEFAULT_METRICS, metric_names
from ipbench.params import resolve
from ipbench.run_paths import MAX_NAME_BYTES, check_run_names, file_name
from ipbench.solvers import SOLVERS, Solver
from ipbench.solvers.presets import check_preset_name, preset_names, preset_settings

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_MODEL = "fashion32"


@dataclass
class SolverEntry:
    """A solver to run, with its label in the results (its name unless given), and what it runs with per operator.

    `solver` holds the values for every operator: field defaults < the suite table's keys < `--param`.
    `solver_for(operator)` is the instance that runs on one operator: field defaults < `preset`'s value for the
    operator's family (solvers/presets.py) < the table's keys (`explicit` names them) < `per_operator[label]`
    < `--param` (which `apply_params` writes into both `solver` and every per_operator table).
    `tuned` and `per_operator_tuned[label]` carry the provenance of tuned values into run.json, as given.
    """

    solver: Solver
    label: str
    operators: tuple[str, ...] = ()  # operator labels it runs on; empty = all
    preset: str | None = None
    per_operator: dict[str, dict[str, Any]] = field(default_factory=dict)  # operator label -> values there
    tuned: dict[str, Any] | None = None
    per_operator_tuned: dict[str, dict[str, Any]] = field(default_factory=dict)
    explicit: frozenset[str] = frozenset()  # fields set for every operator: they beat the preset
    _instances: dict[tuple[str, str], Solver] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.solver.name

    def runs_on(self, operator_label: str) -> bool:
        return not self.operators or operator_label in self.operators

    def preset_settings(self, operator: Operator) -> dict[str, Any] | None:
        """The values the entry's preset gives on `operator`'s family (None: no preset, or none for it)."""
        settings = preset_settings(type(self.solver), self.preset, operator.name)
        return None if settings is None else {name: setting.value for name, setting in settings.items()}

    def solver_for(self, operator: Operator) -> Solver:
        """The instance that runs on `operator` (`solver` itself where nothing differs), checked once."""
        key = (operator.label, operator.name)
        if key not in self._instances:
            self._instances[key] = self._build(operator)
        return self._instances[key]

    def _build(self, operator: Operator) -> Solver:
        preset = {k: v for k, v in (self.preset_settings(operator) or {}).items() if k not in self.explicit}
        own = self.per_operator.get(operator.label, {})
        if not preset and not own:
            return self.solver
        where = f"solver {self.label} on operator {operator.label}"
        try:
            solver = type(self.solver).create({**self.solver.hyperparameters(), **preset, **own})
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        settings = preset_settings(type(self.solver), self.preset, operator.name) or {}
        for name in preset.keys() - own.keys():  # a preset value in force: the fields it assumes must agree
            for other, needed in settings[name].assumes.items():
                if getattr(solver, other) != needed:
                    raise UsageError(f"{where}: preset {self.preset} sets {name} = {preset[name]!r}, which assumes "
                                     f"{other} = {needed!r}, but {other} = {getattr(solver, other)!r} here; drop the "
                                     f"preset or the {other} setting, or set {name} too")
        return solver

    def config(self, operators: Sequence[Operator]) -> dict[str, Any]:
        """run.json's table of this entry: name, label, the all-operator params and code as before, and only
        where set: `preset` (with `preset_missing`: the operators it has no setting for), `tuned`, and
        `per_operator` {label: {"params": values that differ from `params`, "tuned": ...}}."""
        params = self.solver.hyperparameters()
        table: dict[str, Any] = {"name": self.name, "label": self.label, "params": params,
                                 "code": code_fingerprint(type(self.solver)),
                                 **({"operators": list(self.operators)} if self.operators else {})}
        ran_on = [o for o in operators if self.runs_on(o.label)]
        if self.preset is not None:
            table["preset"] = self.preset
            missing = [o.label for o in ran_on if self.preset_settings(o) is None]
            if missing:
                table["preset_missing"] = missing
        if self.tuned is not None:
            table["tuned"] = self.tuned
        per_operator = {}
        for operator in ran_on:
            used = self.solver_for(operator).hyperparameters()
            differ = {k: v for k, v in used.items() if params.get(k) != v}
            tuned = self.per_operator_tuned.get(operator.label)
            if differ or tuned is not None:
                per_operator[operator.label] = {"params": differ, **({"tuned": tuned} if tuned is not None else {})}
        if per_operator:
            table["per_operator"] = per_operator
        return table


MAX_SAMPLES = 64  # draws per measurement; more is a typo for images or seeds more often than a need


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
    condition: str | None = None  # a class-conditional prior's class (benchmark/condition.py); None: no class
    guidance: float | None = None  # its classifier-free guidance scale; None: 1 (the conditional model)
    samples: int = 1  # posterior draws per (image, operator, seed), the measurement held fixed (--samples)

    def samples_of(self, entry: SolverEntry) -> int:
        """How many draws `entry` makes per measurement: `samples`, or 1 for a deterministic solver."""
        return 1 if entry.solver.deterministic() else self.samples

    def config(self) -> dict[str, Any]:
        """A JSON-able description; equal configs give equal rows."""
        return {
            "model": self.model,
            "images": self.images,
            "num_images": self.num_images,
            "seeds": list(self.seeds),
            "solvers": [{**s.config(self.operators), **({"samples": self.samples_of(s)} if self.samples > 1 else {})}
                        for s in self.solvers],
            "operators": [{"name": o.name, "label": o.label, "params": o.params,
                           "code": code_fingerprint(OPERATORS.get(o.name).make)} for o in self.operators],
            **({"reference": self.reference} if self.reference else {}),
            **({"precision": self.precision} if self.precision not in (None, "fp32") else {}),  # bf16 changes results
            **({"metrics": list(self.metrics)} if list(self.metrics) != list(DEFAULT_METRICS) else {}),
            **({"seeding": self.seeding} if self.seeding != "independent" else {}),  # common draws change results
            **({"condition": self.condition, "guidance": self.guidance_scale} if self.condition is not None else {}),
            **({"samples": self.samples} if self.samples > 1 else {}),  # more rows, the first ones unchanged
        }

    @property
    def guidance_scale(self) -> float:
        """The guidance the run uses: as set, or 1 (the conditional model itself)."""
        return 1.0 if self.guidance is None else float(self.guidance)

    def pairs(self) -> Iterator[tuple[SolverEntry, Operator]]:
        """Every (solver entry, operator) the run computes."""
        return ((e, o) for e in self.solvers for o in self.operators if e.runs_on(o.label))

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
    """`entry` with `values` over its solver's hyperparameters (checked by the solver's `create`), on every
    operator: over its per_operator values and its preset too (`--param` is the user's last word)."""
    if not values:
        return entry
    solver = type(entry.solver).create({**entry.solver.hyperparameters(), **values})
    per_operator = {label: {**own, **values} for label, own in entry.per_operator.items()}
    return dataclasses.replace(entry, solver=solver, per_operator=per_operator,
                               explicit=entry.explicit | frozenset(values))


def _operator_with(operator: Operator, values: dict[str, Any]) -> Operator:
    """`operator` with `values` over its parameters (checked by `Operator.create`), its label kept."""
    return Operator.create(operator.name, {**operator.params, **values}, operator.label) if values else operator


def build_spec(solvers: list[str], operators: list[str], params: list[str] | None = None, preset: str | None = None,
               **options: Any) -> RunSpec:
    """A RunSpec from solver and operator names, `--param` strings, a `--preset` name for every solver and
    RunSpec fields (None: the default)."""
    if not solvers:
        raise UsageError("no solver given: use --solver NAME (see `bench list`)")
    if not operators:
        raise UsageError("no operator given: use --op NAME (see `bench list`)")
    solver_names = _unique([SOLVERS.canonical(s) for s in solvers], "--solver")
    operator_names = _unique([OPERATORS.canonical(o) for o in operators], "--op")
    entries = _with_preset([SolverEntry(SOLVERS.get(s).create(), s) for s in solver_names], preset)
    entries, ops = apply_params(entries, [Operator.create(o) for o in operator_names], list(params or []))
    return checked(RunSpec(solvers=entries, operators=ops, **{k: v for k, v in options.items() if v is not None}))


def make_spec(config: str | Path | None, solvers: list[str], operators: list[str], params: list[str],
              preset: str | None = None, **overrides: Any) -> RunSpec:
    """The CLI's one way to a RunSpec: a suite (`--config`) or --solver/--op names, then `--preset` (for every
    solver, over a suite's presets; `none` for none), then --param, then the options that override the suite's
    values (model, images, num_images, seeds, metrics, seeding, condition, guidance; None: keep)."""
    if config is None:
        return build_spec(solvers, operators, params, preset, **overrides)
    if solvers or operators:
        raise UsageError("--config sets the solvers and operators; drop --solver/--op (--param still applies)")
    suite = load_suite(config)
    entries, ops = apply_params(_with_preset(suite.solvers, preset), suite.operators, params)
    return checked(dataclasses.replace(suite, solvers=entries, operators=ops,
                                       **{k: v for k, v in overrides.items() if v is not None}))


def _with_preset(entries: list[SolverEntry], preset: str | None) -> list[SolverEntry]:
    """`entries` with `--preset NAME` as every one's preset (`none`: no preset); None: as they are."""
    if preset is None:
        return entries
    name = check_preset_name(preset, preset_names(SOLVERS.get(n) for n in SOLVERS), "--preset")
    return [dataclasses.replace(entry, preset=name) for entry in entries]


def checked(spec: RunSpec) -> RunSpec:
    """`spec`, after building every (solver entry, operator) instance it runs: a bad combination of preset,
    per-operator values and `--param` is a one-line error before anything is loaded; so is a guidance without
    a condition."""
    check_condition(spec.condition, spec.guidance)
    if not isinstance(spec.samples, int) or isinstance(spec.samples, bool) or not 1 <= spec.samples <= MAX_SAMPLES:
        raise UsageError(f"samples {spec.samples!r}: must be an integer in 1..{MAX_SAMPLES} (posterior draws per "
                         "measurement)")
    for entry, operator in spec.pairs():
        entry.solver_for(operator)
    return spec


def load_suite(path: str | Path) -> RunSpec:
    """A RunSpec from a TOML suite: top-level model/images/num_images/seeds, [[solver]] and [[operator]] tables.

    Each table has `name`, an optional `label` (its name in the results) and its parameters as keys; a
    solver may list `operators = [labels]` to run on those only, name a `preset` (`paper`: the solver's
    published per-task settings; a top-level `preset` is the default of every solver table), carry `tuned`
    provenance, and set values for one operator in `[solver.per_operator."LABEL"]` tables (each with its own
    optional `tuned`); the precedence is SolverEntry's. [[reference]] tables hold published numbers (solver,
    operator, metric, value, source, verified) that `bench table` prints beside ours.
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
    _unique([o.label for o in operators], f"--config {path}: operator label")
    known_presets = preset_names(SOLVERS.get(n) for n in SOLVERS)
    suite_preset = check_preset_name(data["preset"], known_presets, f"--config {path}") if "preset" in data else None
    solvers = [_suite_solver(path, index, dict(table), operators, suite_preset, known_presets)
               for index, table in enumerate(data.get("solver", []), start=1)]
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
                   condition=data.get("condition"), guidance=data.get("guidance"), samples=data.get("samples", 1),
                   metrics=metric_names(data.get("metrics", list(DEFAULT_METRICS)), f"--config {path}: metrics"))


def _suite_solver(path: Path, index: int, table: dict[str, Any], operators: list[Operator], suite_preset: str | None,
                  known_presets: list[str]) -> SolverEntry:
    """One [[solver]] table as a SolverEntry: its fields for every operator, `operators`, `preset` (the suite's
    unless its own), `tuned` and `per_operator` tables, each checked here so that an error names the file, the
    table and the key; then every instance it runs checked (a per-operator value against the preset's)."""
    name = _in_suite(path, SOLVERS.canonical, table.pop("name"))
    label = table.pop("label", name)
    at = f"--config {path}: [[solver]] number {index} ({label})"
    labels = [o.label for o in operators]
    only = tuple(table.pop("operators", ()))
    unknown = [o for o in only if o not in labels]
    if unknown:
        raise UsageError(f"--config {path}: solver {label} lists operator {unknown[0]!r}; operators are {', '.join(labels)}")
    preset = check_preset_name(table.pop("preset"), known_presets, at) if "preset" in table else suite_preset
    tuned = table.pop("tuned", None)
    per_operator_tables = table.pop("per_operator", {})
    cls = SOLVERS.get(name)
    solver = _in_suite(path, cls.create, table)
    if tuned is not None:
        _check_tuned_fields(tuned, set(table), f"{at}: tuned")
    per_operator, per_operator_tuned = {}, {}
    for operator_label, own in per_operator_tables.items():
        where = f'{at}: per_operator."{operator_label}"'
        if operator_label not in labels:
            raise UsageError(f"{where}: not an operator label of this suite; its labels: {', '.join(labels)}")
        if only and operator_label not in only:
            raise UsageError(f"{where}: the solver does not run on it (operators = {list(only)})")
        own = dict(own)
        own_tuned = own.pop("tuned", None)
        resolve(cls.params(), own, f'{at} per_operator."{operator_label}"')  # unknown fields, bad values
        if own_tuned is not None:
            _check_tuned_fields(own_tuned, set(own) | set(table), f"{where}.tuned")
            per_operator_tuned[operator_label] = own_tuned
        per_operator[operator_label] = own
    entry = SolverEntry(solver, label, only, preset, per_operator, tuned, per_operator_tuned, frozenset(table))
    for operator in operators:
        if entry.runs_on(operator.label):
            _in_suite(path, entry.solver_for, operator)
    return entry


def _check_tuned_fields(tuned: dict[str, Any], set_here: set[str], where: str) -> None:
    """A tuned table's `fields` must be values its table sets (or, per operator, the solver's table sets)."""
    missing = [f for f in tuned["fields"] if f not in set_here]
    if missing:
        raise UsageError(f"{where}.fields lists {missing[0]!r}, which this table does not set "
                         f"(it sets {', '.join(sorted(set_here)) or 'nothing'})")


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
