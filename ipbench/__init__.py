"""ipbench: benchmark diffusion-prior solvers of imaging inverse problems.

Public API: the types users extend (`Solver`, `ScoreModel`, `Operator`), the registries' decorators,
and `run`. Each name is imported on first use, so that `import ipbench` (and `bench --help`) does not pay
for torch, deepinv, lpips and pandas before a command needs them.
"""
from __future__ import annotations

from ipbench.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
