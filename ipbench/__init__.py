"""ipbench: benchmark diffusion-prior solvers of imaging inverse problems.

Public API: the types users extend (`Solver`, `ScoreModel`, `Operator`), the registries' decorators,
and `run`. Each name is imported on first use, so that `import ipbench` (and `bench --help`) does not pay
for torch, deepinv, lpips and pandas before a command needs them.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "UsageError": "ipbench.errors",
    "ScoreModel": "ipbench.models", "GaussianScoreModel": "ipbench.models", "load_model": "ipbench.models",
    "register_model": "ipbench.models",
    "Operator": "ipbench.operators", "register_operator": "ipbench.operators",
    "Solver": "ipbench.solvers", "register_solver": "ipbench.solvers",
    "Acceleration": "ipbench.models.acceleration",
    "run": "ipbench.benchmark.runner",
    "RunSpec": "ipbench.benchmark.spec", "build_spec": "ipbench.benchmark.spec", "load_suite": "ipbench.benchmark.spec",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ipbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
