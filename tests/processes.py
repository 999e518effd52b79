"""A child process whose lifetime the test decides, for lock holders that must be alive (or dead) when checked."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
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
