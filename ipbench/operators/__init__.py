"""Measurement operators: a registry of named deepinv Physics factories (one file per family)."""
from ipbench.operators.base import (DEFAULT_SIGMA_Y, OPERATORS, Operator, OperatorFactory, as_float64, back_project,
                                    is_linear, linear_problem, measure, measurement_image, noise_level,
                                    pseudo_inverse, register_operator, shown_measurement, visible_mask)
from ipbench.operators import blur as _blur, denoise as _denoise, inpaint as _inpaint  # noqa: F401  (register)
from ipbench.operators import motion as _motion, sr as _sr  # noqa: F401  (register)
from ipbench.operators import hdr as _hdr, jpeg as _jpeg, phase as _phase  # noqa: F401  (register; nonlinear)
from ipbench.operators import nonlinear_blur as _nonlinear_blur  # noqa: F401  (register; nonlinear, needs its weights file)
from ipbench.operators import ct as _ct, mri as _mri  # noqa: F401  (register; y is a sinogram, k-space)

__all__ = ["OPERATORS", "Operator", "OperatorFactory", "register_operator", "measure", "back_project",
           "measurement_image", "noise_level", "as_float64", "pseudo_inverse", "visible_mask", "DEFAULT_SIGMA_Y",
           "is_linear", "linear_problem", "shown_measurement"]
