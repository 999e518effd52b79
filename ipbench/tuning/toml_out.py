"""Writing the few TOML shapes a suite needs: keys, scalars, lists of scalars (tomllib only reads)."""
from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def key(name: str) -> str:
    """A key, bare where TOML allows it, else quoted (`"inpaint-box"` stays bare, `"dps (zeta)"` is quoted)."""
    return name if _BARE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def value(v: Any) -> str:
    """A TOML value: bool, int, float (repr, which round-trips), str (JSON's escapes are TOML's), or a list
    of those; None is written as the string "none", which every optional field reads as None."""
    if v is None:
        return '"none"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML suite value {v!r}: not a finite number")
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(item) for item in v) + "]"
    raise TypeError(f"TOML suite value {v!r}: no TOML form")


def assignment(name: str, v: Any) -> str:
    return f"{key(name)} = {value(v)}"
