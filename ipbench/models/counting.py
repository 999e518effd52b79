"""Counting score-network evaluations, for the rows' NFE and the solver checks."""
from __future__ import annotations

from torch import Tensor

from ipbench.models.base import ScoreModel


class CountingModel(ScoreModel):
    """Wraps a score model and counts its evaluations: `nfe` eps calls, `images` images through them.

    `images / batch size` is the NFE per image whether a solver calls the network on the whole batch
    (nfe calls of N images) or image by image (N x nfe calls of one image).
    """

    def __init__(self, inner: ScoreModel) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        self.inner = inner
        self.continuous = inner.continuous  # a flow or EDM network keeps its any-sigma VE view through the count
        self.nfe = 0
        self.images = 0

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        self.images += x_t.shape[0]
        return self.inner.eps(x_t, t)

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.nfe += 1
        self.images += x.shape[0]
        return self.inner.denoise_ve(x, sigma)

    def reset(self) -> None:
        self.nfe = self.images = 0

    @property
    def compile_seconds(self) -> float:
        """Seconds the wrapped network has spent compiling so far (0 when it is not compiled)."""
        return float(getattr(self.inner, "compile_seconds", 0.0))
