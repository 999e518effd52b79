"""One writer per rows file: a lock beside it (`rows.jsonl.lock`, `rows.shard-K-of-N.jsonl.lock`).

Two processes appending to one rows file would compute the same rows twice and interleave them. While a
run writes, its lock file holds the writer's host, pid and start time. It is created the way that stays
atomic on NFS: written whole under a unique name, then hard-linked to the lock's name, which fails if
the lock exists. A lock is stale, and is taken over, when its pid is gone on this host, or when its
heartbeat (the file's mtime, touched every `HEARTBEAT_SECONDS` by the holder) is older than
`STALE_SECONDS` (a holder on another host, or one that froze). Taking over renames the stale lock away
first, so of two processes that find it stale only one succeeds. A lock file that is not one ipbench writes
(damaged JSON, a pid that is not a positive integer) follows the heartbeat rule: taken over once its mtime
is older than `STALE_SECONDS`, before that a one-line error naming it.
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
from ipbench.json_files import STRING, DamagedFile, check_fields, integer, read_json

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0  # twenty missed heartbeats: the holder is dead or hung
PID_MAX = 2**31 - 1  # pid_t; a larger number cannot name a process (and overflows os.kill)
LOCK_FIELDS = {"host": STRING, "pid": integer(1, PID_MAX), "started": STRING}
LOCK_OPTIONAL = {"rows_at_start": integer(0)}
LOCK_REMEDY = (f"delete it if no `bench run` is writing this folder (a damaged lock is taken over once it is "
               f"{STALE_SECONDS:.0f} s old)")


def lock_path(rows_path: Path) -> Path:
    return rows_path.with_name(rows_path.name + ".lock")


def read_holder(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """The holder a lock file names (with its heartbeat, the file's mtime), or None if there is no lock (or it
    vanished while being read). A damaged lock is a DamagedFile error while its heartbeat is fresh; once
    that is stale it is returned as a holder that names no process, so `is_stale` lets it be taken over."""
    try:
        heartbeat = path.stat().st_mtime
        holder = read_json(path, LOCK_REMEDY)
        check_fields(holder, path, LOCK_FIELDS, LOCK_REMEDY, LOCK_OPTIONAL)
    except FileNotFoundError:
        return None
    except DamagedFile:
        if (time.time() if now is None else now) - heartbeat <= STALE_SECONDS:
            raise
        return {"heartbeat": heartbeat, "damaged": True}
    return {**holder, "heartbeat": heartbeat}


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
    if holder.get("host") == socket.gethostname() and "pid" in holder:  # read_holder checked the pid
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
        try:
            holder = read_holder(self.path)
        except DamagedFile:  # not ours any more: someone else wrote it; leave it to them
            return
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
