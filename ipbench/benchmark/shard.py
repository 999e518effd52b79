"""Splitting one run over several processes (`bench run --shard K/N`), e.g. one per GPU.

Every shard runs the same spec into the same run folder on its own share of the images, and appends
its rows to its own file (rows.shard-K-of-N.jsonl), so that no two processes write one file. Image i of
the run belongs to shard i mod N: shares differ by at most one image and each holds early and late ids.
The rows do not depend on the split: measurements and solver draws are seeded per image (seeding.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
