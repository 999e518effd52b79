"""CT and MRI: how far A, A^T and the exact SVDs are from their references, and how hard the defaults are.

Agreement, measured on fixed random inputs (the same quantities tests/test_ct_mri_operators.py bounds):
- mri: A against M fft2c(x) written with numpy; the adjoint identity; the Hartley SVD against A and against
  numpy's SVD of A written out as a matrix.
- ct: A against the closed-form line integrals of Gaussian blobs; the adjoint identity of ipbench's A^T and of
  deepinv's IRadon adjoint (Tomography with adjoint_via_backprop=False); the dense SVD against A, and its time;
  the norm of A, against which deepinv's normalize=True would divide instead of by the side.
Difficulty at 32 px, sigma_y = 0.025: the spectrum summary and the exact MMSE of the `gaussian-fashion32` prior
(ipbench.checks.operator_difficulty), against denoising's, for a few view counts and accelerations.

    python benchmarks/ct_mri_agreement.py --out results/ct_mri_agreement.md   # about a minute of CPU
"""
from __future__ import annotations

import argparse
import copy
import datetime
import math
import shlex
import sys
import time
from typing import Sequence

import numpy as np
import torch
from deepinv.physics import Tomography

from ipbench.checks.operator_difficulty import denoising_mmse, operator_difficulty, psnr_of_mse
from ipbench.models import load_model
from ipbench.operators import Operator
from ipbench.operators.ct import _SVD_CACHE
from ipbench.operators.svd import operator_svd
from ipbench.results.report import publish

F64 = torch.float64


def build(name: str, params: dict, shape: tuple[int, int, int], n: int = 2):
    return Operator.create(name, params).build(shape, [torch.Generator().manual_seed(i) for i in range(n)], "cpu")


def adjoint_gap(physics, x: torch.Tensor) -> float:
    """max over images of |<A x, u> - <x, A^T u>| / (||A x|| ||u||), u random."""
    ax = physics.A(x)
    u = torch.randn(ax.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    lhs = (ax.to(F64) * u.to(F64)).flatten(1).sum(1)
    rhs = (x.to(F64) * physics.A_adjoint(u).to(F64)).flatten(1).sum(1)
    return float(((lhs - rhs).abs() / (ax.to(F64).flatten(1).norm(dim=1) * u.to(F64).flatten(1).norm(dim=1))).max())


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


def fft2c(a: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a, axes=axes), norm="ortho", axes=axes), axes=axes)


def mri_rows() -> list[str]:
    rows = []
    for shape in [(3, 32, 32), (1, 17, 23)]:
        physics = build("mri", {}, shape)
        x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
        for label, phys, xx in (("float32", physics, x), ("float64", copy.deepcopy(physics).double(), x.double())):
            y = phys.A(xx)
            ref = phys.mask.numpy() * fft2c(xx.numpy())
            got = y[:, 0].numpy() + 1j * y[:, 1].numpy()
            svd = operator_svd(phys, xx)
            rows.append(f"| mri {'x'.join(map(str, shape))} {label} | {np.abs(got - ref).max() / np.abs(ref).max():.1e} | "
                        f"{adjoint_gap(phys, xx):.1e} | {relative(svd.U(svd.singular * svd.Vt(xx)), y):.1e} |")
    for shape in [(1, 8, 8), (1, 16, 16)]:
        phys = build("mri", {}, shape, 1).double()
        n = shape[1] * shape[2]
        matrix = phys.A(torch.eye(n, dtype=F64).view(n, 1, *shape[1:])).flatten(1).T.numpy()
        dense = np.linalg.svd(matrix, compute_uv=False)
        ours = np.sort(operator_svd(phys, torch.zeros(1, *shape, dtype=F64)).singular.flatten().numpy())[::-1]
        rows.append(f"| mri {'x'.join(map(str, shape))} singular values vs numpy SVD of the matrix | "
                    f"{np.abs(ours[:len(dense)] - dense).max():.1e} | | |")
    return rows


def blob(width: int, sigma: float, centre: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian blob about deepinv's rotation centre and its closed-form sinogram over the side, 8 views."""
    detectors = math.ceil(math.sqrt(2) * width)
    axis = (detectors - 1) / 2 - (detectors // 2 - width // 2)  # the rotation centre, a pixel index
    offsets = torch.arange(width, dtype=F64) - axis
    rows, cols = torch.meshgrid(offsets, offsets, indexing="ij")
    image = torch.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2)).view(1, 1, width, width)
    t = torch.arange(detectors, dtype=F64) - (detectors - 1) / 2
    theta = torch.arange(8, dtype=F64) * math.pi / 8
    t0 = centre[0] * torch.cos(theta) - centre[1] * torch.sin(theta)
    return image, math.sqrt(2 * math.pi) * sigma * torch.exp(-(t[:, None] - t0[None, :]) ** 2 / (2 * sigma**2)) / width


