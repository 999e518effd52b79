"""`torch.compile` of a score model's network as a switch (`bench run --compile`)."""
from __future__ import annotations

import time

import torch
from torch import Tensor

from ipbench.device import synchronize
from ipbench.models.base import ScoreModel

# Calls that bring a new input signature to its steady state: one compiles the graph (and, through the
# backward pass, its backward graph); in "reduce-overhead" mode CUDA graph trees run a signature eagerly
# once, record it on the next call and replay from the one after.
WARMUP_CALLS = {"default": 1, "reduce-overhead": 3}


class CompiledModel(ScoreModel):
    """The same model with `eps` compiled by torch.compile (dynamic=False: one graph per batch shape), in
    `mode`, with inductor's channels_last layout optimisation forced on where `layout_opt` (acceleration.py).

    Compilation happens at the first call with a new input signature (batch shape, dtype, device, grad
    mode, whether x_t requires grad) and takes seconds to minutes: far longer than the call itself. So
    that it is not charged to whichever solver call meets it first, that first call is preceded by a
    warm-up on a copy of the input (with a backward pass when a gradient will flow, which compiles the
    backward graph too); the warm-up's wall time accumulates in `compile_seconds`, which the runner
    leaves out of a solver's `seconds` and records beside it. The warm-up only evaluates the network:
    it changes no result.
    """

    def __init__(self, inner: ScoreModel, mode: str | None = None, layout_opt: bool = False) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        self.inner = inner
        self.default_image_set = inner.default_image_set
        self.mode = mode
        if layout_opt:  # torch.compile takes a mode or inductor options, not both: spell the mode out
            from torch._inductor import list_mode_options

            options = {**list_mode_options(mode or "default", dynamic=False), "force_layout_optimization": True}
            self._eps = torch.compile(inner.eps, options=options, dynamic=False)
        else:
            self._eps = torch.compile(inner.eps, mode=mode, dynamic=False)
        self._warm: set[tuple[object, ...]] = set()
        self.compile_seconds = 0.0

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        signature = (tuple(x_t.shape), x_t.dtype, x_t.device, torch.is_grad_enabled(), x_t.requires_grad)
        if signature not in self._warm:
            self._warm_up(x_t, t)
            self._warm.add(signature)
        return self._eps(x_t, t)

    def _warm_up(self, x_t: Tensor, t: Tensor) -> None:
        """Compile (and, in reduce-overhead mode, record) for this signature on a copy of the input."""
        synchronize(x_t.device)
        start = time.perf_counter()
        for _ in range(WARMUP_CALLS.get(self.mode or "default", 1)):
            x = x_t.detach().clone().requires_grad_(x_t.requires_grad)
            eps = self._eps(x, t.clone())
            if x.requires_grad and eps.requires_grad:
                torch.autograd.grad(eps, x, grad_outputs=torch.ones_like(eps))
        synchronize(x_t.device)
        self.compile_seconds += time.perf_counter() - start
