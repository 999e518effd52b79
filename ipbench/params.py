"""Typed hyperparameters for solvers and operators, set from strings (`--param name=value`).

A solver's parameters are its dataclass fields; an operator's are its factory's keyword-only
arguments. Both are described by `Param`, and both are set through `coerce`, which checks the type, the
valid range (`Range`, declared where the parameter is defined) and the choices, and says what is valid
when a value is wrong. Floats must be finite and within float32's range (runs compute in float32: 1e39
would be inf there). A range may also bound a diffusion time by the model's T, which only a run knows,
and a step count by T (one step per diffusion time at most: a grid of more would be cut to T without a
word): `check_times` applies those parts once the model is loaded.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Union

from ipbench.errors import UsageError

_NONE_WORDS = {"none", "null", ""}
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max, without importing torch here
FLOAT32_TINY = 1.1754943508222875e-38  # its smallest normal number


@dataclass(frozen=True)
class Range:
    """Valid values of a number: bounds (inclusive unless `*_open`); `time`: a diffusion time of the
    model, 0 <= t < T; `steps`: a count of steps on the model's diffusion times, 1 <= n <= T (both
    checked against T by `check_times`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    time: bool = False
    steps: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.time:
            return "a diffusion time in 0..T-1"
        if self.steps:
            return "a step count in 1..T"
        low = "" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        if not high:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if not low:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {low}, {high}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1)
TIME = Range(0, time=True)
STEPS = Range(1, steps=True)


@dataclass(frozen=True)
class Tune:
    """Where `bench tune` searches a field unless told otherwise (`--space`): a number in [low, high], on a
    log scale when `log` (step sizes and weights, whose useful values span decades); a field with choices
    declared `Tune()` searches its choices. The bounds must be valid values of the field."""

    low: float | None = None
    high: float | None = None
    log: bool = False

    def describe(self) -> str:
        if self.low is None or self.high is None:
            return "tuned over its choices"
        return f"tuned in [{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


def param(default: Any, *, range: Range | None = None, choices: tuple[str, ...] = (), tune: Tune | None = None) -> Any:
    """A solver field with its valid range or choices, and where `bench tune` searches it (`tune`):
    `zeta: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.01, 10, log=True))`."""
    metadata = {**({"range": range} if range else {}), **({"choices": choices} if choices else {}),
                **({"tune": tune} if tune else {})}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its name, type, default, the choices a str parameter accepts, its valid range."""

    name: str
    type: Any
    default: Any
    choices: tuple[str, ...] = ()
    range: Range | None = None
    tune: Tune | None = None  # bench tune's default search space for this field; None: not tuned by default

    def describe(self) -> str:
        kind = getattr(self.type, "__name__", str(self.type)).replace("typing.", "")
        choices = f" in {{{', '.join(self.choices)}}}" if self.choices else ""
        valid = f"  ({self.range.describe()})" if self.range else ""
        tuned = f"  [{self.tune.describe()}]" if self.tune else ""
        return f"{self.name}: {kind}{choices} = {self.default!r}{valid}{tuned}"


def _allows_none(tp: Any) -> tuple[bool, Any]:
    """(optional?, inner type) for `T | None` / Optional[T]."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return len(args) < len(typing.get_args(tp)), args[0]
    return False, tp


def coerce(param: Param, value: Any, where: str) -> Any:
    """`value` (a string from the CLI, or a TOML value) as the parameter's type, or a UsageError."""
    optional, tp = _allows_none(param.type)
    if isinstance(value, str) and optional and value.strip().lower() in _NONE_WORDS:
        return None
    if value is None and optional:
        return None
    try:
        if tp is bool:
            if isinstance(value, bool):
                out: Any = value
            elif str(value).lower() in {"true", "1", "yes", "on"}:
                out = True
            elif str(value).lower() in {"false", "0", "no", "off"}:
                out = False
            else:
                raise ValueError
        elif tp in (int, float) and isinstance(value, bool):
            raise ValueError  # True is an int to Python, not a size or a weight to a user
        elif tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out = int(str(value)) if not isinstance(value, (int, float)) else int(value)
        elif tp is float:
            out = float(value)
        elif tp is str:
            out = str(value)
        else:
            out = tp(value)
    except (TypeError, ValueError):
        kind = getattr(tp, "__name__", str(tp))
        raise UsageError(f"{where}.{param.name}={value!r}: expected {kind}{' or none' if optional else ''}") from None
    if param.choices and out not in param.choices:
        raise UsageError(f"{where}.{param.name}={out!r}: valid values are {', '.join(param.choices)}")
    if isinstance(out, float) and not math.isfinite(out):
        raise UsageError(f"{where}.{param.name}={out!r}: must be a finite number")
    if isinstance(out, float) and not (out == 0 or FLOAT32_TINY <= abs(out) <= FLOAT32_MAX):
        # images and networks compute in float32: 1e39 would become inf there, 1e-39 zero (or lose precision)
        raise UsageError(f"{where}.{param.name}={out!r}: outside float32's range; valid: 0 or a magnitude in "
                         f"[{FLOAT32_TINY:.4g}, {FLOAT32_MAX:.4g}]")
    if param.range is not None and isinstance(out, (int, float)) and not param.range.contains(out):
        raise UsageError(f"{where}.{param.name}={out!r}: must be {param.range.describe()}")
    return out


def check_times(params: list[Param], values: dict[str, Any], num_timesteps: int, where: str) -> None:
    """Diffusion-time parameters (Range(time=True)) of `values` below the model's T, step counts
    (Range(steps=True)) at most T; a UsageError if not."""
    for p in params:
        value = values.get(p.name)
        if p.range is None or value is None:
            continue
        if p.range.time and not 0 <= value < num_timesteps:
            raise UsageError(f"{where}.{p.name}={value!r}: must be a diffusion time of the model, "
                             f"0..{num_timesteps - 1}")
        if p.range.steps:
            check_count(where, p.name, value, num_timesteps, f"the model has {num_timesteps} diffusion times")


def check_count(where: str, name: str, value: int, most: int, why: str) -> None:
    """A count that a grid would silently cut to `most`: refused above it, with the reason."""
    if not 1 <= value <= most:
        raise UsageError(f"{where}.{name}={value!r}: must be in 1..{most} ({why})")


def dataclass_params(cls: type) -> list[Param]:
    """Params of a dataclass: its init fields, with types resolved and choices, range and tune from metadata."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(Param(f.name, hints[f.name], default, tuple(f.metadata.get("choices", ())), f.metadata.get("range"),
                         f.metadata.get("tune")))
    return out


def function_params(fn: Callable, choices: dict[str, tuple[str, ...]] | None = None,
                    ranges: dict[str, Range] | None = None) -> list[Param]:
    """Params of a function: its keyword-only arguments (type-hinted, with defaults)."""
    hints = typing.get_type_hints(fn)
    choices, ranges = choices or {}, ranges or {}
    return [Param(p.name, hints[p.name], p.default, choices.get(p.name, ()), ranges.get(p.name))
            for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def resolve(params: list[Param], values: dict[str, Any], where: str) -> dict[str, Any]:
    """Defaults overridden by `values`; unknown names are a UsageError listing the valid ones."""
    known = {p.name: p for p in params}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{where} has no parameter {unknown[0]!r}; valid: {', '.join(known) or '(none)'}")
    return {name: coerce(p, values[name], where) if name in values else p.default for name, p in known.items()}
