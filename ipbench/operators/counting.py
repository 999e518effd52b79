"""Counting the operator calls a solver makes on the deepinv `Physics` it receives (benchmarks/solver_speed.py).

`count_calls(op)` returns a copy of `op` that counts, in images (a call on N images counts N, so that a solver
calling the operator image by image counts the same as one calling it on the batch):

- `forward`: images through A;
- `backward`: of those, images whose A output a backward pass went through (a hook on the output: A evaluated
  in a graph that was backpropagated, as DPS's gradient of ||y - A(x0_hat)||); plus `vjp`, images through an
  `A_vjp` of the operator's own or deepinv's autograd one (`Physics.A_vjp`: one A forward and its backward);
- `adjoint`: images through `A_adjoint`, with a linear operator's `A_vjp` (deepinv's `LinearPhysics.A_vjp`
  is A_adjoint, so it is counted as one);
- `dagger`: images through an `A_dagger` the operator defines itself (a closed form: a mask's, JPEG's y,
  HDR's y / scale). deepinv's generic ones (`Physics.A_dagger`, gradient descent on A; `LinearPhysics.A_dagger`,
  least squares) are left unwrapped, so the A, A_vjp and A_adjoint calls they make are counted one by one;
- `svd`: calls (not images) of the operator's own `exact_svd` (CT's dense SVD, cached per geometry; MRI's Hartley basis,
  whose U and U^T then call the counted A and A^T). `operators.svd.operator_svd` of a separable operator
  probes A on unit images: those calls count as A forwards; a mask's or the identity's calls nothing.

Only the outermost call counts: what A_vjp, A_adjoint or A_dagger call inside themselves (deepinv's A_vjp
runs A under torch.func.vjp, CT's A^T is the vjp of A) is part of that call's cost. Not counted: deepinv's
closed forms that bypass these methods (`DecomposablePhysics.A_A_adjoint`, `A_adjoint_A`, `prox_l2`, `U`, `V`),
operator helpers that do not call A (`picture`, `equivalents`), and the backward of an A_adjoint output. (A
backward through A's output inside a torch.func transform, `torch.func.grad` of a function of A, is seen.)

The copy is the operator's own class with these methods wrapped (a subclass of the same name), so isinstance
checks, `type(op).A_dagger is not Physics.A_dagger` (RED-diff's test for an A^+ of its own) and attributes
behave as on `op`; it shares `op`'s tensors (a tensor set on it is its own); a deep copy of it (deepinv-dps
slicing a batched mask) counts into the same `OperatorCounts`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

from deepinv.physics import LinearPhysics, Physics
from torch import Tensor

COUNTS_ATTRIBUTE = "_operator_counts"


@dataclass
class OperatorCounts:
    """Images through each operator method (module docstring); divide by the batch size for calls per image."""

    forward: int = 0
    backward: int = 0
    vjp: int = 0
    adjoint: int = 0
    dagger: int = 0
    svd: int = 0
    depth: int = 0  # > 0 while a counted call runs: the calls it makes inside are part of it

    @property
    def forward_only(self) -> int:
        """Images through A with no backward through its output (priced at one A forward; 0 at least, since a
        backward through the same output twice counts twice)."""
        return max(self.forward - self.backward, 0)

    @property
    def with_gradient(self) -> int:
        """Images through A with a backward through its output, and through A_vjp (priced at A forward + backward)."""
        return self.backward + self.vjp

    def __copy__(self) -> OperatorCounts:
        return self  # copies of the counting physics count into the same counts

    def __deepcopy__(self, memo: dict[int, Any]) -> OperatorCounts:
        return self


def _images(value: Any) -> int:
    """The batch size of a method's first argument (1 for what is not a batched tensor)."""
    return int(value.shape[0]) if isinstance(value, Tensor) and value.ndim > 0 else 1


def _wrapped(base: type, name: str, field: str) -> Callable[..., Any]:
    """`base.name`, counting the images of its first argument in `field` when it is the outermost call."""
    inner = getattr(base, name)

    def method(self: Physics, *args: Any, **kwargs: Any) -> Any:
        counts: OperatorCounts = getattr(self, COUNTS_ATTRIBUTE)
        outer = counts.depth == 0
        counts.depth += 1
        try:
            out = inner(self, *args, **kwargs)
        finally:
            counts.depth -= 1
        if outer:
            images = 1 if field == "svd" or not args else _images(args[0])  # an SVD counts calls
            setattr(counts, field, getattr(counts, field) + images)
            if name == "A" and isinstance(out, Tensor) and out.requires_grad:
                def count_backward(grad: Tensor, images: int = images) -> None:
                    counts.backward += images
                try:
                    out.register_hook(count_backward)
                except RuntimeError:  # a tensor that refuses hooks: its backward goes uncounted
                    pass
        return out

    method.__name__ = method.__qualname__ = name
    method.__doc__ = inner.__doc__
    return method


_CLASSES: dict[type, type] = {}


def _counting_class(cls: type) -> type:
    """The subclass of `cls` with its operator methods counted (one per class, made on first use)."""
    if cls not in _CLASSES:
        methods: dict[str, Any] = {"A": _wrapped(cls, "A", "forward")}
        if hasattr(cls, "A_adjoint"):
            methods["A_adjoint"] = _wrapped(cls, "A_adjoint", "adjoint")
        if cls.A_vjp is not LinearPhysics.A_vjp:  # a linear A_vjp is A_adjoint: counted there
            methods["A_vjp"] = _wrapped(cls, "A_vjp", "vjp")
        if cls.A_dagger not in (Physics.A_dagger, LinearPhysics.A_dagger):  # generic ones: their calls count
            methods["A_dagger"] = _wrapped(cls, "A_dagger", "dagger")
        if callable(getattr(cls, "exact_svd", None)):
            methods["exact_svd"] = _wrapped(cls, "exact_svd", "svd")
        _CLASSES[cls] = type(cls.__name__, (cls,), {**methods, "__doc__": cls.__doc__})
    return _CLASSES[cls]


def count_calls(op: Physics) -> tuple[Physics, OperatorCounts]:
    """A counting copy of `op` (module docstring) and its counts, all 0; `op` itself is left as it is."""
    counted = copy.copy(op)
    for name in ("_parameters", "_buffers", "_modules"):  # its own tables: a tensor set on it stays off `op`
        if isinstance(counted.__dict__.get(name), dict):
            counted.__dict__[name] = dict(counted.__dict__[name])
    counted.__class__ = _counting_class(type(op))
    counts = OperatorCounts()
    object.__setattr__(counted, COUNTS_ATTRIBUTE, counts)
    return counted, counts
