"""Reading the small JSON files a run folder holds beside its rows (run.json, submit.json, lock files, fid.json).

Another tool, an editor or a torn copy can leave such a file damaged: not UTF-8, not JSON, or JSON of the
wrong shape (a list where an object belongs, a string for a count, a pid too large for the system). Each
reader states the fields it relies on as a small schema (dotted key -> `Expect`) and gets either data that
has them or one `DamagedFile` line naming the file, the field and what it should hold, instead of a
traceback or a silently wrong number further on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ipbench.errors import UsageError

_MISSING = object()


class DamagedFile(UsageError):
    """A side file that exists but is not what ipbench writes; the message is one line naming it."""


@dataclass(frozen=True)
class Expect:
    """What one field must hold: a test on the value, and its description for the error message."""

    test: Callable[[Any], bool]
    what: str

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


def integer(low: int | None = None, high: int | None = None) -> Expect:
    bounds = (f" >= {low}" if high is None else f" in {low}..{high}") if low is not None else ""
    return Expect(lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high),
                  f"an integer{bounds}")


STRING = Expect(lambda v: isinstance(v, str), "a string")
OPTIONAL_STRING = Expect(lambda v: v is None or isinstance(v, str), "a string or null")
OBJECT = Expect(lambda v: isinstance(v, dict), "an object")


def list_of(item: Expect, length: int | None = None, non_empty: bool = False) -> Expect:
    size = f"a list of {length} items" if length is not None else "a non-empty list" if non_empty else "a list"
    return Expect(lambda v: isinstance(v, list) and all(map(item, v)) and (length is None or len(v) == length)
                  and (not non_empty or len(v) > 0), f"{size}, each {item.what}")


def object_of(value: Expect) -> Expect:
    return Expect(lambda v: isinstance(v, dict) and all(map(value, v.values())), f"an object, each value {value.what}")


NUMBER_OR_NULL = Expect(lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
                        "a number or null")


def has_fields(value: Any, required: Mapping[str, Expect], optional: Mapping[str, Expect] | None = None) -> bool:
    """Whether `value` is an object with the `required` fields (and the `optional` ones, where present) well formed."""
    return (isinstance(value, dict) and all(k in value and e(value[k]) for k, e in required.items())
            and all(k not in value or e(value[k]) for k, e in (optional or {}).items()))


def tables(required: Mapping[str, Expect], optional: Mapping[str, Expect] | None = None) -> Expect:
    """A non-empty list of objects, each with the `required` fields (and the `optional` ones well formed)."""
    fields = ", ".join(f"{k} ({e.what})" for k, e in required.items())
    return Expect(lambda v: isinstance(v, list) and len(v) > 0 and all(has_fields(t, required, optional) for t in v),
                  f"a non-empty list of objects with {fields}")


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def check_fields(data: Any, path: Path, required: Mapping[str, Expect], remedy: str,
                 optional: Mapping[str, Expect] | None = None) -> None:
    """Raise DamagedFile for the first field of `data` (read from `path`) that is missing or malformed.
    Keys are dotted (`config.seeds`); a parent is checked before its children, so list them in that order."""
    if not isinstance(data, dict):
        raise DamagedFile(f"{path}: holds {_short(data)}, not a JSON object; {remedy}")
    for key, expect in required.items():
        value = _lookup(data, key)
        if value is _MISSING:
            raise DamagedFile(f"{path}: has no {key}; {remedy}")
        if not expect(value):
            raise DamagedFile(f"{path}: {key} = {_short(value)}; expected {expect.what}; {remedy}")
    for key, expect in (optional or {}).items():
        value = _lookup(data, key)
        if value is not _MISSING and not expect(value):
            raise DamagedFile(f"{path}: {key} = {_short(value)}; expected {expect.what}; {remedy}")


def read_json(path: Path, remedy: str) -> Any:
    """The parsed content of `path`; DamagedFile if it is not UTF-8 JSON. A missing file raises
    FileNotFoundError, which each caller handles in its own way."""
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DamagedFile(f"{path}: damaged, not UTF-8 text; {remedy}") from None
    except json.JSONDecodeError as exc:
        raise DamagedFile(f"{path}: damaged, not readable JSON ({exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}: truncated or edited?); {remedy}") from None
    except RecursionError:  # arrays or objects nested past the parser's stack
        raise DamagedFile(f"{path}: damaged, nested too deeply to read as JSON; {remedy}") from None


def _short(value: Any, limit: int = 60) -> str:
    """`value` as one short line for an error message."""
    text = json.dumps(value)  # one line: strings are escaped, NaN is written NaN
    return text if len(text) <= limit else text[: limit - 3] + "..."
