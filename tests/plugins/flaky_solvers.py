"""Solvers that misbehave on purpose, for the runner's failure and interruption tests."""
from dataclasses import dataclass

import torch

from ipbench import Solver, register_solver
from ipbench.operators import back_project

INTERRUPT_AFTER = {"calls": None}  # set by a test: raise KeyboardInterrupt after this many calls


@register_solver
@dataclass
class RaisesOnCamera(Solver):
    """Raises when the batch holds the image with id 01-camera; otherwise back-projects."""

    name = "raises-on-camera"

    def solve(self, y, op, model, generators):
        if y.shape[1] == 3 and bool((y[:, 0] == y[:, 1]).all(dim=(1, 2)).any()):  # camera is the grey one
            raise RuntimeError("boom on a grey image")
        return back_project(op, y)


@register_solver
@dataclass
class NanOnSecond(Solver):
    """Returns NaN for the second image of every batch."""

    name = "nan-on-second"

    def solve(self, y, op, model, generators):
        x = back_project(op, y).clone()
        if x.shape[0] > 1:
            x[1] = float("nan")
        return x


@register_solver
@dataclass
class Interruptible(Solver):
    """Back-projection plus seeded noise; raises KeyboardInterrupt once its call budget is spent."""

    name = "interruptible"

    def solve(self, y, op, model, generators):
        if INTERRUPT_AFTER["calls"] is not None:
            if INTERRUPT_AFTER["calls"] == 0:
                raise KeyboardInterrupt
            INTERRUPT_AFTER["calls"] -= 1
        noise = torch.stack([torch.randn(y.shape[1:], generator=g) for g in generators])
        return back_project(op, y) + 0.01 * noise


@register_solver
@dataclass
class OddOutput(Solver):
    """Returns the back-projection in a form a solver must not: `kind` says which."""

    name = "odd-output"
    kind: str = "int"

    def solve(self, y, op, model, generators):
        x = back_project(op, y)
        return {"int": lambda: (x * 255).to(torch.uint8), "bool": lambda: x > 0.5, "complex": lambda: x.to(torch.complex64),
                "meta": lambda: torch.empty_like(x, device="meta"), "shape": lambda: x[:, :, 1:],
                "list": lambda: x.tolist(), "float64": lambda: x.double()}[self.kind]()


@register_solver
@dataclass
class MasksOnly(Solver):
    """Applies to inpainting only (it declares so); back-projects."""

    name = "masks-only"

    def unsupported(self, op, like):
        from deepinv.physics import Inpainting

        return None if isinstance(op, Inpainting) else "needs a mask, got " + type(op).__name__

    def solve(self, y, op, model, generators):
        return back_project(op, y)


@register_solver
@dataclass
class BrokenCheck(Solver):
    """Its applicability check raises: a failure of the solver, not a skip."""

    name = "broken-check"

    def unsupported(self, op, like):
        raise ValueError("cannot tell")

    def solve(self, y, op, model, generators):
        return back_project(op, y)
