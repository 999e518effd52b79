"""Packages whose public names are imported on first use (PEP 562 module `__getattr__`).

`ipbench` and `ipbench.data` name their API in one dict, name -> defining module, and import a module only
when one of its names is first looked up, so that `bench --help` and the commands that only read run
folders do not pay for torch, deepinv, lpips or pandas.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package` for `exports` ({public name: module that defines it})."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
