"""A solver that waits for the test's word, to hold a run mid-way (and its rows lock) for as long as a test needs:
its first call in a process returns at once, every later one waits until the file `gate` exists."""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ipbench import Solver, register_solver
from ipbench.operators import back_project

GATE_TIMEOUT = 600.0  # seconds: a gate never opened is a broken test, not a hung one


@register_solver
@dataclass
class Gated(Solver):
    """Back-projection; after its first call, waits for the file `gate` (empty: never waits)."""

    name = "gated"
    gate: str = ""
    calls: ClassVar[int] = 0

    def solve(self, y, op, model, generators):
        Gated.calls += 1
        deadline = time.monotonic() + GATE_TIMEOUT
        while self.gate and Gated.calls > 1 and not Path(self.gate).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {self.gate} was never opened")
            time.sleep(0.02)
        return back_project(op, y)
