"""Per-image generators seeded from names, never from global state (docs/architecture.md, Conventions).

Measurement randomness comes from (seed, image id, operator) so that every solver sees the same y;
solver randomness from (seed, image id, operator, solver). Hashing the names (not their positions)
makes a result independent of batch size, order, sharding and of which other solvers ran.
"""
from __future__ import annotations

import hashlib

import torch


def seed_for(*parts: object) -> int:
    """A 63-bit seed from the string forms of `parts` (stable across runs, machines and Pythons)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def measurement_generator(seed: int, image: str, operator: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed_for("measurement", seed, image, operator))


def solver_generator(seed: int, image: str, operator: str, solver: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed_for("solver", seed, image, operator, solver))
