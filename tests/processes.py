"""Child processes for the tests: one whose lifetime the test decides (for lock holders that must be alive or dead when checked), and polling for a state a test holds a process in."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def live_process() -> Iterator[int]:
    """The pid of a process that lives until the `with` block ends (it waits on its stdin, closed then), however
    long the block takes: unlike a sleeping child, it cannot die before the test looks."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def wait_for(condition: Callable[[], object], timeout: float = 300.0) -> None:
    """Poll for a state a test holds a process in (not a moment it hopes to catch): the timeout only turns a
    broken test into a failure."""
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)
