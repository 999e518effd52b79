"""`bench run --trace K`: every K-th x0_hat of a solver's steps, for the run's first images, as a strip.

The runner sets a `StepTrace` as the solver's `step_hook` (Solver.report_step calls it once per step) for
the batches that hold a traced image, and saves each traced image's strip next to its reconstruction
(images/<operator>/<solver>/trace/<id>-s<seed>.png): x0_hat at steps 0, K, 2K, ... and at the last step,
left to right, in image units; the strip's PNG names its frames' steps and diffusion times (`steps_text`),
which trace-<operator>.png prints under each frame. Tracing changes no result: it only reads the tensors a
solver reports.
"""
from __future__ import annotations

import json

import torch
from torch import Tensor

from ipbench.models.base import to_image
from ipbench.results.grid import TRACE_STEPS_KEY  # the strip PNG's text chunk: JSON [[step, t], ...]

TRACE_IMAGES = 4  # the run's first images are traced (first seed)


class StepTrace:
    """Collects x0_hat of the images at `positions` of the batch every `every` steps, and at the last."""

    def __init__(self, every: int, positions: list[int]) -> None:
        self.every = every
        self.positions = positions
        self.frames: list[Tensor] = []  # (len(positions), C, H, W) each, image units, on the CPU
        self.times: list[tuple[int, int]] = []  # (step, t) of each frame
        self._last: tuple[Tensor, tuple[int, int]] | None = None
        self._steps = 0

    def __call__(self, t: int, x_t: Tensor, x0_hat: Tensor) -> None:
        frame = to_image(x0_hat[self.positions]).clamp(0, 1).float().cpu()
        if self._steps % self.every == 0:
            self.frames.append(frame)
            self.times.append((self._steps, int(t)))
            self._last = None
        else:
            self._last = (frame, (self._steps, int(t)))
        self._steps += 1

    def steps_text(self) -> dict[str, str]:
        """The strips' PNG text: which step (0 = the solver's first) and diffusion time t each frame shows."""
        times = self.times + ([self._last[1]] if self._last is not None else [])
        return {TRACE_STEPS_KEY: json.dumps(times)}

    def strips(self) -> list[Tensor]:
        """One (C, H, W * frames) strip per traced image; empty when the solver reported no step."""
        frames = self.frames + ([self._last[0]] if self._last is not None else [])
        if not frames:
            return []
        return list(torch.cat(frames, dim=-1))
