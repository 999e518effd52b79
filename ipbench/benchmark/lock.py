"""One writer per rows file: a lock beside it (`rows.jsonl.lock`, `rows.shard-K-of-N.jsonl.lock`).

Two processes appending to one rows file would compute the same rows twice and interleave them. While a
run writes, its lock file holds the writer's host, pid and start time. It is created the way that stays
atomic on NFS: written whole under a unique name, then hard-linked to the lock's name, which fails if
the lock exists. A lock is stale, and is taken over, when its pid is gone on this host, or when its
heartbeat (the file's mtime, touched every `HEARTBEAT_SECONDS` by the holder) is older than
`STALE_SECONDS` (a holder on another host, or one that froze). Taking over renames the stale lock away
first, so of two processes that find it stale only one succeeds.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ipbench.errors import UsageError

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0  # twenty missed heartbeats: the holder is dead or hung


def lock_path(rows_path: Path) -> Path:
    return rows_path.with_name(rows_path.name + ".lock")


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder a lock file names, or None if there is no lock (or it vanished while being read)."""
    try:
        holder = json.loads(path.read_text())
        holder["heartbeat"] = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {"host": "?", "pid": -1, "started": "?", "heartbeat": _mtime(path)}
    return holder


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(holder: dict[str, Any], now: float | None = None) -> bool:
    """Whether the lock's holder is gone: its pid is dead on this host, or its heartbeat is too old."""
    now = time.time() if now is None else now
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) and holder["pid"] > 0:
        if holder["pid"] == os.getpid() or not _pid_alive(holder["pid"]):
            return True
    return now - float(holder.get("heartbeat", 0.0)) > STALE_SECONDS


def describe(holder: dict[str, Any]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


class RowsLock:
    """`with RowsLock(rows_path, label):` holds the rows file's lock, or raises a one-line UsageError naming
    the process that holds it. The lock is released on exit and kept fresh by a heartbeat thread."""

    def __init__(self, rows_path: Path, label: str, rows_at_start: int = 0) -> None:
        self.path = lock_path(rows_path)
        self.label = label
        self.rows_at_start = rows_at_start
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> RowsLock:
        mine = {"host": socket.gethostname(), "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows_at_start": self.rows_at_start}
        for _ in range(5):  # each pass either takes the lock, takes over a stale one, or refuses
            if self._create(mine):
                self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="ipbench-lock-heartbeat")
                self._beat.start()
                return self
            holder = read_holder(self.path)
            if holder is None:
                continue  # released between our attempt and the read
            if not is_stale(holder):
                raise UsageError(f"{self.path.parent}: {self.label} is being written by {describe(holder)} (lock "
                                 f"{self.path.name}); wait for it to finish, or delete the lock if that process is gone")
            aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex}")
            try:
                os.rename(self.path, aside)  # only one of several takers gets here
                aside.unlink()
            except FileNotFoundError:
                pass  # someone else took it over: try again
        raise UsageError(f"{self.path}: could not take the lock (it keeps changing hands); try again")

    def _create(self, content: dict[str, Any]) -> bool:
        temporary = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(content) + "\n")
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        holder = read_holder(self.path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
