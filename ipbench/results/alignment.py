"""A reconstruction scored up to its problem's trivial ambiguities.

Some measurements cannot tell an image from a few others: the Fourier magnitude of phase retrieval is the same
for an image, its 180-degree rotation, its negative about the padding's value and some of its translates
(ipbench/operators/phase.py, `FourierMagnitude.equivalents`). A solver that returns one of these has solved
the problem as posed, so phase-retrieval results are reported after alignment to the truth, as is usual for
the problem (e.g. Fienup 1982; DAPS, Zhang et al. 2025, evaluates its phase-retrieval runs against the truth
too): each reconstruction is replaced by the equivalent closest to the true image in mean squared error (the
highest PSNR; ties keep the earliest, the reconstruction itself), every metric is computed on it, and the row
records which one was chosen (`alignment`) beside the unaligned metrics (`<metric>_raw`).
"""
from __future__ import annotations

import torch
from deepinv.physics import Physics
from torch import Tensor


def aligned_to_truth(physics: Physics, x_hat: Tensor, x: Tensor) -> tuple[Tensor, list[str]] | None:
    """Each reconstruction of the batch replaced by its equivalent under `physics` closest to its true image,
    with the equivalents' names; None when the operator declares no ambiguity (no `equivalents`)."""
    equivalents = getattr(physics, "equivalents", None)
    if not callable(equivalents):
        return None
    chosen, names = [], []
    for estimate, truth in zip(x_hat, x):
        candidates = equivalents(estimate)
        stack = torch.stack(list(candidates.values())).clamp(0, 1)
        mse = (stack.double() - truth.double()).pow(2).flatten(1).mean(1)
        best = int(torch.argmin(mse))  # the first of equal minima: "identity" unless another is strictly closer
        chosen.append(stack[best])
        names.append(list(candidates)[best])
    return torch.stack(chosen).to(x_hat.dtype), names
