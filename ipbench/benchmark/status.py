"""`bench status RUN`: how far a run (sharded or not) has got, read from its files alone.

Per rows file: the rows done of those expected (run.json's config and images give the expected keys;
shard K of N owns images K, K + N, ...), failed rows, the last write, whether a process holds its lock,
and the time left at the holder's rate since it started (rows written since then over the time since
then). The shard count comes from `submit.json` (written by `bench submit`) or from the rows and lock
files present.
"""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ipbench.benchmark.lock import is_stale, lock_path, read_holder
from ipbench.benchmark.shard import Shard
from ipbench.benchmark.submit import submitted_jobs
from ipbench.results.rows import FINAL, RowStore, read_run_json, row_key, row_keys, run_rows

_SHARD_FILE = re.compile(r"rows\.shard-(\d+)-of-(\d+)\.jsonl(?:\.lock)?")


@dataclass(frozen=True)
class PartStatus:
    """One rows file's progress: a shard's, or the whole unsharded run's (shard None)."""

    shard: Shard | None
    done: int  # expected rows that are ok or skipped (in any rows file)
    expected: int
    failed: int  # expected rows whose last attempt failed
    last_write: float | None  # the rows file's mtime, seconds since the epoch
    holder: dict[str, Any] | None  # the lock's holder, if a live process holds it
    seconds_left: float | None  # at the holder's rate; None when not running or not yet measurable

    @property
    def label(self) -> str:
        return "run" if self.shard is None else f"shard {self.shard}"

    @property
    def state(self) -> str:
        if self.holder is not None:  # even with every row done: it may be writing the tables and grids
            return "running"
        if self.done >= self.expected:
            return "done"
        return "stopped" if self.last_write is not None else "not started"


@dataclass(frozen=True)
class RunStatus:
    parts: list[PartStatus]
    tables_current: bool  # table.md exists and is newer than every rows file, no row is missing, nobody writes

    @property
    def running(self) -> bool:
        """Whether a live process holds a rows file's lock (it may still add rows or rewrite the tables)."""
        return any(p.holder is not None for p in self.parts)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.parts)

    @property
    def expected(self) -> int:
        return sum(p.expected for p in self.parts)


def shard_count(run_dir: Path) -> int | None:
    """N of the run's shards: from submit.json, else from the shard rows and lock files; None if unsharded."""
    submitted = submitted_jobs(run_dir)
    if submitted is not None:
        return submitted
    counts = {int(m[2]) for f in run_dir.iterdir() if (m := _SHARD_FILE.fullmatch(f.name))}
    return max(counts) if counts else None  # several N: a later split; report the largest


def run_status(run_dir: str | Path, now: float | None = None) -> RunStatus:
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    meta = read_run_json(run_dir)
    ids = list(meta["images"]["ids"])
    rows = run_rows(run_dir)
    final = {row_key(r) for r in rows if r.get("status") in FINAL}
    failed = {row_key(r) for r in rows if r.get("status") not in FINAL}
    count = shard_count(run_dir)
    shards = [None] if count is None else [Shard(k, count) for k in range(count)]
    parts = []
    for shard in shards:
        mine = ids if shard is None else [ids[i] for i in shard.positions(len(ids))]
        expected = row_keys(meta["config"], mine)
        rows_file = run_dir / ("rows.jsonl" if shard is None else shard.rows_file)
        holder = read_holder(lock_path(rows_file), now)
        if holder is not None and is_stale(holder, now):
            holder = None
        done = len(expected & final)
        parts.append(PartStatus(shard, done, len(expected), len((expected & failed) - final),
                                rows_file.stat().st_mtime if rows_file.exists() else None, holder,
                                _seconds_left(holder, rows_file, len(expected) - done, now)))
    tables = run_dir / "table.md"
    newest_rows = max((f.stat().st_mtime for f in run_dir.glob("rows*.jsonl")), default=0.0)
    status = RunStatus(parts, False)
    current = (tables.exists() and tables.stat().st_mtime >= newest_rows and status.done >= status.expected
               and not status.running)  # a live writer may still add rows or be rewriting the tables
    return dataclasses.replace(status, tables_current=current)


def _seconds_left(holder: dict[str, Any] | None, rows_file: Path, remaining: int, now: float) -> float | None:
    """Remaining rows at the rate the holder has written since it took the lock."""
    if holder is None or remaining <= 0:
        return None
    try:
        started = datetime.fromisoformat(holder["started"]).timestamp()
    except (KeyError, ValueError, TypeError):
        return None
    written = len(RowStore(rows_file).read()) - int(holder.get("rows_at_start", 0))
    return remaining * (now - started) / written if written > 0 and now > started else None


def format_status(run_dir: str | Path, status: RunStatus) -> str:
    """The status as lines: one per part, then the total and the state of the tables."""
    lines = [f"{run_dir}:"]
    for p in status.parts:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.last_write)) if p.last_write else "-"
        left = f", about {_duration(p.seconds_left)} left" if p.seconds_left is not None else ""
        held = f" by pid {p.holder.get('pid')} on {p.holder.get('host')}" if p.holder else ""
        lines.append(f"  {p.label}: {p.done}/{p.expected} rows, {p.failed} failed, last write {when}; "
                     f"{p.state}{held}{left}")
    tables = ("run in progress: tables are written when it finishes" if status.running
              else "tables up to date" if status.tables_current
              else "tables not written for all rows yet (bench table RUN when done)" if status.done < status.expected
              else "tables older than the rows or missing: bench table RUN")
    lines.append(f"  total: {status.done}/{status.expected} rows; {tables}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"
