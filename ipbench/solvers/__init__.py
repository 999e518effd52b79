"""Solvers: the base class, the registry and one file per solver."""
from ipbench.solvers.base import SOLVERS, Solver, randn_per_image, register_solver
from ipbench.solvers import blur as _blur, tweedie as _tweedie  # noqa: F401  (register the built-in solvers)

__all__ = ["SOLVERS", "Solver", "register_solver", "randn_per_image"]
