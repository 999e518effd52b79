"""Typed hyperparameters for solvers and operators, set from strings (`--param name=value`).

A solver's parameters are its dataclass fields; an operator's are its factory's keyword-only
arguments. Both are described by `Param`, and both are set through `coerce`, which checks the type and
says what is valid when a value is wrong.
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Union

from ipbench.errors import UsageError

_NONE_WORDS = {"none", "null", ""}


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its name, type, default and the choices a str parameter accepts."""

    name: str
    type: Any
    default: Any
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        kind = getattr(self.type, "__name__", str(self.type)).replace("typing.", "")
        choices = f" in {{{', '.join(self.choices)}}}" if self.choices else ""
        return f"{self.name}: {kind}{choices} = {self.default!r}"


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
    return out


def dataclass_params(cls: type) -> list[Param]:
    """Params of a dataclass: its init fields, with types resolved and choices from metadata."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(Param(f.name, hints[f.name], default, tuple(f.metadata.get("choices", ()))))
    return out


def function_params(fn: Callable, choices: dict[str, tuple[str, ...]] | None = None) -> list[Param]:
    """Params of a function: its keyword-only arguments (type-hinted, with defaults)."""
    hints = typing.get_type_hints(fn)
    choices = choices or {}
    return [Param(p.name, hints[p.name], p.default, choices.get(p.name, ()))
            for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def resolve(params: list[Param], values: dict[str, Any], where: str) -> dict[str, Any]:
    """Defaults overridden by `values`; unknown names are a UsageError listing the valid ones."""
    known = {p.name: p for p in params}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{where} has no parameter {unknown[0]!r}; valid: {', '.join(known) or '(none)'}")
    return {name: coerce(p, values[name], where) if name in values else p.default for name, p in known.items()}
