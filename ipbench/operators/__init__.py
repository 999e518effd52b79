"""Measurement operators: a registry of named deepinv Physics factories (one file per family)."""
from ipbench.operators.base import (DEFAULT_SIGMA_Y, OPERATORS, Operator, OperatorFactory, back_project, measure,
                                    noise_level, register_operator, visible_mask)
from ipbench.operators import blur as _blur, denoise as _denoise, inpaint as _inpaint  # noqa: F401  (register)

__all__ = ["OPERATORS", "Operator", "OperatorFactory", "register_operator", "measure", "back_project",
           "noise_level", "visible_mask", "DEFAULT_SIGMA_Y"]
