"""The search space of a solver: the fields it declares tunable (`params.Tune`), changed by `--space`.

`--space [SOLVER.]FIELD=LOW:HIGH[:log]` sets a number field's interval (narrower or wider than the declared
one, or a field the solver does not declare); `--space [SOLVER.]FIELD=A,B,...` the values of a field with
choices (or a bool). Both bounds must be valid values of the field (its type and range); a log scale needs
LOW > 0. A field set by `--param` (or by the suite) is fixed, not tuned. Step counts are not declared
tunable anywhere: they set what a trial costs, and a search that may raise them compares settings at
different costs; `--space` still allows it, with a note.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ipbench.errors import UsageError
from ipbench.params import Param, _allows_none, coerce

KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Dimension:
    """One tuned field: a float or int in [low, high] (log scale if `log`), or one of `choices`."""

    field: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    source: str = "declared"  # or the --space text that set it

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.field} in {{{', '.join(map(str, self.choices))}}}"
        scale = " log" if self.log else ""
        return f"{self.field} in [{self.low:g}, {self.high:g}]{scale}{' (int)' if self.kind == 'int' else ''}"

    def as_json(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    def distribution(self) -> Any:
        """The optuna distribution (imported here: only a tune that runs needs optuna)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class SpaceOption:
    """One `--space [TARGET.]FIELD=VALUES` as written."""

    target: str
    field: str
    values: str
    text: str

    @classmethod
    def parse(cls, text: str) -> SpaceOption:
        key, sep, values = text.partition("=")
        target, _, field = key.strip().rpartition(".")
        if not sep or not field or not values.strip():
            raise UsageError(f"--space {text!r}: expected FIELD=LOW:HIGH[:log], FIELD=A,B,... or "
                             "SOLVER.FIELD=... (e.g. dps.zeta=0.05:5:log)")
        return cls(target.strip(), field.strip(), values.strip(), text)


def _number_kind(p: Param) -> str | None:
    """'int' or 'float' for a number field (`T | None` too), None otherwise (bool is not a number here)."""
    _, inner = _allows_none(p.type)
    return {int: "int", float: "float"}.get(inner)


def _is_step_count(p: Param) -> bool:
    return p.range is not None and p.range.steps


def declared(params: Sequence[Param], where: str) -> dict[str, Dimension]:
    """The dimensions a solver's fields declare (`tune=Tune(...)`), checked like `--space` values."""
    out = {}
    for p in params:
        if p.tune is None:
            continue
        if p.tune.low is None or p.tune.high is None:
            if not p.choices:
                raise UsageError(f"{where}.{p.name}: declares Tune() without bounds but has no choices")
            out[p.name] = Dimension(p.name, "categorical", choices=tuple(p.choices))
        else:
            out[p.name] = _interval(p, p.tune.low, p.tune.high, p.tune.log, f"{where}.{p.name} (declared)", "declared")
    return out


def _interval(p: Param, low: Any, high: Any, log: bool, where: str, source: str) -> Dimension:
    kind = _number_kind(p)
    if kind is None:
        raise UsageError(f"{where}: {p.name} is not a number field; give its choices as {p.name}=A,B")
    low_value, high_value = (_bound(p, v, where) for v in (low, high))
    if not low_value < high_value:
        raise UsageError(f"{where}: LOW {low_value:g} must be below HIGH {high_value:g}")
    if log and low_value <= 0:
        raise UsageError(f"{where}: a log scale needs LOW > 0 (got {low_value:g}); use a positive LOW or drop :log")
    return Dimension(p.name, kind, low_value, high_value, log, source=source)


def _bound(p: Param, value: Any, where: str) -> float:
    """A bound as the field's type, checked against its range (what coerce checks for a set value)."""
    try:
        out = coerce(p, value, "solver")
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if out is None or isinstance(out, bool) or not math.isfinite(float(out)):
        raise UsageError(f"{where}: {value!r} is not a bound of {p.name}")
    return out


def from_option(p: Param, option: SpaceOption) -> Dimension:
    """The dimension one `--space` sets for field `p`."""
    where = f"--space {option.text!r}"
    values = option.values
    if ":" in values:
        parts = [v.strip() for v in values.split(":")]
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "linear")):
            raise UsageError(f"{where}: expected LOW:HIGH, LOW:HIGH:log or LOW:HIGH:linear")
        return _interval(p, parts[0], parts[1], len(parts) == 3 and parts[2] == "log", where, option.text)
    if _number_kind(p) is not None:
        raise UsageError(f"{where}: {p.name} is a number: give LOW:HIGH[:log] (e.g. {p.name}=0.1:10:log)")
    _, inner = _allows_none(p.type)
    if not p.choices and inner is not bool:
        raise UsageError(f"{where}: {p.name} has no choices to search; only number fields, fields with choices "
                         "and bools can be tuned")
    choices: list[Any] = []
    for text in values.split(","):
        try:
            value = coerce(p, text.strip(), "solver")
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if value not in choices:
            choices.append(value)
    if len(choices) < 2:
        raise UsageError(f"{where}: give at least two distinct values to choose from (to fix one, use --param)")
    return Dimension(p.name, "categorical", choices=tuple(choices), source=option.text)


def solver_space(params: Sequence[Param], label: str, options: Sequence[SpaceOption], fixed: set[str],
                 where: str) -> tuple[dict[str, Dimension], list[str]]:
    """A solver entry's dimensions (declared, then its `--space` options; fields in `fixed` left out) and the
    notes to print (a fixed field that was declared, a step count being tuned)."""
    by_name = {p.name: p for p in params}
    space = {name: dim for name, dim in declared(params, where).items()}
    notes = []
    for option in options:
        if option.field not in by_name:
            raise UsageError(f"--space {option.text!r}: {label} has no field {option.field!r}; fields: "
                             f"{', '.join(by_name) or '(none)'}")
        if option.field in fixed:
            raise UsageError(f"--space {option.text!r}: {label}.{option.field} is set by --param or the suite; "
                             "a set field is not tuned: drop one of the two")
        space[option.field] = from_option(by_name[option.field], option)
        if _is_step_count(by_name[option.field]):
            notes.append(f"{label}.{option.field} is a step count: it sets what a trial costs, so its trials are "
                         "compared at different costs")
    for name in sorted(set(space) & fixed):
        if space[name].source == "declared":
            notes.append(f"{label}.{name}: set by --param or the suite, so not tuned")
            del space[name]
    return space, notes


def options_by_entry(options: Sequence[SpaceOption], entries: Sequence[tuple[str, str, set[str]]]
                     ) -> list[list[SpaceOption]]:
    """For each solver entry (label, registered name, field names), the `--space` options that apply to it:
    those whose target is its label, name or an alias of the name, and untargeted ones for a field it has. An
    option that applies to no entry is a UsageError."""
    from ipbench.solvers import SOLVERS

    def names(target: str, label: str, name: str) -> bool:
        return target in (label, name) or (target in SOLVERS and SOLVERS.canonical(target) == name)

    out: list[list[SpaceOption]] = [[] for _ in entries]
    for option in options:
        hits = [i for i, (label, name, fields) in enumerate(entries)
                if (names(option.target, label, name) if option.target else option.field in fields)]
        if not hits:
            chosen = ", ".join(label for label, _, _ in entries)
            what = (f"{option.target!r} is not a selected solver ({chosen})" if option.target else
                    f"no selected solver ({chosen}) has a field {option.field!r}")
            raise UsageError(f"--space {option.text!r}: {what}")
        for i in hits:
            out[i].append(option)
    return out
