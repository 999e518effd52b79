"""Measurement operators: a registry of named deepinv Physics factories (one file per family)."""
from ipbench.operators.base import (DEFAULT_SIGMA_Y, OPERATORS, Operator, OperatorFactory, as_float64, back_project, measure,
                                    measurement_image, noise_level, pseudo_inverse, register_operator, visible_mask)
from ipbench.operators import blur as _blur, denoise as _denoise, inpaint as _inpaint  # noqa: F401  (register)
from ipbench.operators import motion as _motion, sr as _sr  # noqa: F401  (register)

__all__ = ["OPERATORS", "Operator", "OperatorFactory", "register_operator", "measure", "back_project",
           "measurement_image", "noise_level", "as_float64", "pseudo_inverse", "visible_mask", "DEFAULT_SIGMA_Y"]
