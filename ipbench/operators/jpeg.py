"""JPEG compression: the image encoded at quality q and decoded again (docs/operators.md has the details).

    y = D(E(Q(x), q)) + sigma_y n,    Q(x) = round(255 clip(x, 0, 1)) / 255 (8 bits, as a JPEG file stores them),

E and D baseline JPEG with the IJG quantization tables scaled to quality q (1..100), decoded to 8 bits: a 1-channel
image as a greyscale JPEG (luma only), a 3-channel one as YCbCr with 4:2:0 chroma subsampling; y has the image's
shape. RED-diff (NVlabs/RED-diff at 66482f2) poses JPEG restoration this way, y = decode(encode(x, qf))
(utils/degredations.py:512-520), with quality 10 by default (utils/jpeg_torch.py:110, 155; the degradation name
`jpegQF` sets it, degredations.py:752-754), and starts at H_pinv(y) = y (degredations.py:522-523), which is
`A_dagger` here. Its data are [-1, 1] (utils/functions.py:16-17), mapped to [0, 255] by (x + 1) / 2 * 255
(jpeg_torch.py:114), so its codec takes 255 x of the image: the same in image units.

A has two parts. Its value is the codec itself, libjpeg-turbo through torchvision.io (on the CPU): identical to
PIL's `Image.save(format="JPEG", quality=q)` and reopening it, on every image checked (benchmarks/jpeg_agreement.py,
results/jpeg_agreement.md; tests/test_jpeg_operator.py holds it to 1 grey level a pixel and 0.01 on average).
A codec is piecewise constant in x, so its derivative is zero almost everywhere; A's derivative (autograd, what
DPS, DAPS and RED-diff use) is instead that of kornia's differentiable JPEG (`kornia.enhance.jpeg_codec_differentiable`,
Reich et al. 2024, after Shin and Song 2017: rounding replaced by r + (u - r)^3), a straight-through pairing.
kornia's output is not used as the value: its smooth rounding and smooth table scaling keep information that JPEG
discards, and at q = 10 it is 1.24 grey levels from PIL on average (PSNR 40.8 dB) on fashion32-test, 5.5 levels
(30.5 dB) on random RGB images (results/jpeg_agreement.md). A greyscale image enters kornia, which codes RGB, as
R = G = B (its chroma is then constant and quantized away, leaving the luma path) and leaves it as the channel mean.

Deviations from RED-diff's codec (utils/jpeg_torch.py:110-200), which is float and never clips: that one subsamples
chroma by taking every other pixel and upsamples by repetition (:26, 190-193) where libjpeg averages 2 x 2 and
interpolates, and takes the [-1, 1] floats as they are where a JPEG file holds 8-bit samples; its tables are the
same (IJG at each quality, baseline: utils/jpeg_quantization.py). Its rounding (torch.round, :140-141) has a zero
gradient, so its own A gives DPS and RED-diff no data term; the kornia derivative here is what makes one.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import Range

MIN_QUALITY, MAX_QUALITY = 1, 100  # the IJG quality scale (libjpeg clamps 0 to 1)
CHANNELS = {1: "greyscale", 3: "RGB"}


def libjpeg_round_trip(x: Tensor, quality: int) -> Tensor:
    """D(E(Q(x), q)) by libjpeg-turbo (torchvision.io), as x's dtype on x's device; an image with a non-finite
    pixel gives NaN (an 8-bit file cannot hold it, and a solver's divergence must stay visible)."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    x = x.detach()
    pixels = (x.clamp(0, 1) * 255).round().nan_to_num(0).to("cpu", torch.uint8)
    decoded = decode_jpeg(encode_jpeg(list(pixels), quality=quality), mode=ImageReadMode.UNCHANGED)
    y = torch.stack(decoded).to(x.device, x.dtype) / 255
    finite = torch.isfinite(x).flatten(1).all(1).view(-1, 1, 1, 1)
    return torch.where(finite, y, torch.full_like(y, float("nan")))


def kornia_jpeg(x: Tensor, quality: int) -> Tensor:
    """kornia's differentiable JPEG at `quality`, in x's dtype; a greyscale batch as R = G = B, its channel mean
    returned. Not clipped to [0, 1] first, so that pixels an iterate puts outside still get a gradient."""
    from kornia.enhance import jpeg_codec_differentiable  # imported on first use: kornia takes seconds to load

    grey = x.shape[1] == 1
    rgb = x.expand(-1, 3, -1, -1) if grey else x
    out = jpeg_codec_differentiable(rgb, torch.tensor([float(quality)], dtype=x.dtype, device=x.device))
    return out.mean(dim=1, keepdim=True) if grey else out


class JPEGRoundTrip(Physics):
    """A(x) = JPEG decode(encode(x, quality)) (module docstring): its value libjpeg's, its derivative kornia's."""

    def __init__(self, quality: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.quality = quality

    def A(self, x: Tensor, **kwargs) -> Tensor:
        exact = libjpeg_round_trip(x, self.quality)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return exact
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
