"""Writing a run's files off the solver's critical path: one background thread, the same files on disk.

Encoding a 256 px PNG costs more than a short solve, and zlib releases the GIL, so the encoding of one
batch overlaps the next batch's solve. Jobs run in the order they were submitted, so a batch's rows are
appended only after its images are written: a run stopped in between never has rows without images.
Tensors are copied to the CPU when queued (a solver may reuse its buffers). A failed write is raised by
the next submission or by `close`; `close` (and leaving a `with` block, also on an error or Ctrl-C)
waits for every queued job, so nothing computed is lost.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

from torch import Tensor

from ipbench.data import save_png


class BackgroundWriter:
    """Runs submitted write jobs one by one in a background thread; a context manager."""

    def __init__(self, max_pending: int = 256) -> None:
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue(maxsize=max_pending)
        self._queued_paths: set[Path] = set()  # PNGs written or waiting: `png_once` never queues a path twice
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="ipbench-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:  # after a failure, drain without writing: the caller is told
                try:
                    job[0](*job[1])
                except BaseException as exc:  # noqa: BLE001  (handed over to the caller's thread)
                    self._error = exc

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` after every job submitted before it."""
        self._raise_pending_error()
        self._jobs.put((fn, args))

    def png(self, image: Tensor, path: Path, text: dict[str, str] | None = None) -> None:
        """Save `image` (C, H, W in [0, 1]) at `path` with `save_png` (and its `text` chunks)."""
        self._queued_paths.add(path)
        self.submit(save_png, image.detach().to("cpu", copy=True), path, text)

    def png_once(self, image: Tensor, path: Path) -> None:
        """`png` unless `path` is queued already or holds a file (truth and measurement images); an empty
        file, which only a crash in a version without atomic writes could leave, is written again."""
        if path not in self._queued_paths and not (path.is_file() and path.stat().st_size > 0):
            self.png(image, path)

    def close(self) -> None:
        """Wait for every queued job; raise the first error, if any."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise_pending_error()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if error is None:
            self.close()
            return
        try:  # an error is already on its way: finish what was queued before it, keep that error
            self.close()
        except Exception:  # noqa: BLE001
            pass
