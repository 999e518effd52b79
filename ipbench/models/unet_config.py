"""The UNet's architecture and schedule (`UNetConfig`, stored in its checkpoints) and the bounds it is checked
against before anything is built: `bench train` options and a checkpoint's declared fields alike, so that a
resolution the strided convolutions cannot halve, an attention resolution that never occurs, an empty channel
list or an absurd width is one line naming the field, never a shape error deep in a forward pass or an
attempt to allocate gigabytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ipbench.models.base import MAX_SIDE, MAX_TIMESTEPS, image_shape_problem

MAX_WIDTH = 2048  # channels x channel_mult of any level
MAX_LEVELS = 8
MAX_RES_BLOCKS = 8
MAX_CLASSES = 100_000  # ImageNet's 1,000 with room; an embedding row each
MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights (the FFHQ 256 DDPM has 93 M)


@dataclass
class UNetConfig:
    """Architecture and schedule of a UNetScoreModel (stored in its checkpoint)."""

    image_shape: tuple[int, int, int] = (1, 32, 32)
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8,)
    dropout: float = 0.1
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    num_classes: int = 0  # > 0: a class-conditional UNet (a label embedding, plus a null label for guidance)
    extra: dict = field(default_factory=dict)  # free-form notes (training data, ...)

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        data = dict(data)
        for key in ("image_shape", "channel_mult", "attention_resolutions"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    def resolutions(self) -> list[int]:
        """The feature-map heights of the levels: the image's, halved once per level below the first."""
        return [self.image_shape[1] // 2**level for level in range(len(self.channel_mult))]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ints_problem(values: Any, low: int, high: int) -> str | None:
    if not isinstance(values, tuple) or not all(_is_int(v) for v in values):
        return "must be a list of integers"
    bad = next((v for v in values if not low <= v <= high), None)
    return None if bad is None else f"has {bad}; each must be in {low}..{high}"


def field_problem(cfg: UNetConfig) -> tuple[str, str] | None:
    """(field, what is wrong with it) for the first field out of bounds, or None. Fields are checked in the
    order a later check relies on: channel_mult's levels before the resolution they must divide."""
    shape = cfg.image_shape
    problem = image_shape_problem(shape)
    if problem is not None:
        return problem
    if not _is_int(cfg.channels) or not 1 <= cfg.channels <= MAX_WIDTH:
        return "channels", f"must be an integer in 1..{MAX_WIDTH}"
    mult = cfg.channel_mult
    if isinstance(mult, tuple) and not mult:
        return "channel_mult", "is empty; give one positive integer per level, e.g. 1,2,2"
    problem = _ints_problem(mult, 1, MAX_WIDTH)
    if problem:
        return "channel_mult", f"{problem} (one positive integer per level, e.g. 1,2,2)"
    if len(mult) > MAX_LEVELS:
        return "channel_mult", f"has {len(mult)} levels; at most {MAX_LEVELS}"
    if cfg.channels % min(8, cfg.channels):  # GroupNorm(min(8, width), width) needs whole groups
        return "channels", "is not a multiple of 8 (nor below 8), which the group norms need"
    for width in (cfg.channels * m for m in mult):
        if width > MAX_WIDTH or width % min(8, width):
            return "channel_mult", (f"gives a level {width} channels wide (channels {cfg.channels} x multiplier); "
                                    f"each level's width must be at most {MAX_WIDTH} and a multiple of 8 (or below 8)")
    step = 2 ** (len(mult) - 1)
    if any(s % step for s in shape[1:]):
        side = shape[1] if shape[1] % step else shape[2]
        lower, higher = side // step * step, (side // step + 1) * step
        return "image_shape", (f"has side {side}, not divisible by 2^(levels - 1) = {step} (the "
                               f"{len(mult)} levels of channel_mult halve it {len(mult) - 1} times); e.g. "
                               f"{' or '.join(str(s) for s in (lower, higher) if s > 0)}")
    problem = _ints_problem(cfg.attention_resolutions, 1, MAX_SIDE)
    if problem:
        return "attention_resolutions", problem
    never = [r for r in cfg.attention_resolutions if r not in cfg.resolutions()]
    if never:
        return "attention_resolutions", (f"has {never[0]}, a resolution that never occurs; the levels are "
                                         f"{', '.join(str(r) for r in cfg.resolutions())} px (or none)")
    if not _is_int(cfg.num_res_blocks) or not 1 <= cfg.num_res_blocks <= MAX_RES_BLOCKS:
        return "num_res_blocks", f"must be an integer in 1..{MAX_RES_BLOCKS}"
    if not isinstance(cfg.dropout, (int, float)) or not 0 <= cfg.dropout < 1:
        return "dropout", "must be a number in [0, 1)"
    if not _is_int(cfg.num_timesteps) or not 1 <= cfg.num_timesteps <= MAX_TIMESTEPS:
        return "num_timesteps", f"must be an integer in 1..{MAX_TIMESTEPS}"
    betas = (cfg.beta_start, cfg.beta_end)
    if not all(isinstance(b, (int, float)) and math.isfinite(b) for b in betas) or not 0 < betas[0] <= betas[1] < 1:
        return "beta_start", f"must be in (0, beta_end] with beta_end = {cfg.beta_end!r} < 1"
    if not _is_int(cfg.num_classes) or not 0 <= cfg.num_classes <= MAX_CLASSES:
        return "num_classes", f"must be an integer in 0..{MAX_CLASSES} (0: unconditional)"
    if not isinstance(cfg.extra, dict):
        return "extra", "must be a dict"
    return None
