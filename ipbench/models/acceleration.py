"""GPU-speed switches for a score model, as one wrapper that is still a ScoreModel (solvers do not change).

    fast = accelerate(model, precision="bf16", channels_last=True, compile=True)

Each switch is off by default (fp32 eager, the setting of the reference numbers); `Acceleration`
documents them. They wrap the network call only: the solver's own arithmetic stays float32. bf16
changes results (a run records it); the others only move float rounding. `fast` is a preset: on CUDA,
bf16 + channels_last + CUDA graphs (the fastest measured setting, see README, Speed); on CPU it is
ignored. Where the switches reach beyond the wrapper (channels_last converts the model's parameters in
place, tf32 sets process-wide flags), `close()` or leaving a `with` block undoes it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from types import TracebackType

import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.compile import CompiledModel

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
SWITCHES = ("channels_last", "compile", "cuda_graphs", "layout_opt", "tf32")  # what `parse` reads after the precision


@dataclass(frozen=True)
class Acceleration:
    """The speed switches of a run (run.json records them) and of `accelerate`.

    precision      "fp32": float32, autocast explicitly off. "bf16": the network call alone runs under
                   torch.autocast(bfloat16) and eps is cast back to x_t's dtype. None: not chosen, which
                   `resolve` makes fp32 (or bf16 under `fast` on CUDA).
    channels_last  the network's 4-D parameters and each x_t in channels_last memory format; eps comes
                   back contiguous (NCHW).
    compile        torch.compile of the call (models/compile.py: one graph per batch shape, compiled in a
                   warm-up whose time is kept apart as `compile_seconds`).
    tf32           TF32 matmuls and convolutions (process-wide flags, restored by `close()`); CUDA only.
    cuda_graphs    compile in mode "reduce-overhead": the compiled forward and backward replay as CUDA
                   graphs. Implies compile; on CPU it is plain compile.
    layout_opt     compile with inductor's channels_last layout optimisation forced on (inductor turns it
                   off for graphs with a backward pass through channel-halving convolutions, as ADM's
                   decoder has). Implies compile; experimental, see benchmarks/layout_decision.py.
    fast           the GPU preset: bf16 (unless precision says otherwise) + channels_last + cuda_graphs.
    """

    precision: str | None = None
    channels_last: bool = False
    compile: bool = False
    tf32: bool = False
    cuda_graphs: bool = False
    layout_opt: bool = False
    fast: bool = False

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UsageError(f"precision={self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.cuda_graphs or self.layout_opt:  # torch.compile settings: record that the network is compiled
            object.__setattr__(self, "compile", True)

    def resolve(self, device: torch.device, precision: str | None = None) -> Acceleration:
        """The concrete switches on `device`: `precision` (a run's own choice) or this one's, `fast`
        expanded on CUDA and dropped elsewhere, None made fp32."""
        chosen = precision or self.precision
        if self.fast and device.type == "cuda":
            return replace(self, precision=chosen or "bf16", channels_last=True, cuda_graphs=True, fast=False)
        return replace(self, precision=chosen or "fp32", fast=False)

    def label(self) -> str:
        """A short name such as 'bf16+channels_last+compile'."""
        flags = ("channels_last", "cuda_graphs" if self.cuda_graphs else "compile", "layout_opt", "tf32", "fast")
        return "+".join([self.precision or "fp32"] + [k for k in flags if getattr(self, k)])

    @classmethod
    def parse(cls, label: str) -> Acceleration:
        """'bf16+channels_last+compile' -> Acceleration('bf16', channels_last=True, compile=True): the inverse
        of `label()` for concrete switches (a precision and no `fast`, as `resolve` returns them), so that a
        benchmark names a combination the way its report prints it. UsageError for anything else."""
        precision, *flags = label.split("+")
        if set(flags) - set(SWITCHES) or precision not in PRECISIONS:
            raise UsageError(f"{label}: write {' or '.join(PRECISIONS)}, then any of "
                             + ", ".join(f"+{s}" for s in SWITCHES))
        return cls(precision, **{s: s in flags for s in SWITCHES})

    @property
    def compile_mode(self) -> str | None:
        """torch.compile's mode, or None where the network is not compiled."""
        if self.cuda_graphs:
            return "reduce-overhead"
        return "default" if self.compile else None


class NetworkCall(ScoreModel):
    """One network evaluation under the precision and memory-format switches (what `compile` compiles)."""

    def __init__(self, inner: ScoreModel, precision: str, channels_last: bool) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        self.inner = inner
        self.compute_dtype = PRECISIONS[precision]
        self.channels_last = channels_last

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        x = x_t.contiguous(memory_format=torch.channels_last) if self.channels_last else x_t
        bf16 = self.compute_dtype == torch.bfloat16
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=bf16):
            eps = self.inner.eps(x, t)
        return eps.to(dtype=x_t.dtype, memory_format=torch.contiguous_format)


