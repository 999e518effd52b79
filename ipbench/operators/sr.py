"""Super-resolution: antialiasing filter then decimation by an integer factor (deepinv `Downsampling`).

y = S (h * x): h is a normalised low-pass filter (sum 1), `*` a convolution with the stated boundary
padding (reflect by default), S keeps rows and columns 0, f, 2f, ..., so y is (N, C, H/f, W/f). Filters
are deepinv's: "bicubic" (default; Keys' cubic kernel, a = -0.5, as the DPS/DDRM line degrades),
"bilinear", "gaussian", "sinc" (Kaiser-windowed) and "none" (plain decimation). With the even-length
filters output pixel i is centred at input position i f + 1/2; MATLAB `imresize`, which the DPS code's
`Resizer` ports, centres it at i f + (f - 1)/2. docs/operators.md has the taps and the sampling grid.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Downsampling

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import AT_LEAST_ONE

FILTERS = ("bicubic", "bilinear", "gaussian", "sinc", "none")
PADDINGS = ("reflect", "circular", "replicate", "constant")


@register_operator("sr", aliases=("super-resolution",), choices={"filter": FILTERS, "padding": PADDINGS},
                   ranges={"factor": AT_LEAST_ONE})
def super_resolution(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                     factor: int = 4, filter: str = "bicubic", padding: str = "reflect") -> Downsampling:
    """Downsampling by `factor` after an antialiasing `filter` (bicubic by default); y is H/f x W/f."""
    _, height, width = shape
    if factor < 1 or height % factor or width % factor:
        raise UsageError(f"operator sr.factor={factor}: must be an integer >= 1 that divides the image height "
                         f"and width ({height} x {width})")
    kernel = None if filter == "none" or factor == 1 else filter
    physics = Downsampling(img_size=shape, filter=kernel, factor=factor, padding=padding, device=device)
    if physics.filter is not None:  # torch pads by at most the side (circular) or less than it (reflect)
        size = int(physics.filter.shape[-1])
        pad, side = size // 2, min(height, width)
        if (padding == "reflect" and pad >= side) or (padding == "circular" and pad > side):
            raise UsageError(f"operator sr.factor={factor}: the {size} x {size} {filter} filter with {padding} padding "
                             f"needs an image side over {pad if padding == 'reflect' else pad - 1} px, got "
                             f"{height} x {width}; use a smaller factor or padding=replicate/constant")
    return physics
