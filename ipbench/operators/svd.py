"""Singular value decompositions A = U diag(s) V^T of the operators that have a cheap one.

Spectral solvers (DDRM, and DiffPIR's or PiGDM's closed forms) work in V's coordinates. Two kinds exist:

- diagonal: masks (deepinv `Inpainting`, s = the mask) and the identity (`Denoising`, s = 1); U = V = I.
- separable: A X = H_c X H_r^T on each channel of each image, for a column matrix H_c (m_c x n_c) and a row
  matrix H_r (m_r x n_r): separable blur kernels (a Gaussian is one) and filter-then-decimate
  super-resolution, with any boundary padding, since padding rows and then columns is separable too.
  Then A = H_c (x) H_r (Kronecker), U = U_c (x) U_r, V = V_c (x) V_r and s_ij = s_c,i s_r,j: two small
  SVDs give the exact SVD of A (DDRM's code does the same for its separable blurs and bicubic SR).

`operator_svd` finds H_c and H_r by applying A to unit images (one row and one column of probes, for all
images of the batch at once, so per-image operators get per-image factors) and then checks the
factorisation on a random image; an operator that is not separable (a motion-blur kernel) fails that
check and has no SVD here. Spectral coordinates have the shape of x; entries beyond A's rank have s = 0.

An operator may also give its own: a physics with a method `exact_svd(like)` returns one of the kinds below (or
None), and `no_svd_reason(like)` says why not. Two more kinds serve those:

- eigenbasis: an orthonormal V known in closed form with A^T A = V diag(s^2) V^T; then U = A V diag(1/s) on
  s > 0 (single-coil MRI of a real image: V is a 2-D Hartley transform, operators/mri.py).
- dense: the SVD of A's explicit matrix, the same on every channel of every image, for operators small enough
  to write down (parallel-beam CT at 32 x 32: 1,024 columns, operators/ct.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from deepinv.physics import Denoising, Inpainting, LinearPhysics, Physics
from torch import Tensor

SEPARABLE_TOLERANCE = 1e-4  # relative error of H_c X H_r^T against A X on a random X (float32 round-off ~1e-6)
DENSE_CHUNK = 256  # unit images per call of A while a dense matrix is written down


@dataclass
class DiagonalSVD:
    """A = diag(s) on pixels (U = V = I): a mask or the identity. `singular` broadcasts against x."""

    singular: Tensor

    def Vt(self, x: Tensor) -> Tensor:
        return x

    def V(self, z: Tensor) -> Tensor:
        return z

    def Ut(self, y: Tensor) -> Tensor:
        """U^T y, with the coordinates A does not see set to 0 (deepinv's masked y carries noise there)."""
        return y * (self.singular > 0).to(y.dtype)

    def U(self, z: Tensor) -> Tensor:
        return z * (self.singular > 0).to(z.dtype)


@dataclass
class SeparableSVD:
    """A X = H_c X H_r^T per channel, H_c = U_c diag(s_c) V_c^T and H_r likewise; factors (B, m, n), B = 1 or N."""

    Uc: Tensor
    sc: Tensor
    Vc: Tensor
    Ur: Tensor
    sr: Tensor
    Vr: Tensor

    @property
    def singular(self) -> Tensor:
        """s in spectral coordinates, (B, 1, n_c, n_r): s_c,i s_r,j, 0 beyond the rank of either factor."""
        n_c, n_r = self.Vc.shape[-1], self.Vr.shape[-1]
        s = torch.zeros(self.sc.shape[0], 1, n_c, n_r, dtype=self.sc.dtype, device=self.sc.device)
        k_c, k_r = self.sc.shape[-1], self.sr.shape[-1]
        s[:, 0, :k_c, :k_r] = self.sc[:, :, None] * self.sr[:, None, :]
        return s

    def Vt(self, x: Tensor) -> Tensor:
        return self.Vc.transpose(-1, -2)[:, None] @ x @ self.Vr[:, None]

    def V(self, z: Tensor) -> Tensor:
        return self.Vc[:, None] @ z @ self.Vr.transpose(-1, -2)[:, None]

    def Ut(self, y: Tensor) -> Tensor:
        """U^T y placed in spectral coordinates (zero-padded from (m_c, m_r) to (n_c, n_r))."""
        z = self.Uc.transpose(-1, -2)[:, None] @ y @ self.Ur[:, None]
        m_c, m_r = min(z.shape[-2], self.Vc.shape[-1]), min(z.shape[-1], self.Vr.shape[-1])
        out = z.new_zeros(*z.shape[:-2], self.Vc.shape[-1], self.Vr.shape[-1])
        out[..., :m_c, :m_r] = z[..., :m_c, :m_r]
        return out

    def U(self, z: Tensor) -> Tensor:
        m_c, m_r = self.Uc.shape[-1], self.Ur.shape[-1]
        return self.Uc[:, None] @ z[..., :m_c, :m_r] @ self.Ur.transpose(-1, -2)[:, None]


@dataclass
class EigenbasisSVD:
    """A = U diag(s) V^T from an orthonormal V in closed form that diagonalises A^T A = V diag(s^2) V^T.

    `forward` is V^T and `inverse` V (functions of image batches); U = A V diag(1/s) on the coordinates with
    s > 0, which are orthonormal since U^T U = diag(1/s) V^T A^T A V diag(1/s) = I there. `singular` broadcasts
    against x (one value per pixel coordinate, shared by the channels)."""

    singular: Tensor
    forward: Callable[[Tensor], Tensor]
    inverse: Callable[[Tensor], Tensor]
    A: Callable[[Tensor], Tensor]
    A_adjoint: Callable[[Tensor], Tensor]

    def _over_s(self, z: Tensor) -> Tensor:
        """z / s where s > 0, 0 elsewhere."""
        seen = self.singular > 0
        safe = torch.where(seen, self.singular, torch.ones_like(self.singular))
        return torch.where(seen, z / safe, torch.zeros_like(z))

    def Vt(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def V(self, z: Tensor) -> Tensor:
        return self.inverse(z)

    def Ut(self, y: Tensor) -> Tensor:
        """U^T y = diag(1/s) V^T A^T y on s > 0; 0 on the coordinates A does not see."""
        return self._over_s(self.forward(self.A_adjoint(y)))

    def U(self, z: Tensor) -> Tensor:
        return self.A(self.inverse(self._over_s(z)))


@dataclass
class DenseSVD:
    """A = U diag(s) V^T from A's explicit matrix, applied per channel: `Um` (m, k), `s` (k,), `Vm` (n, n) for
    n = H W pixels, k = min(m, n), and measurements of `measurement_shape` per channel (row-major flattened)."""

    Um: Tensor
    s: Tensor
    Vm: Tensor
    image_shape: tuple[int, int]
    measurement_shape: tuple[int, ...]

    @property
    def singular(self) -> Tensor:
        """s in spectral coordinates, (1, 1, H, W): coordinate i of the row-major flattened image, 0 beyond k."""
        s = self.s.new_zeros(self.Vm.shape[0])
        s[:self.s.shape[0]] = self.s
        return s.view(1, 1, *self.image_shape)

    def Vt(self, x: Tensor) -> Tensor:
        return (x.flatten(-2) @ self.Vm).view(x.shape)

    def V(self, z: Tensor) -> Tensor:
        return (z.flatten(-2) @ self.Vm.transpose(0, 1)).view(z.shape)

    def Ut(self, y: Tensor) -> Tensor:
        """U^T y in spectral coordinates, 0 where s = 0 (beyond the rank)."""
        z = y.flatten(-len(self.measurement_shape)) @ self.Um  # (..., k)
        z = z * (self.s > 0).to(z.dtype)
        out = z.new_zeros(*z.shape[:-1], self.Vm.shape[0])
        out[..., :z.shape[-1]] = z
        return out.view(*z.shape[:-1], *self.image_shape)

    def U(self, z: Tensor) -> Tensor:
        k = self.s.shape[0]
        y = z.flatten(-2)[..., :k] @ self.Um.transpose(0, 1)
        return y.view(*z.shape[:-2], *self.measurement_shape)


def dense_svd(forward: Callable[[Tensor], Tensor], image_shape: tuple[int, int], dtype: torch.dtype,
              device: torch.device) -> DenseSVD:
    """The SVD of the linear map `forward` on one-channel float64 images of `image_shape` (on the CPU), from
    its matrix: A applied to every unit image, in chunks. Returned in `dtype` on `device`, where singular values
    below s_max sqrt(max(m, n)) eps(dtype), the norm of A's round-off in that precision, count as 0: a solver
    dividing by s (DDRM's U^T y / s) would otherwise divide round-off by them (CT at 4 views has two of 3e-8,
    then 1.9e-3)."""
    height, width = image_shape
    n = height * width
    columns = []
    with torch.no_grad():
        for start in range(0, n, DENSE_CHUNK):
            index = torch.arange(start, min(n, start + DENSE_CHUNK))
            units = torch.zeros(len(index), n, dtype=torch.float64)
            units[torch.arange(len(index)), index] = 1
            columns.append(forward(units.view(-1, 1, height, width))[:, 0])
    measured = torch.cat(columns)  # (n, *measurement_shape)
    matrix = measured.flatten(1).transpose(0, 1)  # (m, n)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=True)
    k = min(matrix.shape)
    s = torch.where(s > float(s[0]) * max(matrix.shape) ** 0.5 * torch.finfo(dtype).eps, s, torch.zeros_like(s))
    cast = lambda t: t.to(dtype=dtype, device=device).contiguous()  # noqa: E731
    return DenseSVD(cast(u[:, :k]), cast(s), cast(vh.transpose(0, 1)), (height, width), tuple(measured.shape[1:]))


OperatorSVD = DiagonalSVD | SeparableSVD | EigenbasisSVD | DenseSVD


def _probe(physics: LinearPhysics, like: Tensor, index: tuple[int, int]) -> Tensor:
    """A applied to the unit image with a 1 at pixel `index` (all channels), for every image of the batch."""
    e = torch.zeros_like(like)
    e[:, :, index[0], index[1]] = 1
    return physics.A(e)


def _separable_factors(physics: LinearPhysics, like: Tensor) -> tuple[Tensor, Tensor] | None:
    """(H_c, H_r), each (N, m, n), with A X = H_c X H_r^T for every image and channel; None if A is not so."""
    n, _, n_c, n_r = like.shape
    for i0, j0 in ((n_c // 2, n_r // 2), (0, 0)):  # plain decimation may skip the centre, never pixel 0
        centre = _probe(physics, like, (i0, j0))[:, 0]  # (N, m_c, m_r) = a_i0 b_j0^T
        if centre.ndim != 3:
            return None
        if bool((centre.flatten(1).abs().amax(1) > 0).all()):
            break
    flat = centre.abs().flatten(1).argmax(1)  # the largest entry: rows p, columns q, per image
    p, q = flat // centre.shape[-1], flat % centre.shape[-1]
    images = torch.arange(n, device=like.device)
    pivot = centre[images, p, q]
    if not bool((pivot.abs() > 0).all()):
        return None
    # b_j = A(E_{i0, j})[p, :] (a_i0[p] taken as 1), a_i = A(E_{i, j0})[:, q] / b_j0[q]
    rows = torch.stack([_probe(physics, like, (i0, j))[:, 0][images, p, :] for j in range(n_r)], dim=-1)
    cols = torch.stack([_probe(physics, like, (i, j0))[:, 0][images, :, q] for i in range(n_c)], dim=-1)
    return cols / pivot.view(-1, 1, 1), rows


def operator_svd(physics: Physics, like: Tensor) -> OperatorSVD | None:
    """The SVD of `physics` for images shaped like `like` (N, C, H, W), or None if it has none here."""
    own = getattr(physics, "exact_svd", None)
    if callable(own):  # the operator's own (module docstring)
        return own(like)
    if isinstance(physics, Inpainting):
        return DiagonalSVD(physics.mask.to(like.dtype).expand(like.shape[0], *physics.mask.shape[1:]))
    if isinstance(physics, Denoising):
        return DiagonalSVD(torch.ones_like(like[:1, :1]))
    if not isinstance(physics, LinearPhysics):
        return None
    with torch.no_grad():
        factors = _separable_factors(physics, like)
        if factors is None:
            return None
        h_c, h_r = factors
        x = torch.randn(like.shape, generator=torch.Generator(device=like.device).manual_seed(0),
                        device=like.device, dtype=like.dtype)
        expected = physics.A(x)
        got = h_c[:, None] @ x @ h_r.transpose(-1, -2)[:, None]
        if got.shape != expected.shape or float((got - expected).norm()) > SEPARABLE_TOLERANCE * float(expected.norm()):
            return None
        if bool((h_c == h_c[:1]).all()) and bool((h_r == h_r[:1]).all()):  # one operator for the batch
            h_c, h_r = h_c[:1], h_r[:1]
        uc, sc, vch = torch.linalg.svd(h_c.double(), full_matrices=True)
        ur, sr, vrh = torch.linalg.svd(h_r.double(), full_matrices=True)
        cast = lambda t: t.to(like.dtype)  # noqa: E731
        return SeparableSVD(cast(uc), cast(sc), cast(vch.transpose(-1, -2)), cast(ur), cast(sr),
                            cast(vrh.transpose(-1, -2)))


def svd_problem(physics: Physics, like: Tensor) -> str | None:
    """Why `physics` has no SVD here (None if it has one): for a solver's `unsupported`."""
    if operator_svd(physics, like) is not None:
        return None
    own = getattr(physics, "no_svd_reason", None)
    reason = own(like) if callable(own) else None
    if reason:
        return f"needs an SVD of the operator: {reason}"
    return (f"needs an SVD of the operator: {type(physics).__name__} here is not a mask, the identity, or a "
            "separable linear operator")
