"""The KL autoencoder's architecture and loss weight (`KLAutoencoderConfig`, stored in its checkpoints) and the
bounds it is checked against before anything is built: `bench train --autoencoder` options and a checkpoint's
declared fields alike, so that a side the strided convolutions cannot halve, a latent the latent UNet cannot take
or an absurd width is one line naming the field, never a shape error deep in a forward pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ipbench.models.base import MAX_IMAGE_CHANNELS, image_shape_problem
from ipbench.models.unet_config import MAX_LEVELS, MAX_RES_BLOCKS, MAX_WIDTH

# The latent is what a latent UNet models as its image, so its channels are bounded as a UNet's image channels are.
MAX_LATENT_CHANNELS = MAX_IMAGE_CHANNELS
MAX_LATENT_SCALE = 1e6


@dataclass
class KLAutoencoderConfig:
    """Architecture of a KLAutoencoder, its training's KL weight and its latent scale (stored in its checkpoint).

    `channel_mult` gives one level per entry; each level after the first halves the sides, so the latent is
    (latent_channels, H / 2^(levels - 1), W / 2^(levels - 1)): 4 x 8 x 8 for 1 x 32 x 32 with three levels, LDM's
    KL-f4 (Rombach et al. 2022, table 8: downsampling factor f = 4, c = 4 latent channels). `kl_weight` is the
    weight of the KL term in the training loss (training/objectives.py). `latent_scale` multiplies the posterior mean
    in `encode`: 1 / the std of the training images' latents, measured after training (LDM's scale factor, sec. 4.3.2
    and appendix G), so that latent diffusion sees latents of unit variance; 1.0 until measured.
    """

    image_shape: tuple[int, int, int] = (1, 32, 32)
    latent_channels: int = 4
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    kl_weight: float = 1e-6
    latent_scale: float = 1.0
    extra: dict = field(default_factory=dict)  # free-form notes (training data, ...)

    @classmethod
    def from_dict(cls, data: dict) -> "KLAutoencoderConfig":
        data = dict(data)
        for key in ("image_shape", "channel_mult"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        step = 2 ** (len(self.channel_mult) - 1)
        return (self.latent_channels, self.image_shape[1] // step, self.image_shape[2] // step)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def field_problem(cfg: KLAutoencoderConfig) -> tuple[str, str] | None:
    """(field, what is wrong with it) for the first field out of bounds, or None; the levels are checked before the
    sides they must divide."""
    shape = cfg.image_shape
    problem = image_shape_problem(shape)
    if problem is not None:
        return problem
    if not _is_int(cfg.latent_channels) or not 1 <= cfg.latent_channels <= MAX_LATENT_CHANNELS:
        return "latent_channels", (f"must be an integer in 1..{MAX_LATENT_CHANNELS} (the image channels a latent "
                                   "UNet takes)")
    if not _is_int(cfg.channels) or not 1 <= cfg.channels <= MAX_WIDTH:
        return "channels", f"must be an integer in 1..{MAX_WIDTH}"
    mult = cfg.channel_mult
    if not isinstance(mult, tuple) or not mult or not all(_is_int(m) and 1 <= m <= MAX_WIDTH for m in mult):
        return "channel_mult", f"must be 1 to {MAX_LEVELS} positive integers, one per level, e.g. 1,2,2"
    if len(mult) > MAX_LEVELS:
        return "channel_mult", f"has {len(mult)} levels; at most {MAX_LEVELS}"
    for width in (cfg.channels, *(cfg.channels * m for m in mult)):
        if width > MAX_WIDTH or width % min(8, width):  # GroupNorm(min(8, width), width) needs whole groups
            return "channels", (f"gives a level {width} channels wide (channels {cfg.channels} x multiplier); each "
                                f"level's width must be at most {MAX_WIDTH} and a multiple of 8 (or below 8)")
    step = 2 ** (len(mult) - 1)
    if any(s % step for s in shape[1:]):
        side = shape[1] if shape[1] % step else shape[2]
        return "image_shape", (f"has side {side}, not divisible by 2^(levels - 1) = {step} (the {len(mult)} levels "
                               f"of channel_mult halve it {len(mult) - 1} times)")
    if not _is_int(cfg.num_res_blocks) or not 1 <= cfg.num_res_blocks <= MAX_RES_BLOCKS:
        return "num_res_blocks", f"must be an integer in 1..{MAX_RES_BLOCKS}"
    if not _is_number(cfg.kl_weight) or not 0 <= cfg.kl_weight <= 1:
        return "kl_weight", "must be a number in [0, 1]"
    if not _is_number(cfg.latent_scale) or not 0 < cfg.latent_scale <= MAX_LATENT_SCALE:
        return "latent_scale", f"must be a number in (0, {MAX_LATENT_SCALE:g}]"
    if not isinstance(cfg.extra, dict):
        return "extra", "must be a dict"
    return None
