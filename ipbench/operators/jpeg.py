"""JPEG compression: the image encoded at quality q and decoded again (docs/operators.md has the details).

    y = D(E(Q(x), q)) + sigma_y n,    Q(x) = round(255 clip(x, 0, 1)) / 255 (the 8-bit samples a JPEG file codes),

E and D baseline JPEG with libjpeg's tables at quality q (1..100), decoded to 8 bits: a 1-channel image as a
greyscale JPEG (luma only), a 3-channel one as YCbCr with 4:2:0 chroma subsampling; y has the image's shape.
RED-diff (NVlabs/RED-diff at 66482f2) poses JPEG restoration as y = decode(encode(x, qf))
(utils/degredations.py:512-520) at quality 10 by default (utils/jpeg_torch.py:110, 155; the degradation name
`jpegQF` sets it, degredations.py:752-754), and starts from H_pinv(y) = y (degredations.py:522-523), `A_dagger` here.
Its codec takes its [-1, 1] data (utils/functions.py:16-17) as (x + 1) / 2 * 255 (jpeg_torch.py:114): 255 x in image
units, the same.

A's value is Pillow's JPEG (libjpeg-turbo), image by image on the CPU: what a JPEG file of the image would decode
to, identical to torchvision.io's libjpeg-turbo and, on greyscale images, 0.08 grey levels on average from RED-diff's
codec with 8-bit output at quality 10 (results/jpeg_agreement.md; RED-diff's own output is not clipped to [0, 1]).
A codec is piecewise constant in x, with derivative 0 almost everywhere, so A's derivative (autograd: DPS, DAPS,
RED-diff) is that of kornia's differentiable JPEG (`jpeg_codec_differentiable`, Reich et al. 2024; its rounding is
r + (u - r)^3, Shin and Song 2017): a straight-through pairing of the exact value with a smooth codec's Jacobian.
kornia's own output is not the value: it is 1.25 grey levels from Pillow's on average at quality 10 on
fashion32-test (PSNR 40.72 dB), 1.64 (39.07 dB) on the bundled photos, because its smooth rounding keeps what JPEG
discards and its tables are scaled with a smooth floor (off by up to 0.96 at quality 75). A greyscale image enters
kornia, which codes RGB, as R = G = B (its chroma is then constant and quantized away) and leaves as the channel mean.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from deepinv.physics import Physics
from PIL import Image
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import Range

MIN_QUALITY, MAX_QUALITY = 1, 100  # the IJG quality scale (libjpeg clamps 0 to 1)
CHANNELS = {1: "greyscale", 3: "RGB"}


def libjpeg_round_trip(x: Tensor, quality: int) -> Tensor:
    """D(E(Q(x), q)) by Pillow's JPEG (libjpeg-turbo), per image on the CPU, as x's dtype on x's device; an image
    with a non-finite pixel gives NaN (an 8-bit file cannot hold it, and a solver's divergence must stay visible)."""
    x = x.detach()
    pixels = (x.clamp(0, 1) * 255).round().nan_to_num(0).to("cpu", torch.uint8).numpy()
    y = torch.from_numpy(np.stack([_pillow_round_trip(image, quality) for image in pixels]))
    y = y.to(x.device, x.dtype) / 255
    finite = torch.isfinite(x).flatten(1).all(1).view(-1, 1, 1, 1)
    return torch.where(finite, y, torch.full_like(y, float("nan")))


def _pillow_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """One (C, H, W) uint8 image through Pillow's JPEG encoder at `quality` and back: mode L for C = 1; RGB with
    4:2:0 chroma subsampling (libjpeg's default, named so that it cannot change) for C = 3."""
    grey = image.shape[0] == 1
    pil = Image.fromarray(image[0] if grey else np.ascontiguousarray(image.transpose(1, 2, 0)))  # uint8: L or RGB
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality, **({} if grey else {"subsampling": "4:2:0"}))
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        out = np.asarray(decoded.convert("L" if grey else "RGB"))
    return out[None] if grey else out.transpose(2, 0, 1)


def kornia_jpeg(x: Tensor, quality: int) -> Tensor:
    """kornia's differentiable JPEG at `quality`, in x's dtype; a greyscale batch as R = G = B, its channel mean
    returned. Not clipped to [0, 1] first, so that pixels an iterate puts outside still get a gradient."""
    from kornia.enhance import jpeg_codec_differentiable  # imported on first use: kornia takes seconds to load

    grey = x.shape[1] == 1
    rgb = x.expand(-1, 3, -1, -1) if grey else x
    out = jpeg_codec_differentiable(rgb, torch.tensor([float(quality)], dtype=x.dtype, device=x.device))
    return out.mean(dim=1, keepdim=True) if grey else out


class _Codec(torch.autograd.Function):
    """The codec as an autograd node with no derivative: torch.func (deepinv's A_vjp, DAPS) hands its forward the
    plain tensor, which the CPU codec needs, where a traced tensor has no storage to read."""

    @staticmethod
    def forward(x: Tensor, quality: int) -> Tensor:
        return libjpeg_round_trip(x, quality)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(output)


class JPEGRoundTrip(Physics):
    """A(x) = JPEG decode(encode(x, quality)) (module docstring): its value libjpeg's, its derivative kornia's."""

    def __init__(self, quality: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.quality = quality

    def A(self, x: Tensor, **kwargs) -> Tensor:
        if not (torch.is_grad_enabled() and x.requires_grad):
            return libjpeg_round_trip(x, self.quality)
        exact = _Codec.apply(x, self.quality)
        smooth = kornia_jpeg(x, self.quality)
        return exact + (smooth - smooth.detach())  # the value is exact's (smooth - smooth is 0), the gradient smooth's

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        """RED-diff's H_pinv for JPEG (degredations.py:522-523): y itself, the decoded image."""
        return y


@register_operator("jpeg", ranges={"quality": Range(MIN_QUALITY, MAX_QUALITY)})
def jpeg(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
         quality: int = 10) -> JPEGRoundTrip:
    """JPEG compression at `quality` (1..100), decoded: libjpeg's values, kornia's gradient (RED-diff: quality 10)."""
    if not MIN_QUALITY <= quality <= MAX_QUALITY:
        raise UsageError(f"operator jpeg.quality={quality}: must be an integer in [{MIN_QUALITY}, {MAX_QUALITY}]")
    if shape[0] not in CHANNELS:
        raise UsageError(f"operator jpeg needs 1 (greyscale) or 3 (RGB) channels; the images have {shape[0]}")
    return JPEGRoundTrip(quality).to(device)
