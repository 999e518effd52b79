"""Presets: a solver's published per-task settings, each value citing the file and line it comes from.

A solver class lists its presets in the class attribute `presets` ({preset name: Preset}); `paper` is the
setting of the authors' paper or official code. A Preset maps an operator's registry name (`inpaint-box`,
`inpaint-random`, `deblur-gauss`, `deblur-motion`, `sr`, `denoise`: the family, whatever the operator's label
in a suite) to values of the solver's fields, each a `Setting` with its source (a path and line in
`Preset.repository`) and a note where the value was converted to ipbench's conventions (images in [0, 1],
sigma_y in [0, 1] units, the solver's own parametrisation: docs/solvers.md).

A run applies a preset per (solver entry, operator) under everything the user set: field defaults < the
preset's value for the operator's family < a suite's table keys < its `per_operator` keys < `--param`
(benchmark/spec.py). A family the preset does not cover keeps the defaults, and run.json lists it under
`preset_missing`. A value whose meaning depends on another field (DPS's zeta is the code's `scale` only
under the residual rule) names that field in `assumes`; a run that sets the other field otherwise is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ipbench.errors import UsageError

PAPER = "paper"
NO_PRESET = "none"  # `--preset none`: no preset for any solver, whatever a suite says


@dataclass(frozen=True)
class Setting:
    """One field's value in a preset: the value in ipbench's units, where it comes from, how it was converted."""

    value: Any
    source: str  # "path:line" (or "path:line-line, path:line") inside the preset's repository
    note: str = ""  # a unit conversion, the task the source states it for, what it does not cover
    assumes: Mapping[str, Any] = field(default_factory=dict)  # other fields this value is meaningful with

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise ValueError("a preset Setting needs its source (path:line)")


@dataclass(frozen=True)
class Preset:
    """A named setting of one solver per operator family, from one repository at one commit."""

    repository: str  # "github.com/OWNER/NAME at COMMIT"
    operators: Mapping[str, Mapping[str, Setting]]  # operator registry name -> field -> Setting
    note: str = ""  # what the preset leaves out, or how its tasks map to ipbench's operators

    def settings(self, operator_name: str) -> Mapping[str, Setting] | None:
        """The settings for an operator family, or None if the preset has none for it."""
        return self.operators.get(operator_name)


def families(common: Mapping[str, Setting], per_family: Mapping[str, Mapping[str, Setting]]
             ) -> dict[str, dict[str, Setting]]:
    """{family: common settings overridden by the family's own}: most sources share a step count."""
    return {name: {**common, **own} for name, own in per_family.items()}


def preset_names(solver_classes: Iterable[type]) -> list[str]:
    """Every preset name some solver declares, `paper` first."""
    names = {PAPER}
    for cls in solver_classes:
        names.update(getattr(cls, "presets", {}))
    return sorted(names, key=lambda n: (n != PAPER, n))


def check_preset_name(name: Any, known: list[str], where: str) -> str | None:
    """`name` as a preset name (None for `none`), or a one-line UsageError saying which are valid."""
    if not isinstance(name, str) or (name != NO_PRESET and name not in known):
        raise UsageError(f"{where}: preset {name!r} is unknown; valid: {', '.join([*known, NO_PRESET])}")
    return None if name == NO_PRESET else name


def preset_settings(solver_class: type, preset: str | None, operator_name: str) -> Mapping[str, Setting] | None:
    """The settings `preset` gives `solver_class` on an operator family; None if none (or no preset)."""
    if preset is None:
        return None
    found = getattr(solver_class, "presets", {}).get(preset)
    return None if found is None else found.settings(operator_name)


FAMILIES = ("inpaint-box", "inpaint-random", "deblur-gauss", "deblur-motion", "sr", "denoise")  # the table's order


def markdown_table(solver_name: str, preset_name: str, preset: Preset) -> str:
    """docs/solvers.md's table of one preset: a row per field, a column per operator family (- where the preset
    has none) and the source (one for the row where every family shares it, else beside each value), then each
    note once with the field and the families it is for."""
    present = [f for f in FAMILIES if f in preset.operators] + [f for f in preset.operators if f not in FAMILIES]
    columns = [*FAMILIES, *(f for f in present if f not in FAMILIES)]
    fields = list(dict.fromkeys(name for f in present for name in preset.operators[f]))
    lines = [f"`{solver_name}` preset `{preset_name}` ({preset.repository}; {preset.note or 'see the solver file'}):",
             "", "| field | " + " | ".join(columns) + " | source |", "|---" * (len(columns) + 2) + "|"]
    notes: dict[str, list[str]] = {}
    for name in fields:
        found = {f: preset.operators[f][name] for f in present if name in preset.operators[f]}
        shared = len({(repr(s.value), s.source) for s in found.values()}) == 1
        cells = ["-" if f not in found else repr(found[f].value) if shared else f"{found[f].value!r} ({found[f].source})"
                 for f in columns]
        source = next(iter(found.values())).source if shared else "beside each value"
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {source} |")
        for family, setting in found.items():
            if setting.note:
                notes.setdefault(f"`{name}`: {setting.note}", []).append(family)
    lines.append("")
    lines += [f"- {note} ({', '.join(where)})" for note, where in notes.items()]
    return "\n".join(lines)
