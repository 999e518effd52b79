"""High dynamic range: an over-exposed image, clipped to the sensor's range.

DAPS (zhangbingliang2019/DAPS at 098df6b, forward_operator/__init__.py:370-378) and RED-diff (NVlabs/RED-diff
at 66482f2, utils/degredations.py:541-549) define it on their [-1, 1] data as y_m = clip(s x_m, -1, 1) with
s = 2 (DAPS configs/task/hdr.yaml:13; RED-diff writes x / 0.5), noise sigma = 0.05 on y_m (hdr.yaml:14).
With x_m = 2 x - 1 and y = (y_m + 1) / 2, the same in image units is

    y = clip(s (x - 1/2) + 1/2, 0, 1) + sigma_y n,    sigma_y = sigma / 2 (0.025, the default):

the contrast multiplied by s about mid-grey, then clipped to [0, 1]; y is an image, and pixels below
1/2 - 1/(2s) or above 1/2 + 1/(2s) (1/4 and 3/4 at s = 2) saturate. `A_dagger` is RED-diff's H_pinv
(degredations.py:551-552: y_m / s), here (y - 1/2) / s + 1/2: it inverts A wherever nothing saturated.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import Range

MAX_SCALE = 1e3  # past this A is a threshold at mid-grey: a gradient only on a 1e-3 wide band


class ClippedExposure(Physics):
    """A(x) = clip(scale (x - 1/2) + 1/2, 0, 1): a nonlinear deepinv Physics, A only (no adjoint)."""

    def __init__(self, scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return (self.scale * (x - 0.5) + 0.5).clamp(0.0, 1.0)

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        """RED-diff's H_pinv (degredations.py:551-552) in image units: (y - 1/2) / scale + 1/2."""
        return (y - 0.5) / self.scale + 0.5


@register_operator("hdr", ranges={"scale": Range(0, MAX_SCALE, low_open=True)})
def hdr(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
        scale: float = 2.0) -> ClippedExposure:
    """Contrast times `scale` about mid-grey, clipped to [0, 1] (DAPS, RED-diff: scale 2)."""
    if not 0 < scale <= MAX_SCALE:
        raise UsageError(f"operator hdr.scale={scale}: must be in (0, {MAX_SCALE:g}]")
    return ClippedExposure(scale).to(device)
