"""`torch.compile` of a score model's network as a switch (`bench run --compile`)."""
from __future__ import annotations

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel


class CompiledModel(ScoreModel):
    """The same model with `eps` compiled by torch.compile (dynamic=False: one graph per batch shape)."""

    def __init__(self, inner: ScoreModel, mode: str | None = None) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        self.inner = inner
        self.default_image_set = inner.default_image_set
        self.mode = mode
        self._eps = torch.compile(inner.eps, mode=mode, dynamic=False)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self._eps(x_t, t)
