"""Single-coil Cartesian MRI: y = M F x, deepinv's `MRI` on the image taken as complex (imaginary part 0).

Each channel c of the real image x (N, C, H, W) is one complex image x_c + 0 i, measured with the image's one
mask M (columns of k-space, shared by the channels):

    y = M F (x + 0 i) + sigma_y n,    F = fftshift o DFT_ortho o ifftshift over (H, W),

in deepinv's layout (N, 2, C, H, W): real and imaginary parts on axis 1, the channels as its depth axis
(deepinv/physics/mri.py:11-104, `MRI`: `A = U(mask * V_adjoint(x))`, V_adjoint = the centred orthonormal FFT of
utils/mixins.py:171-193). sigma_y is the std of the real and of the imaginary part of every k-space entry,
unsampled ones included (as inpainting's holes get noise); A^T discards those. A^T y = Re(F^H M y), the
zero-filled reconstruction, is what a reconstruction maps back through: the solvers' images stay real.

The mask is a draw of a deepinv generator, one per image from that image's own generator, so an image's
operator does not depend on its batch: `mask="random"` (default; `RandomMaskGenerator`: the int(f W) centre
columns plus int(W / a) - int(f W) other columns drawn uniformly without replacement, generator/mri.py:136-196),
`"gaussian"` (`GaussianMaskGenerator`, a Gaussian density over the columns, :284-324) or `"equispaced"`
(`EquispacedMaskGenerator`, :327-389). Defaults follow fastMRI's (facebookresearch/fastMRI at 91f2df4,
fastmri_examples/unet/train_unet_demo.py:104-122: mask_type "random", center_fractions [0.08],
accelerations [4]): at 32 px, 2 centre columns and 6 others, 8 of 32. docs/operators.md has the deviations.

The exact SVD (for DDRM, PiGDM, DiffPIR, RED-diff): for a real x, F x is Hermitian, so A^T A = F^H diag(m) F with
m(k) = (M(k) + M(-k)) / 2, which the real, orthonormal Hartley transform H x = Re F x - Im F x diagonalises;
V^T = H and s = sqrt(m), in {0, 1/sqrt(2), 1}: 1 where a column and its mirror are both sampled (the centre),
1/sqrt(2) where only one of them is. (The masked DFT of a complex image has s in {0, 1}; a real image's
k-space is redundant, and half a mirrored pair measures only half of the pair's energy.)
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
from deepinv.physics import MRI, LinearPhysics
from deepinv.physics.generator import EquispacedMaskGenerator, GaussianMaskGenerator, RandomMaskGenerator
from deepinv.utils.mixins import MRIMixin
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.operators.svd import EigenbasisSVD
from ipbench.params import AT_LEAST_ONE, UNIT

MASKS = {"random": RandomMaskGenerator, "gaussian": GaussianMaskGenerator, "equispaced": EquispacedMaskGenerator}


def hartley(x: Tensor) -> Tensor:
    """H x = Re F x - Im F x with deepinv's centred orthonormal F (a real orthogonal map of real images)."""
    k = MRIMixin.fft(x.to(torch.promote_types(x.dtype, torch.complex64)))
    return k.real - k.imag


def inverse_hartley(z: Tensor) -> Tensor:
    """H^T z = Re F^H z + Im F^H z, the inverse of `hartley` (H^T = Re F^T - Im F^T, F^H = conj(F)^T)."""
    k = MRIMixin.ifft(z.to(torch.promote_types(z.dtype, torch.complex64)))
    return k.real + k.imag