class AcceleratedModel(ScoreModel):
    """`inner` with the switches of `Acceleration` applied; a ScoreModel, so any solver takes it."""

    def __init__(self, inner: ScoreModel, settings: Acceleration) -> None:
        super().__init__(inner.alphas_cumprod, inner.image_shape)
        settings = settings.resolve(inner.alphas_cumprod.device)  # `fast` and precision None made concrete
        self.inner = inner
        self.settings = settings
        self.default_image_set = inner.default_image_set
        self.default_num_images = inner.default_num_images
        self.continuous = inner.continuous
        self._params_converted = settings.channels_last
        if settings.channels_last:
            inner.to(memory_format=torch.channels_last)  # in place, as nn.Module.to always is; close() undoes it
        call = NetworkCall(inner, settings.precision, settings.channels_last)
        mode = settings.compile_mode
        self.network: ScoreModel = call if mode is None else CompiledModel(call, mode, settings.layout_opt)
        self._saved_tf32: tuple[bool, bool] | None = None
        if settings.tf32:
            self._saved_tf32 = set_tf32(True)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        eps = self.network.eps(x_t, t)
        # A CUDA graph writes every replay's output into the same memory: a copy lets a solver keep eps
        # across network calls.
        return eps.clone() if self.settings.cuda_graphs else eps

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        """A continuous model's any-sigma view, passed through as it is: the switches apply to `eps` only."""
        return self.inner.denoise_ve(x, sigma)

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling the network for new input signatures (0 when it is not compiled)."""
        return float(getattr(self.network, "compile_seconds", 0.0))

    def close(self) -> None:
        """Undo what reaches beyond this wrapper: restore the TF32 flags it set and convert the inner
        model's parameters back to contiguous (NCHW) if it made them channels_last. Idempotent; the
        wrapper still works afterwards, only without those two switches' effect on speed."""
        if self._saved_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved_tf32
            self._saved_tf32 = None
        if self._params_converted:
            self.inner.to(memory_format=torch.contiguous_format)
            self._params_converted = False

    def __enter__(self) -> AcceleratedModel:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def set_tf32(enabled: bool) -> tuple[bool, bool]:
    """Set the process-wide TF32 flags (matmul, cudnn); returns their previous values."""
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    return previous


def accelerate(model: ScoreModel, precision: str | None = None, channels_last: bool = False, compile: bool = False,
               tf32: bool = False, cuda_graphs: bool = False, layout_opt: bool = False, fast: bool = False
               ) -> AcceleratedModel:
    """`model` with the GPU-speed switches applied (see the module docstring); all off by default.

    channels_last converts `model`'s parameters in place and tf32 changes process-wide flags, both
    until `close()` (or the end of a `with accelerate(...) as fast:` block). Works on CPU too (bf16
    autocast runs on CPU; tf32 then changes nothing).
    """
    return AcceleratedModel(model, Acceleration(precision, channels_last, compile, tf32, cuda_graphs, layout_opt, fast))


__all__ = ["PRECISIONS", "SWITCHES", "AcceleratedModel", "Acceleration", "NetworkCall", "accelerate", "set_tf32"]
