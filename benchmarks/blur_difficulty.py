"""How hard Gaussian deblurring is at a given kernel: spectrum summary and Gaussian-prior MMSE per sigma.

For images of the model's shape (gaussian-fashion32: 1 x 32 x 32) and one sigma_y, each row is a Gaussian
blur (reflect padding by default), by sigma: the named kernels of deblur-gauss and a sweep of sigma with
kernel size 2 ceil(3 sigma) + 1 (capped to the largest that fits the padding). Columns: A's extreme singular values,
its condition number, the fraction of singular values below sigma_y, and the exact MMSE of the Gaussian
prior (as PSNR) for deblurring, for denoising (A = I) at the same sigma_y, and their ratio. The other
operators with an exact SVD follow at their defaults. The numbers come from ipbench.operators.spectrum
and ipbench.checks.operator_difficulty; this script chooses the rows and renders the table.

    python benchmarks/blur_difficulty.py --out results/blur_difficulty.md   # about 45 s of CPU
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
import time
from typing import Any, Sequence

import torch

from ipbench.checks.operator_difficulty import Difficulty, denoising_mmse, operator_difficulty, psnr_of_mse
from ipbench.models import load_model
from ipbench.operators import Operator
from ipbench.operators.blur import KERNELS, scaled_blur
from ipbench.results.report import publish

SIGMAS = [0.375, 0.75, 1.0, 1.5, 2.0, 3.0]
OTHERS: list[tuple[str, dict[str, Any]]] = [("sr", {}), ("inpaint-box", {}), ("inpaint-random", {})]


def sweep_size(sigma: float, side: int, padding: str) -> int:
    """2 ceil(3 sigma) + 1, capped to the largest odd size that fits: reflect needs size // 2 < side."""
    cap = 2 * side - 1 if padding == "reflect" else side if side % 2 else side - 1
    return min(2 * math.ceil(3 * sigma) + 1, cap)


def blur_rows(side: int, sigmas: Sequence[float], padding: str) -> list[tuple[str, int, float]]:
    """(label, kernel size, sigma) by sigma: the named kernels at this side and the sweep (a sweep sigma that
    a named kernel has is left to the named one)."""
    named = [(f"`{name}`", *scaled_blur(side, name)) for name in KERNELS]
    taken = {round(sigma, 9) for _, _, sigma in named}
    sweep = [("sweep", sweep_size(s, side, padding), s) for s in sigmas if round(s, 9) not in taken]
    return sorted(named + sweep, key=lambda row: row[2])


def cells(d: Difficulty) -> list[str]:
    s = d.spectrum
    return [f"{s.smallest:.3g}", f"{s.largest:.4f}", f"{s.condition:.3g}", f"{s.below_noise:.3f}",
            f"{psnr_of_mse(d.mmse):.2f} ({d.mmse:.2e})", f"{psnr_of_mse(d.mmse_denoise):.2f}", f"{d.ratio:.2f}"]


COLUMNS = ["s_min", "s_max", "condition", "s < sigma_y", "MMSE PSNR dB (MSE)", "denoise PSNR dB", "MMSE ratio"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gaussian-fashion32", help="a Gaussian prior model (exact posterior)")
    parser.add_argument("--sigma-y", type=float, default=0.025)
    parser.add_argument("--sigmas", type=float, nargs="+", default=SIGMAS, help="kernel sigmas of the sweep, px")
    parser.add_argument("--padding", default="reflect")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/blur_difficulty.py", *given])
    start = time.perf_counter()
    model = load_model(args.model, torch.device("cpu"))
    shape = tuple(model.image_shape)
    side = min(shape[1], shape[2])
    reference = denoising_mmse(model, args.sigma_y)

    blur_table = ["| kernel | size | sigma px | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 3)]
    for label, size, sigma in blur_rows(side, args.sigmas, args.padding):
        operator = Operator.create("deblur-gauss", {"kernel_size": size, "sigma": sigma, "padding": args.padding,
                                                    "sigma_y": args.sigma_y})
        d = operator_difficulty(model, operator, mmse_denoise=reference)
        blur_table.append(f"| {label} | {size} | {sigma:g} | " + " | ".join(cells(d)) + " |")
        print(f"[{time.perf_counter() - start:5.0f} s] {label} {size} {sigma:g}", file=sys.stderr, flush=True)
    other_table = ["| operator | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, params in OTHERS:
        d = operator_difficulty(model, Operator.create(name, {**params, "sigma_y": args.sigma_y}),
                                mmse_denoise=reference)
        other_table.append(f"| {name} | " + " | ".join(cells(d)) + " |")
        print(f"[{time.perf_counter() - start:5.0f} s] {name}", file=sys.stderr, flush=True)

    lines = [
        "# Gaussian deblurring: how hard each kernel is",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); total {time.perf_counter() - start:.0f} s.",
        f"- Model: `{args.model}` ({' x '.join(map(str, shape))}), a stationary Gaussian prior (exact posterior).",
        f"- sigma_y = {args.sigma_y} (image units); blur padding {args.padding}; sweep kernel size "
        "2 ceil(3 sigma) + 1, capped to fit; the named kernels are deblur-gauss's `kernel` choices at this side.",
        "- s_min, s_max: A's extreme singular values (exact: separable SVD; 0 where A has a null space). "
        "condition = s_max / s_min (an s_min below about 1e-8 is round-off of the kernel's float32 taps, so a "
        "condition beyond about 1e7 only says 'singular'). s < sigma_y: the fraction of singular values below the noise, the directions the prior "
        "must fill in.",
        "- MMSE: tr(Cov[x | y]) / D of the Gaussian prior (the least expected squared error of any estimator), as "
        "PSNR; denoise: the same for A = I at the same sigma_y; MMSE ratio = MMSE / MMSE(denoise) (1: as hard "
        "as denoising).",
        "",
        *blur_table,
        "",
        "Other operators with an exact SVD, at their defaults (a random mask: one draw, seed 0):",
        "",
        *other_table,
    ]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