def mirrored(mask: Tensor) -> Tensor:
    """M(-k): the mask at the negated frequency of each entry. fftshift puts frequency j - n // 2 at index j, so
    -f sits at index (2 (n // 2) - j) mod n, on both axes."""
    height, width = mask.shape[-2:]
    rows = (2 * (height // 2) - torch.arange(height)) % height
    cols = (2 * (width // 2) - torch.arange(width)) % width
    return mask[..., rows.to(mask.device), :][..., cols.to(mask.device)]


class CartesianMRI(LinearPhysics):
    """A x = M F (x + 0 i) per channel, in deepinv's (N, 2, C, H, W) k-space layout (module docstring)."""

    def __init__(self, masks: Tensor, device: torch.device) -> None:
        super().__init__(device=device)
        # (N, 1, H, W) -> (N, 1, 1, H, W): the channels are deepinv's depth axis, one mask for all of them;
        # deepinv doubles axis 1 for the real and imaginary parts (utils/mixins.py:127-146)
        self.mri = MRI(mask=masks.unsqueeze(2).to(device), img_size=tuple(masks.shape[-2:]), device=device)

    @property
    def mask(self) -> Tensor:
        """The sampling masks, (N, 1, H, W), 1 = sampled (k-space centred: frequency 0 at H // 2, W // 2)."""
        return self.mri.mask[:, :1, 0]

    @mask.setter
    def mask(self, masks: Tensor) -> None:
        """New masks (N, 1, H, W), e.g. one image's slice of a batch's (as deepinv-dps takes each image alone)."""
        self.mri.update_parameters(mask=masks.unsqueeze(2))

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return self.mri.A(torch.stack([x, torch.zeros_like(x)], dim=1))

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        """Re(F^H M y): the adjoint of the embedding x -> x + 0 i keeps the real part."""
        return self.mri.A_adjoint(y)[:, 0]

    def back_projection(self, y: Tensor) -> Tensor:
        """The zero-filled reconstruction A^T y, where the one-step solvers start (A^T 1 is no per-pixel weight
        here: it is the inverse FFT of the mask, not a count of how often a pixel is seen)."""
        return self.A_adjoint(y)

    def picture(self, y: Tensor) -> Tensor:
        """The measurement as an image, for figures and `measurement_image`: the zero-filled reconstruction."""
        return self.A_adjoint(y)

    def visible(self, like: Tensor) -> Tensor:
        """Every pixel is seen (each k-space sample sums all of them)."""
        return torch.ones_like(like)

    def exact_svd(self, like: Tensor) -> EigenbasisSVD:
        """V^T = the Hartley transform, s = sqrt((M(k) + M(-k)) / 2) (module docstring)."""
        mask = self.mask.to(like.dtype)
        singular = ((mask + mirrored(mask)) / 2).sqrt()
        return EigenbasisSVD(singular, hartley, inverse_hartley, self.A, self.A_adjoint)


def _mask_counts(width: int, acceleration: int, center_fraction: float) -> tuple[int, int]:
    """deepinv's column counts (generator/mri.py:63-78): int(f W) centre columns and int(W // a - int(f W)) others."""
    centre = int(center_fraction * width)
    return centre, int(width // acceleration - centre)


@register_operator("mri", choices={"mask": tuple(MASKS)},
                   ranges={"acceleration": AT_LEAST_ONE, "center_fraction": UNIT})
def mri(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
        acceleration: int = 4, center_fraction: float = 0.08, mask: str = "random") -> CartesianMRI:
    """Single-coil Cartesian MRI, 1 / `acceleration` of the k-space columns, the centre fraction always sampled."""
    _, height, width = shape
    if acceleration < 1 or acceleration > width:
        raise UsageError(f"operator mri.acceleration={acceleration}: must be an integer in [1, {width}] (the image "
                         f"width: at least one column sampled)")
    if not 0 <= center_fraction <= 1:
        raise UsageError(f"operator mri.center_fraction={center_fraction}: must be in [0, 1]")
    if mask not in MASKS:
        raise UsageError(f"operator mri.mask={mask!r}: valid values are {', '.join(MASKS)}")
    centre, others = _mask_counts(width, acceleration, center_fraction)
    if others < 0:
        raise UsageError(f"operator mri.center_fraction={center_fraction}: {centre} centre columns are more than the "
                         f"{width // acceleration} that acceleration {acceleration} samples of {width}")
    if mask == "equispaced" and others == 0:  # deepinv's equispaced spacing divides by zero there
        raise UsageError(f"operator mri.center_fraction={center_fraction}: mask=equispaced needs columns beyond "
                         f"the {centre} centre ones (acceleration {acceleration} samples {width // acceleration})")
    masks = []
    for g in generators:  # each image's mask from its own generator
        with warnings.catch_warnings():  # others == 0 (a centre-only mask) is valid; deepinv warns about it
            warnings.simplefilter("ignore", UserWarning)
            generator = MASKS[mask]((height, width), acceleration=acceleration, center_fraction=center_fraction,
                                    rng=g, device=g.device)
            masks.append(generator.step(batch_size=1)["mask"].to(device=device, dtype=torch.float32))
    return CartesianMRI(torch.cat(masks), device)