def ct_rows() -> list[str]:
    rows = []
    for width, sigma in ((32, 3.0), (64, 6.0)):
        physics = build("ct", {"views": 8}, (1, width, width), 1).double()
        worst = 0.0
        for centre in ((0.0, 0.0), (4.0, -3.0), (-5.5, 2.25)):
            centre = (centre[0] * width / 32, centre[1] * width / 32)
            image, expected = blob(width, sigma, centre)
            worst = max(worst, relative(physics.A(image)[0, 0], expected))
        rows.append(f"| ct {width} px, 8 views: Gaussian blobs (sigma {sigma:g} px, 3 centres) vs closed form | "
                    f"{worst:.1e} | | |")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    for views in (4, 8, 60):
        physics = build("ct", {"views": views}, (3, 32, 32))
        iradon = Tomography(angles=views, img_width=32, circle=False, normalize=False, adjoint_via_backprop=False)
        _SVD_CACHE.clear()
        start = time.perf_counter()
        svd = operator_svd(physics, x)
        seconds = time.perf_counter() - start
        rows.append(f"| ct 32 px, {views} views: ipbench A^T float32 / float64; deepinv IRadon adjoint | | "
                    f"{adjoint_gap(physics, x):.1e} / {adjoint_gap(copy.deepcopy(physics).double(), x.double()):.1e}; "
                    f"{adjoint_gap(iradon, x):.1e} | {relative(svd.U(svd.singular * svd.Vt(x)), physics.A(x)):.1e} "
                    f"(SVD {seconds:.2f} s) |")
    physics = build("ct", {}, (1, 64, 64), 1)
    _SVD_CACHE.clear()
    start = time.perf_counter()
    operator_svd(physics, torch.zeros(1, 1, 64, 64))
    rows.append(f"| ct 64 px, 4 views: dense SVD time | | | {time.perf_counter() - start:.1f} s |")
    return rows


def norm_rows() -> list[str]:
    rows = []
    for views in (2, 4, 8, 16, 30, 60):
        largest = float(operator_svd(build("ct", {"views": views}, (1, 32, 32), 1),
                                     torch.zeros(1, 1, 32, 32)).singular.max())
        rows.append(f"| {views} | {largest:.3f} | {32 * largest:.2f} |")
    return rows


def difficulty_rows(model) -> list[str]:
    sigma_y = 0.025
    reference = denoising_mmse(model, sigma_y)
    rows = []
    cases = [("ct", {"views": v}) for v in (2, 4, 8, 16, 30)] + [
        ("mri", {"acceleration": 4, "center_fraction": 0.08}), ("mri", {"acceleration": 8, "center_fraction": 0.04})]
    for name, params in cases:
        d = operator_difficulty(model, Operator.create(name, params), mmse_denoise=reference)
        s = d.spectrum
        measured = int((s.singular > 0).sum())
        setting = ", ".join(f"{k} {v}" for k, v in params.items())
        rows.append(f"| {name} | {setting} | {measured} | {s.largest:.3f} | {s.below_noise:.3f} | "
                    f"{psnr_of_mse(d.mmse):.2f} | {d.ratio:.2f} |")
    rows.append(f"| denoise | | 1024 | 1.000 | 0.000 | {psnr_of_mse(reference):.2f} | 1.00 |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="Also write the report to this Markdown file.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model = load_model("gaussian-fashion32")
    agreement, norms, difficulty = mri_rows() + ct_rows(), norm_rows(), difficulty_rows(model)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join(["python", "benchmarks/ct_mri_agreement.py", *(argv if argv is not None else sys.argv[1:])])
    report = "\n".join([
        "# CT and MRI: agreement with references, and difficulty at 32 px", "",
        f"- Command: `{command}`",
        f"- Date: {stamp}; torch {torch.__version__}; {torch.get_num_threads()} thread(s); total "
        f"{time.perf_counter() - started:.0f} s.",
        "- A vs reference: max |A x - ref| / max |ref| (mri: M fft2c(x) in numpy on x ~ U(0, 1); ct: closed-form line "
        "integrals of Gaussian blobs about deepinv's rotation centre, over the side). Adjoint: max over 2 images of "
        "|<A x, u> - <x, A^T u>| / (||A x|| ||u||), x, u ~ N(0, 1). SVD: max |U diag(s) V^T x - A x| / max |A x|.",
        "", "| case | A vs reference | adjoint | SVD |", "|---|---|---|---|", *agreement, "",
        "## The scale of a sinogram", "",
        "ipbench's y is deepinv's `normalize=False` sinogram divided by the side W = 32; ||A|| is its largest singular "
        "value (exact, the dense SVD); deepinv's `normalize=True` divides the same sinogram by W ||A|| instead, so its "
        "y is ipbench's times 1 / ||A||.", "",
        "| views | ipbench ||A|| | deepinv's divisor W ||A|| |", "|---|---|---|", *norms, "",
        "## Difficulty at 32 px, sigma_y = 0.025", "",
        "Spectrum: the number of non-zero singular values of 1,024, the largest, the fraction below sigma_y; MMSE: the "
        "exact posterior of `gaussian-fashion32` as PSNR, and its ratio to denoising's (mri: one mask, seed 0).", "",
        "| operator | setting | s > 0 | s_max | s < sigma_y | MMSE PSNR dB | MMSE ratio |", "|---|---|---|---|---|---|---|",
        *difficulty])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
