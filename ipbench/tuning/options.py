"""What `bench tune` is asked, and the choices its options take (free of torch and optuna, for the CLI)."""
from __future__ import annotations

from dataclasses import dataclass, field

OBJECTIVES = ("psnr", "ssim", "lpips")  # per-image metrics every row has
PRUNERS = ("median", "halving", "none")
DEFAULT_NUM_IMAGES = 16
DEFAULT_RUNGS = 3


@dataclass
class TuneOptions:
    """The options of one `bench tune` (None: the default)."""

    budget: int
    solvers: list[str] = field(default_factory=list)
    operators: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    config: str | None = None
    images: str | None = None
    num_images: int = DEFAULT_NUM_IMAGES
    seeds: list[int] | None = None
    objective: str = "psnr"
    space: list[str] = field(default_factory=list)
    out: str | None = None
    model: str | None = None
    batch_size: int = 8
    sampler_seed: int = 0
    pruner: str = "median"
    rungs: int = DEFAULT_RUNGS
    command: str | None = None
