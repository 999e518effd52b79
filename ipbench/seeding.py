"""Per-image generators seeded from names, never from global state (docs/architecture.md, Conventions).

Measurement randomness comes from (seed, image id, operator) so that every solver sees the same y;
solver randomness from (seed, image id, operator, solver). Hashing the names (not their positions)
makes a result independent of batch size, order, sharding and of which other solvers ran.

With `seeding="common"` the solver's name is left out: every solver of a run starts from the same stream
per (seed, image, operator), so those that draw x_T ~ N(0, I) first share x_T (common random numbers).
The paired difference of two solvers then no longer carries the variance of two independent starts.
"""
from __future__ import annotations

import hashlib

import torch

from ipbench.errors import UsageError


def seed_for(*parts: object) -> int:
    """A 63-bit seed from the string forms of `parts` (stable across runs, machines and Pythons)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def measurement_generator(seed: int, image: str, operator: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed_for("measurement", seed, image, operator))


SEEDINGS = ("independent", "common")  # of solver draws: one stream per solver, or one shared by all solvers


def solver_generator(seed: int, image: str, operator: str, solver: str, device: torch.device | str = "cpu",
                     seeding: str = "independent", sample: int = 0) -> torch.Generator:
    """The generator of one solver's draws on one image; under `common` seeding the same for every solver.
    `sample` k > 0 is the k-th further posterior draw on the same measurement (`bench run --samples`): its own
    stream, while sample 0 is the stream of a run without samples, so adding samples keeps the rows there are."""
    if seeding not in SEEDINGS:
        raise UsageError(f"seeding {seeding!r}: valid: {', '.join(SEEDINGS)}")
    parts = ("solver", seed, image, operator) + ((solver,) if seeding == "independent" else ()) + \
        (("sample", sample) if sample else ())
    return torch.Generator(device=device).manual_seed(seed_for(*parts))


def seeding_convention(seeding: str) -> str:
    """How a run's generators are seeded, as run.json records it."""
    solver = "sha256(seed, image, operator, solver)" if seeding == "independent" else \
        "sha256(seed, image, operator), the same for every solver (common random numbers)"
    return (f"{seeding}: measurement: sha256(seed, image, operator); solver: {solver}, with the draw k appended for "
            "draws k > 0 (--samples); one generator per image")
