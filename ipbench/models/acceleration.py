"""GPU-speed switches for a score model, as one wrapper that is still a ScoreModel (solvers do not change).

    fast = accelerate(model, precision="bf16", channels_last=True, compile=True)

The switches, each off by default:
  precision      "fp32" (default): the network runs in float32 with autocast explicitly off.
                 "bf16": the network call, and only it, runs under torch.autocast(dtype=bfloat16); eps is
                 cast back to the dtype of x_t (float32 in every ipbench solver), so the solver's own
                 arithmetic (steps, norms, the guidance gradient's accumulation) stays float32. The
                 gradient w.r.t. x_t flows through autocast and arrives in x_t's dtype.
  channels_last  converts the network's 4-D parameters to channels_last, in place (nn.Module.to does;
                 `close()` converts them back), and each x_t before the call; eps is returned
                 contiguous (NCHW).
  compile        torch.compile of the whole call above (autocast and casts included), through
                 ipbench.models.compile.CompiledModel (dynamic=False: one graph per batch shape). Each
                 new batch shape compiles in a warm-up call timed apart (`compile_seconds`), so a
                 solver's timing does not carry minutes of compilation.
  cuda_graphs    compile as above in mode "reduce-overhead": the compiled forward and backward are
                 captured as CUDA graphs and replayed, so one launch replaces the network's hundreds of
                 kernel launches (what limits small batches). Implies compile. On CPU it is plain compile.
  layout_opt     compile as above with inductor's layout optimisation forced on: the compiled graph keeps
                 its intermediate activations channels_last, as the convolutions want them. Inductor turns
                 it off by itself for a training graph (forward + backward, which DPS's gradient makes)
                 that has a 3x3 convolution with at least twice as many input as output channels; the ADM
                 decoder's skip-concatenating convolutions all are such (11 of the FFHQ network's 76), so
                 otherwise the graph's own kernels write NCHW and cuDNN copies each NHWC convolution's
                 input and gradient (the 20% "direct_copy" share of the H100 profile, results/gpu).
                 Implies compile. No effect on CPU, where inductor always lays convolutions out so.
  tf32           sets torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 to True.
                 These are process-wide flags read when each kernel runs, so they cannot be scoped to
                 the network call: the backward pass (autograd.grad in the solver) runs outside `eps`.
                 They are set when the wrapper is built and restored by `close()` (or by leaving a
                 `with accelerate(...) as model:` block). tf32=False leaves the flags as they are; note
                 that PyTorch's own default already has cudnn.allow_tf32 = True, so "fp32" convolutions
                 on an Ampere-or-later GPU are TF32 unless the user turned that off. No effect on CPU.

Defaults: all off (fp32 eager), the reference numbers' setting. Measured on an H100 with the FFHQ-256
network (results/gpu_speed.md): bf16 + channels_last + cuda_graphs is the fastest at every batch size
(8.8 ms per DPS step at batch 1, 6.8x deepinv's DPS; 5.1 ms per image at batch 32) and loses 0.01 dB
against fp32 on trained weights; `bench run --fast` selects it on CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.compile import CompiledModel

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Acceleration:
    """The switches of `accelerate` (`dataclasses.asdict(model.settings)` is what run.json should record)."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    tf32: bool = False
    cuda_graphs: bool = False
    layout_opt: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision={self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.cuda_graphs or self.layout_opt:  # torch.compile settings: record that the network is compiled
            object.__setattr__(self, "compile", True)

    def label(self) -> str:
        """A short name such as 'bf16+channels_last+compile'."""
        flags = ("channels_last", "cuda_graphs" if self.cuda_graphs else "compile", "layout_opt", "tf32")
        return "+".join([self.precision] + [k for k in flags if getattr(self, k)])

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
        self.inner = inner
        self.settings = settings
        self.default_image_set = inner.default_image_set
        self.default_num_images = inner.default_num_images
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


def accelerate(model: ScoreModel, precision: str = "fp32", channels_last: bool = False, compile: bool = False,
               tf32: bool = False, cuda_graphs: bool = False, layout_opt: bool = False) -> AcceleratedModel:
    """`model` with the GPU-speed switches applied (see the module docstring); all off by default.

    channels_last converts `model`'s parameters in place and tf32 changes process-wide flags, both
    until `close()` (or the end of a `with accelerate(...) as fast:` block). Works on CPU too (bf16
    autocast runs on CPU; tf32 then changes nothing).
    """
    return AcceleratedModel(model, Acceleration(precision, channels_last, compile, tf32, cuda_graphs, layout_opt))


__all__ = ["PRECISIONS", "AcceleratedModel", "Acceleration", "NetworkCall", "accelerate", "set_tf32"]
