"""Rungs: the images a trial is scored on before the pruner may stop it, as shards of one ordinary run.

A trial's run has all M tuning images; it is computed as S = 2^(R - 1) shards (`--shard K/S` of `bench run`:
image i belongs to shard i mod S). Rung 0 is shard 0, rung j >= 1 adds shards 2^(j-1) .. 2^j - 1, so the
rungs see about M/S, 2M/S, 4M/S, ..., M images, each a spread of the ids, and every trial's rung j holds the
same images (the pruner compares like with like). After each rung but the last the trial reports its mean
to the pruner, which may stop it there. A pruned trial's folder is a run with its later shards missing;
a complete one is a whole run. R is cut where a shard would hold no image (R = 1 for M = 1: no pruning).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RungPlan:
    """`rungs` rungs over `num_images` images, as `shards` shards."""

    num_images: int
    rungs: int

    @property
    def shards(self) -> int:
        return 2 ** (self.rungs - 1)

    def rung_shards(self) -> list[list[int]]:
        """The shard indices each rung adds."""
        return [[0]] + [list(range(2 ** (j - 1), 2 ** j)) for j in range(1, self.rungs)]

    def positions(self, rung: int) -> list[int]:
        """The positions (in the run's image order) that the first `rung` + 1 rungs hold together: those of
        shards 0 .. 2^rung - 1."""
        return [i for i in range(self.num_images) if i % self.shards < 2 ** rung]

    def images_after(self, rung: int) -> int:
        """How many images the first `rung` + 1 rungs hold together."""
        return len(self.positions(rung))

    def describe(self) -> str:
        if self.rungs == 1:
            return f"one rung of {self.num_images} images (no pruning)"
        sizes = ", ".join(str(self.images_after(j)) for j in range(self.rungs))
        return f"rungs of {sizes} images"


def plan(num_images: int, rungs: int) -> RungPlan:
    """At most `rungs` rungs, fewer where M images do not fill every shard."""
    most = int(math.floor(math.log2(num_images))) + 1 if num_images >= 1 else 1
    return RungPlan(num_images, max(1, min(rungs, most)))
