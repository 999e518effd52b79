"""Inpainting operators: a box hole, random pixels, or a user's mask (deepinv `Inpainting`).

Masks are per pixel and shared by the channels; 1 = observed. Defaults follow the DPS paper
(Chung et al. 2023, sec. 4): a 128 x 128 box centred on 256 x 256 images, i.e. half the side, and
random inpainting with 70% of the pixels dropped.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from deepinv.physics import Inpainting
from PIL import Image, UnidentifiedImageError

from ipbench.errors import UsageError
from ipbench.imagefile import open_image
from ipbench.paths import expand_user
from ipbench.operators.base import Shape, register_operator
from ipbench.params import Range


def _inpainting(shape: Shape, masks: torch.Tensor, device: torch.device) -> Inpainting:
    return Inpainting(img_size=shape, mask=masks.to(device), device=device)


@register_operator("inpaint-box", aliases=("inpaint",), choices={"position": ("center", "random")},
                   ranges={"side": Range(0, 1, low_open=True, high_open=True)})
def inpaint_box(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                side: float = 0.5, position: str = "center") -> Inpainting:
    """A square hole of side `side` x image side, centred or at a random position."""
    if not 0 < side < 1:
        raise UsageError(f"operator inpaint-box.side={side}: must be a fraction of the image side in (0, 1)")
    _, height, width = shape
    box = max(1, round(side * min(height, width)))
    masks = torch.ones(len(generators), 1, height, width)
    for i, g in enumerate(generators):
        if position == "center":
            top, left = (height - box) // 2, (width - box) // 2
        else:  # drawn from the measurement generator, so every solver sees the same hole
            top = int(torch.randint(0, height - box + 1, (1,), generator=g, device=g.device))
            left = int(torch.randint(0, width - box + 1, (1,), generator=g, device=g.device))
        masks[i, :, top:top + box, left:left + box] = 0
    return _inpainting(shape, masks, device)


@register_operator("inpaint-random", ranges={"p": Range(0, 1, high_open=True)})
def inpaint_random(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                   p: float = 0.7) -> Inpainting:
    """Each pixel dropped independently with probability `p`."""
    if not 0 <= p < 1:
        raise UsageError(f"operator inpaint-random.p={p}: drop probability must be in [0, 1)")
    _, height, width = shape
    masks = torch.stack([(torch.rand(1, height, width, generator=g, device=g.device) >= p).float().cpu()
                         for g in generators])
    return _inpainting(shape, masks, device)


@register_operator("inpaint-mask", files=("path",))
def inpaint_mask(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                 path: str = "") -> Inpainting:
    """A mask read from an image file (white = observed), resized to the image with nearest."""
    if not path:
        raise UsageError("operator inpaint-mask needs a mask file: --param inpaint-mask.path=FILE.png")
    try:
        with open_image(expand_user(path, "operator inpaint-mask.path"), "operator inpaint-mask.path") as img:
            grey = img.convert("L").resize((shape[2], shape[1]), Image.Resampling.NEAREST)
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"operator inpaint-mask.path={path}: cannot read mask image ({exc})") from None
    mask = torch.from_numpy((np.asarray(grey) >= 128).astype(np.float32)).view(1, 1, shape[1], shape[2])
    return _inpainting(shape, mask.expand(len(generators), -1, -1, -1).clone(), device)
