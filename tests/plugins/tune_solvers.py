"""Solvers for the `bench tune` tests: cheap (no network), with one tunable weight whose best value is known.

`tune-shrink` pulls the back-projection of y towards mid-grey by `weight`: on inpainting its PSNR falls as
the weight grows (the observed pixels are right, the grey is not), so trials are told apart. With
`nan_above` below 1 it returns NaN for every weight above it: a diverging setting. `tune-peer` is the
same, but each call waits until a second process has also called it (a file per process in the folder
named by IPBENCH_TUNE_PEERS), so two workers are certain to run trials of one study at the same time.
`tune-interrupt` raises KeyboardInterrupt in the call named by INTERRUPT_AT (a test sets it), as Ctrl-C would.
"""
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ipbench import Solver, register_solver
from ipbench.operators import back_project
from ipbench.params import NON_NEGATIVE, UNIT, Tune, param

PEER_TIMEOUT_SECONDS = 300.0
INTERRUPT_AT = {"call": None, "calls": 0}


def _shrink(y, op, weight: float) -> torch.Tensor:
    x = back_project(op, y)
    return (1 - weight) * x + weight * torch.full_like(x, 0.5)


@register_solver
@dataclass
class TuneShrink(Solver):
    """Back-projection pulled towards mid-grey by `weight`; NaN for weights above `nan_above`."""

    name = "tune-shrink"
    weight: float = param(0.5, range=UNIT, tune=Tune(0, 1))
    nan_above: float = param(2.0, range=NON_NEGATIVE)

    def solve(self, y, op, model, generators):
        out = _shrink(y, op, self.weight)
        return torch.full_like(out, float("nan")) if self.weight > self.nan_above else out


@register_solver
@dataclass
class TunePeer(Solver):
    """tune-shrink that waits, at each call, until two processes have called it."""

    name = "tune-peer"
    weight: float = param(0.5, range=UNIT, tune=Tune(0, 1))

    def solve(self, y, op, model, generators):
        folder = Path(os.environ["IPBENCH_TUNE_PEERS"])
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + PEER_TIMEOUT_SECONDS
        while len(list(folder.iterdir())) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("no second worker called tune-peer")
            time.sleep(0.05)
        return _shrink(y, op, self.weight)


@register_solver
@dataclass
class TuneInterrupt(Solver):
    """tune-shrink that raises KeyboardInterrupt at call INTERRUPT_AT["call"] (counted from 0)."""

    name = "tune-interrupt"
    weight: float = param(0.5, range=UNIT, tune=Tune(0, 1))

    def solve(self, y, op, model, generators):
        call = INTERRUPT_AT["calls"]
        INTERRUPT_AT["calls"] += 1
        if call == INTERRUPT_AT["call"]:
            raise KeyboardInterrupt
        return _shrink(y, op, self.weight)


@register_solver
@dataclass
class TuneGated(Solver):
    """tune-shrink whose calls after the first in a process wait until the file `gate` exists (to hold a
    worker mid-trial until the test kills it)."""

    name = "tune-gated"
    weight: float = param(0.5, range=UNIT, tune=Tune(0, 1))
    gate: str = ""
    calls = {"n": 0}

    def solve(self, y, op, model, generators):
        TuneGated.calls["n"] += 1
        deadline = time.monotonic() + PEER_TIMEOUT_SECONDS
        while self.gate and TuneGated.calls["n"] > 1 and not Path(self.gate).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {self.gate} was never opened")
            time.sleep(0.02)
        return _shrink(y, op, self.weight)
