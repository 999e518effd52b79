"""ipbench: benchmark diffusion-prior solvers of imaging inverse problems.

Public API: the types users extend (`Solver`, `ScoreModel`), the registries' decorators, and `run`.
"""
from ipbench.errors import UsageError
from ipbench.models import GaussianScoreModel, ScoreModel, load_model, register_model
from ipbench.operators import Operator, register_operator
from ipbench.solvers import Solver, register_solver
from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import RunSpec, build_spec, load_suite

__version__ = "0.1.0"
__all__ = ["Solver", "ScoreModel", "GaussianScoreModel", "Operator", "RunSpec", "UsageError", "register_solver",
           "register_operator", "register_model", "load_model", "run", "build_spec", "load_suite"]
