"""Sparse-view parallel-beam CT: the Radon transform at `views` angles, deepinv's `Tomography`, over the side.

    y[n, c, j, v] = (1 / W) sum_i x_c(p_i)   along the line t_j = u cos(theta_v) - w sin(theta_v),

per channel of a square W x W image: deepinv's `Radon` (deepinv/physics/functional/radon.py:252-309) pads the
image with zeros to P = ceil(sqrt(2) W) a side, samples it bilinearly (grid_sample, align_corners) on P x P
points rotated by theta_v about the padded image's centre and sums each of the P columns, so y is
(N, C, P, views): detector j at t_j = j - (P - 1) / 2 px, u the column offset (right) and w the row offset
(down) from the rotation centre. That centre is pixel (P - 1) / 2 - (P // 2 - W // 2) on both axes: the image
centre (W - 1) / 2 when P is even (32 px: P = 46), half a pixel right of and below it when P is odd (64 px,
256 px). This is MCG's Radon, angle by angle (HJ-harry/MCG_diffusion at d5bfd15, physics/radon/radon.py:23-59,
the same padding and grids), with MCG's angles: deepinv's for an integer count, theta_v = 180 v / views
degrees (tomography.py:137-140), MCG's `np.linspace(0, 180, views, endpoint=False)` (physics/ct.py:8), and
`circle=False` (run_CT_recon.py:116).

Scale. deepinv's sums are line integrals in pixels (`normalize=False`); ipbench divides them by W, i.e. lengths
in units of the image side: a ray across a full side of a constant image c gives c, whatever the resolution, so
sigma_y is in image units as for every operator (operators/base.py), and a given object has the same y at any
W (up to discretisation). deepinv's default `normalize=True` (tomography.py:185-205) divides the pixel sums by
their operator norm instead (a power-iteration estimate), W ||A|| in terms of ipbench's A, which grows with
the views: at 32 px ||A|| is 0.351 at 4 views, 0.493 at 8, 1.35 at 60, so deepinv's y would be ipbench's
divided by that (docs/operators.md).

Adjoint. `Tomography.A_adjoint` is exact only with `adjoint_via_backprop=True` (autograd through grid_sample,
tomography.py:323-343); its other path (an unfiltered IRadon, :345-349) misses the identity <A x, u> = <x, A^T u>
by about 1e-3 of ||A x|| ||u|| at 32 px (2.0e-3 at 4 views, 6.3e-4 at 60). deepinv builds its autograd adjoint
in float32 for a fixed batch size, so ipbench takes the vector-Jacobian product of its own A for every call (exact
in any precision), with A as its derivative, as deepinv's `adjoint_function` does (forward.py:1389-1411).

Default: 4 views. MCG (run_CT_recon.py:36-40) measures 30 views of 256 px images (noiseless), 30 x 363 =
10,890 values for 65,536 pixels (0.166 per pixel); 4 views of a 32 px image give 4 x 46 = 184 for 1,024
(0.180), the nearest count (3 views: 0.135). Both are about 7.5% of the pi W / 2 views of full angular
sampling (30 of 402, 4 of 50). Song et al.'s sparse-view CT (yang-song/score_inverse_problems at b56e383,
configs/default_cs_configs.py:35) takes 23 views of 320 px images (0.10 per pixel); `views=8` is 60 views at
256 px by the same count.

An exact SVD is the dense one of the (P x views) x W^2 matrix (operators/svd.py), computed once per geometry, for
images of up to DENSE_SVD_MAX_PIXELS pixels; `picture` (the saved measurement, and `measurement_image`) is
deepinv's filtered back-projection (IRadon with its ramp filter, radon.py:396-451).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from deepinv.physics import LinearPhysics, Tomography
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.operators.svd import DenseSVD, dense_svd
from ipbench.params import Range

MAX_VIEWS = 1000  # about a clinical scanner's views per rotation; memory grows with P^2 views per image
DENSE_SVD_MAX_PIXELS = 64 * 64  # a dense SVD at 64 x 64 (4,096 columns) takes seconds; 256 x 256 would not fit
_SVD_CACHE: dict[tuple, DenseSVD] = {}  # the geometry decides A: one SVD per (side, views, dtype, device)


class _Adjoint(torch.autograd.Function):
    """A^T y as the vector-Jacobian product of the linear map A at 0 (exact); its derivative is A."""

    @staticmethod
    def forward(y: Tensor, physics: "ParallelBeamCT") -> Tensor:
        zeros = torch.zeros(y.shape[0], y.shape[1], physics.width, physics.width, dtype=y.dtype, device=y.device)
        _, vjp = torch.func.vjp(physics.A, zeros)
        return vjp(y)[0]

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.physics = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.physics.A(grad), None


class ParallelBeamCT(LinearPhysics):
    """y = Radon(x) / W at `views` angles in [0, 180) degrees (module docstring); x square, y (N, C, P, views)."""

    def __init__(self, width: int, views: int, device: torch.device) -> None:
        super().__init__(device=device)
        self.width, self.views = width, views
        self.tomography = Tomography(angles=views, img_width=width, circle=False, parallel_computation=True,
                                     adjoint_via_backprop=True, normalize=False, device=device)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return self.tomography.radon(x) / self.width

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        return _Adjoint.apply(y, self)

    def picture(self, y: Tensor) -> Tensor:
        """The filtered back-projection of y (deepinv's IRadon of the line integrals W y): the measurement as
        an image, streaks and all, for figures and `measurement_image`."""
        return self.tomography.iradon(y * self.width)

    def no_svd_reason(self, like: Tensor) -> str | None:
        pixels = self.width * self.width
        if pixels <= DENSE_SVD_MAX_PIXELS:
            return None
        return (f"ParallelBeamCT at {self.width} x {self.width} has no cheap one; the dense SVD of its matrix is "
                f"computed for images of up to {DENSE_SVD_MAX_PIXELS} pixels, this has {pixels}")

    def exact_svd(self, like: Tensor) -> DenseSVD | None:
        """The dense SVD of A, per channel (the same on every channel and image), from a float64 copy on the CPU."""
        if self.no_svd_reason(like) is not None:
            return None
        key = (self.width, self.views, like.dtype, str(like.device))
        if key not in _SVD_CACHE:
            radon = copy.deepcopy(self.tomography.radon).to(device="cpu", dtype=torch.float64)
            _SVD_CACHE[key] = dense_svd(lambda x: radon(x) / self.width, (self.width, self.width), like.dtype,
                                        like.device)
        return _SVD_CACHE[key]


@register_operator("ct", ranges={"views": Range(2, MAX_VIEWS)})
def ct(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *, views: int = 4) -> ParallelBeamCT:
    """Sparse-view parallel-beam CT: line integrals at `views` angles in [0, 180) degrees (deepinv Tomography)."""
    _, height, width = shape
    if height != width:
        raise UsageError(f"operator ct: needs square images (deepinv's Tomography), got {height} x {width}")
    if not 2 <= views <= MAX_VIEWS:
        raise UsageError(f"operator ct.views={views}: must be an integer in [2, {MAX_VIEWS}]")
    return ParallelBeamCT(width, views, device)
