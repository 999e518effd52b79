"""Splitting one run over several processes (`bench run --shard K/N`), e.g. one per GPU.

Every shard runs the same spec into the same run folder on its own share of the images, and appends
its rows to its own file (rows.shard-K-of-N.jsonl), so that no two processes write one file. Image i of
the run belongs to shard i mod N: shares differ by at most one image and each holds early and late ids.
The rows do not depend on the split: measurements and solver draws are seeded per image (seeding.py).

K/N can also come from the launcher (`--shard auto`, and by default where its variables are set): torchrun,
a SLURM job array or SLURM tasks (`shard_from_environment`). Shards never talk to each other; they meet in
the run folder's files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ipbench.errors import UsageError


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'1/4' -> Shard(1, 4); a one-line UsageError for anything else."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise UsageError(f"--shard {text!r}: write K/N, e.g. 0/4 for the first of four shards")
        index, count = int(match[1]), int(match[2])
        if count < 1 or index >= count:
            raise UsageError(f"--shard {text}: K must be in 0..N-1 and N >= 1 (e.g. 0/{max(count, 2)} .. "
                             f"{max(count, 2) - 1}/{max(count, 2)})")
        return cls(index, count)

    def positions(self, num_images: int) -> list[int]:
        """Positions (in the run's image order) of this shard's images."""
        return list(range(self.index, num_images, self.count))

    @property
    def rows_file(self) -> str:
        return f"rows.shard-{self.index}-of-{self.count}.jsonl"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# What the launchers set: torchrun (and torch.distributed.run), SLURM job arrays, SLURM tasks (srun).
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
                      "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID", "SLURM_NTASKS",
                      "SLURM_LOCALID")


@dataclass(frozen=True)
class LaunchedShard:
    """The shard a launcher's environment gives this process, how it was found, and the process's index
    among those on its node (its GPU), where the launcher says."""

    shard: Shard
    source: str
    local_rank: int | None


def _integer(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None:
        if default is None:
            raise UsageError(f"--shard auto: {name} is not set (it comes with the other launcher variables)")
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--shard auto: {name}={text!r} is not an integer") from None


def shard_from_environment(env: Mapping[str, str]) -> LaunchedShard | None:
    """The shard that torchrun, a SLURM array or SLURM tasks assign to this process, or None where none of
    them is set or they describe a single process.

    Within one process group the index is torchrun's RANK of WORLD_SIZE, else SLURM_PROCID of SLURM_NTASKS
    (not both: torchrun started by srun already counts every node's processes in RANK). A SLURM array adds an
    outer level, (SLURM_ARRAY_TASK_ID - MIN) / STEP of SLURM_ARRAY_TASK_COUNT, so an array of multi-process
    jobs gives shard outer * inner_count + inner of outer_count * inner_count."""
    if "RANK" in env and "WORLD_SIZE" in env:
        inner, inner_count = _integer(env, "RANK"), _integer(env, "WORLD_SIZE")
        local = _integer(env, "LOCAL_RANK") if "LOCAL_RANK" in env else None
        inner_source = f"torchrun (RANK={inner}, WORLD_SIZE={inner_count})"
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        inner, inner_count = _integer(env, "SLURM_PROCID"), _integer(env, "SLURM_NTASKS")
        local = _integer(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else None
        inner_source = f"SLURM tasks (SLURM_PROCID={inner}, SLURM_NTASKS={inner_count})"
    else:
        inner, inner_count, local, inner_source = 0, 1, None, ""
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        task, first = _integer(env, "SLURM_ARRAY_TASK_ID"), _integer(env, "SLURM_ARRAY_TASK_MIN", 0)
        step, outer_count = _integer(env, "SLURM_ARRAY_TASK_STEP", 1), _integer(env, "SLURM_ARRAY_TASK_COUNT")
        outer = (task - first) // max(step, 1)
        if (task - first) % max(step, 1) or not 0 <= outer < outer_count:
            raise UsageError(f"--shard auto: SLURM array task {task} is not one of {outer_count} evenly spaced tasks "
                             f"from {first} (step {step}); submit the array as --array=0-{outer_count - 1}")
        outer_source = (f"SLURM array (SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_MIN={first}, "
                        f"SLURM_ARRAY_TASK_COUNT={outer_count})")
    else:
        outer, outer_count, outer_source = 0, 1, ""
    if not 0 <= inner < inner_count:
        raise UsageError(f"--shard auto: {inner_source}: the rank must be in 0..{inner_count - 1}")
    count = outer_count * inner_count
    if count == 1:
        return None
    source = " x ".join(s for s in (outer_source, inner_source) if s)
    return LaunchedShard(Shard(outer * inner_count + inner, count), source, local)
