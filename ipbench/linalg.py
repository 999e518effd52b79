"""Batched linear algebra shared by the Gaussian prior and the classical solvers."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

LinearMap = Callable[[Tensor], Tensor]


def conjugate_gradient(apply: LinearMap, rhs: Tensor, tol: float = 1e-7, max_iter: int = 5000,
                       strict: bool = True) -> Tensor:
    """Solve apply(x) = rhs for a symmetric positive definite map, batched with per-image scalars.

    Each image stops updating once its relative residual is below `tol`, so its result does not depend
    on the other images of the batch. After `max_iter` iterations it raises, or with `strict=False`
    returns the current iterate (an approximate solve, as inside a sampler).
    """
    dims = tuple(range(1, rhs.ndim))
    dot = lambda a, b: (a * b).sum(dim=dims, keepdim=True)  # noqa: E731
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = dot(r, r)
    target = tol**2 * dot(rhs, rhs)
    tiny = torch.finfo(rhs.dtype).tiny  # guards the divisions once an image has converged
    for _ in range(max_iter):
        active = rr > target
        if not bool(active.any()):
            return x
        ap = apply(p)
        alpha = torch.where(active, rr / dot(p, ap).clamp_min(tiny), torch.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        p = torch.where(active, r + (rr_new / rr.clamp_min(tiny)) * p, p)
        rr = torch.where(active, rr_new, rr)
    if strict:
        raise RuntimeError(f"conjugate gradients did not reach tol={tol} in {max_iter} iterations")
    return x
