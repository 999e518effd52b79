"""Fourier phase retrieval: the magnitude of the zero-padded image's centred, orthonormal 2-D DFT.

    y = |F pad(x - c)| + sigma_y n,    F = fftshift o DFT_ortho o ifftshift over the last two axes,

per channel; `pad` adds floor(oversample / 8 * side) zeros on each side of each axis, so y is
(N, C, H + 2 p_H, W + 2 p_W). This is the operator of DPS (Chung et al. 2023; DPS2022/diffusion-posterior-sampling
at effbde7, guided_diffusion/measurements.py:163-172: pad = int(oversample / 8 * 256), `fft2_m(padded).abs()`,
fft2_m being fastMRI's `fft2c_new` with norm "ortho", util/img_utils.py:26-30, util/fastmri_utils.py:67-89) and
of DAPS (zhangbingliang2019/DAPS at 098df6b, forward_operator/__init__.py:300-314), both with oversample 2.0
(DPS configs/phase_retrieval_config.yaml:13; DAPS configs/task/phase_retrieval.yaml:13): 64 px a side at
256 px, a 384 x 384 spectrum (the padded side is 1 + oversample / 4 times the image's). The two codes take
different signals, and `convention` chooses:

- `dps` (default): DPS applies the operator to its [-1, 1] data, x_m = 2 x - 1 (sample_condition.py:79-80,
  109-110), zero padding included, with noise sigma = 0.05 on those magnitudes
  (phase_retrieval_config.yaml:17). Since |F pad(2 x - 1)| = 2 |F pad(x - 1/2)|, ipbench's y is DPS's halved:
  c = 1/2 and sigma_y = sigma / 2 (0.025, the default), the same problem in image units.
- `daps`: DAPS maps its [-1, 1] input back to [0, 1] before padding (forward_operator/__init__.py:307), so
  its y is already in image units: c = 0, and its sigma = 0.05 (phase_retrieval.yaml:14, added by `measure`
  at :64-75) is sigma_y = 0.05 here (set it: the default sigma_y is DPS's).

For a non-square image each axis is padded by its own side (both codes pad 256 x 256 images only).
`A_dagger` is RED-diff's starting point for phase retrieval (NVlabs/RED-diff at 66482f2,
utils/degredations.py:895-898): the centred inverse DFT of y taken as real and non-negative (phase 0), its
modulus, cropped to the image, plus c; not a least-squares solution.
"""
from __future__ import annotations

from typing import Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import Range

CONVENTIONS = {"dps": 0.5, "daps": 0.0}  # c: the value subtracted before padding (module docstring)
MAX_OVERSAMPLE = 32.0  # pads 4 sides a side: a spectrum 81 times the image's area


def centred_fft2(x: Tensor) -> Tensor:
    """fastMRI's fft2c: the orthonormal 2-D DFT over the last two axes, frequency 0 at the centre."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def centred_ifft2(y: Tensor) -> Tensor:
    """The inverse of `centred_fft2` (fastMRI's ifft2c)."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class FourierMagnitude(Physics):
    """A(x) = |F pad(x - offset)| (module docstring): a nonlinear deepinv Physics, A only (no adjoint)."""

    def __init__(self, image_shape: Shape, pad: tuple[int, int], offset: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        self.pad_h, self.pad_w = pad
        self.offset = offset

    def A(self, x: Tensor, **kwargs) -> Tensor:
        padded = torch.nn.functional.pad(x - self.offset, (self.pad_w, self.pad_w, self.pad_h, self.pad_h))
        return centred_fft2(padded).abs()

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        """RED-diff's H_pinv (degredations.py:895-898) in image units: crop |F^-1 y| + offset."""
        _, height, width = self.image_shape
        signal = centred_ifft2(y.to(torch.promote_types(y.dtype, torch.complex64))).abs()
        return signal[..., self.pad_h:self.pad_h + height, self.pad_w:self.pad_w + width] + self.offset

    def equivalents(self, x: Tensor) -> dict[str, Tensor]:
        """The images A cannot tell from one image `x` (C, H, W) in [0, 1], by name: its trivial ambiguities.

        For a real canvas z = pad(x - c) the magnitude |F z| is unchanged by (1) the 180-degree rotation
        (flipping both axes of z conjugates F z up to a phase ramp; the padding is symmetric, so flip(pad(u)) =
        pad(flip(u))), (2) the sign, z -> -z, i.e. x -> 2c - x (kept when c > 0: for c = 0 it leaves [0, 1]),
        and (3) a circular translation of z, which is pad(x' - c) of an image x' exactly when the rows and
        columns it moves out of the frame equal c: kept for the shifts whose outgoing pixels are all within
        half an 8-bit level of c (a black border under `convention=daps`), up to the padding on each axis
        (which bounds the count for a blank image). Names: "identity", "rot180",
        "negated", "rot180+negated", each with "+shift(dy,dx)" for a translation by (dy, dx) pixels."""
        bases = {"identity": x, "rot180": x.flip(-2, -1)}
        if self.offset > 0:
            bases.update({f"{name}+negated" if name != "identity" else "negated": 2 * self.offset - v
                          for name, v in list(bases.items())})
        out = {}
        for name, v in bases.items():
            out[name] = v
            blank = (v - self.offset).abs().amax(dim=0) < 0.5 / 255  # (H, W): pixels equal to c
            rows, cols = blank.all(dim=1).tolist(), blank.all(dim=0).tolist()
            top, bottom = (min(_run_length(r), self.pad_h) for r in (rows, rows[::-1]))
            left, right = (min(_run_length(c), self.pad_w) for c in (cols, cols[::-1]))
            for dy in range(-top, bottom + 1):
                for dx in range(-left, right + 1):
                    if dy or dx:  # a shift by (dy, dx) moves out the rows and columns it needs to be blank
                        out[f"{name}+shift({dy},{dx})"] = (v - self.offset).roll((dy, dx), dims=(-2, -1)) + self.offset
        return out

    def picture(self, y: Tensor) -> Tensor:
        """The spectrum for figures: log(1 + |y|) over its per-image maximum, area-resized to the image."""
        level = torch.log1p(y.abs())
        level = level / level.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return torch.nn.functional.interpolate(level, size=tuple(self.image_shape[1:]), mode="area")


def _run_length(flags: list[bool]) -> int:
    """How many leading entries of `flags` are True."""
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count


@register_operator("phase-retrieval", choices={"convention": tuple(CONVENTIONS)},
                   ranges={"oversample": Range(0, MAX_OVERSAMPLE)})
def phase_retrieval(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                    oversample: float = 2.0, convention: str = "dps") -> FourierMagnitude:
    """Fourier magnitude of the image zero-padded by oversample / 8 of its side on each side (DPS, DAPS)."""
    if not 0 <= oversample <= MAX_OVERSAMPLE:
        raise UsageError(f"operator phase-retrieval.oversample={oversample}: must be in [0, {MAX_OVERSAMPLE:g}]")
    if convention not in CONVENTIONS:
        raise UsageError(f"operator phase-retrieval.convention={convention!r}: valid values are {', '.join(CONVENTIONS)}")
    _, height, width = shape
    pad = (int(oversample / 8 * height), int(oversample / 8 * width))  # the codes' int(): floor
    return FourierMagnitude(shape, pad, CONVENTIONS[convention]).to(device)
