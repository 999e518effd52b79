"""How closely the `jpeg` operator, and kornia's differentiable JPEG that gives its gradient, match PIL's JPEG.

For each image set and quality: the reference is PIL's round trip (`Image.save(format="JPEG", quality=q)` of the
8-bit image, mode L for greyscale and RGB with PIL's default 4:2:0 subsampling, then reopened). Columns: the
operator's value A(x) (libjpeg-turbo through torchvision.io) against it, as the largest and the mean absolute
difference in grey levels (1/255); kornia's `jpeg_codec_differentiable` (float32, greyscale as R = G = B and the
channel mean) against it, mean and largest difference in grey levels and PSNR; and the PSNR of PIL's and kornia's
output against the image itself, how much each compression destroys. Two diagnoses of kornia's gap follow, both
through kornia's private functions (left out, saying so, where a kornia version lacks them): the same codec with
its smooth rounding r + (u - r)^3 replaced by plain rounding, and its quantization tables against the IJG ones
that libjpeg uses (kornia scales them with a smooth floor too).

    python benchmarks/jpeg_agreement.py --out results/jpeg_agreement.md   # under a minute of CPU
"""
from __future__ import annotations

import argparse
import datetime
import io
import shlex
import sys
import time
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ipbench.data import load_images
from ipbench.operators.jpeg import kornia_jpeg, libjpeg_round_trip
from ipbench.results.report import publish

QUALITIES = [1, 10, 30, 50, 75, 95]


def pil_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL's JPEG of each 8-bit image of a [0, 1] batch, decoded, as float64 in [0, 1]."""
    out = []
    for image in (x.double().clamp(0, 1) * 255).round().to(torch.uint8).numpy():
        grey = image.shape[0] == 1
        pil = Image.fromarray(image[0] if grey else image.transpose(1, 2, 0), mode="L" if grey else "RGB")
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(decoded[None] if grey else decoded.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).double() / 255


def ijg_table(base: torch.Tensor, quality: int) -> torch.Tensor:
    """libjpeg's jpeg_quality_scaling and baseline table: floor((base s + 50) / 100) clipped to [1, 255]."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return ((base * scale + 50) // 100).clamp(1, 255)


def kornia_table_gaps(qualities: Sequence[int]) -> list[str]:
    """Per quality, the largest |kornia - IJG| entry of the luma and chroma tables and how many of the 128 differ
    by more than 0.01 (kornia's `_quantize`, recomputed from its private helpers)."""
    import kornia.enhance.jpeg as kj

    rows = []
    for quality in qualities:
        q = torch.tensor([float(quality)], dtype=torch.float64)
        gaps = []
        for base in (kj._get_default_qt_y(None, torch.float64), kj._get_default_qt_c(None, torch.float64)):
            scaled = base[None, None] * kj._jpeg_quality_to_scale(q)[:, None, None, None]
            table = kj._differentiable_polynomial_floor(kj._differentiable_clipping((scaled + 50.0) / 100.0, 1, 255))
            gaps.append((table[0, 0] - ijg_table(base, quality)).abs())
        both = torch.cat([g.flatten() for g in gaps])
        rows.append(f"| {quality} | {float(gaps[0].max()):.3f} | {float(gaps[1].max()):.3f} | {int((both > 0.01).sum())} |")
    return rows


def hard_rounding_kornia(x: torch.Tensor, quality: int) -> torch.Tensor:
    """kornia_jpeg with kornia's smooth rounding swapped for torch.round for the call (a diagnosis only)."""
    import kornia.enhance.jpeg as kj

    smooth = kj._differentiable_polynomial_rounding
    kj._differentiable_polynomial_rounding = torch.round
    try:
        return kornia_jpeg(x, quality)
    finally:
        kj._differentiable_polynomial_rounding = smooth


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a.double() - b.double()).square().mean()))


def image_sets(count: int) -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: (torch.rand(*shape, generator=g) * 255).round() / 255  # noqa: E731  (8-bit images)
    return [("fashion32-test (1 x 32 x 32)", load_images("fashion32-test", (1, 32, 32), num_images=count).images),
            ("photos (3 x 256 x 256)", load_images("photos", (3, 256, 256)).images),
            ("uniform noise, 1 x 32 x 32", rand(16, 1, 32, 32)),
            ("uniform noise, 3 x 32 x 32", rand(16, 3, 32, 32)),
            ("uniform noise, 3 x 17 x 23", rand(16, 3, 17, 23))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=200, help="fashion32-test images (all 200 by default)")
    parser.add_argument("--qualities", type=int, nargs="+", default=QUALITIES)
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/jpeg_agreement.py", *given])
    start = time.perf_counter()
    import kornia
    import PIL
    import torchvision

    import kornia.enhance.jpeg as kj

    private = all(hasattr(kj, name) for name in ("_differentiable_polynomial_rounding", "_differentiable_polynomial_floor",
                                                  "_differentiable_clipping", "_jpeg_quality_to_scale",
                                                  "_get_default_qt_y", "_get_default_qt_c"))
    table = ["| images | n | quality | A vs PIL: max, mean levels | kornia vs PIL: mean, max levels | kornia vs PIL PSNR dB "
             "| kornia, plain rounding, vs PIL: mean levels, PSNR dB | PIL vs image PSNR dB | kornia vs image PSNR dB |",
             "|" + "---|" * 9]
    for label, x in image_sets(args.num_images):
        for quality in args.qualities:
            reference = pil_round_trip(x, quality)
            exact = libjpeg_round_trip(x, quality).double()
            with torch.no_grad():
                smooth = kornia_jpeg(x.float(), quality).double()
                hard = hard_rounding_kornia(x.float(), quality).double() if private else None
            gap, soft_gap = (exact - reference).abs() * 255, (smooth - reference).abs() * 255
            plain = (f"{float((hard - reference).abs().mean()) * 255:.2f}, {psnr(hard, reference):.2f}"
                     if hard is not None else "n/a")
            table.append(f"| {label} | {len(x)} | {quality} | {float(gap.max()):.2f}, {float(gap.mean()):.4f} "
                         f"| {float(soft_gap.mean()):.2f}, {float(soft_gap.max()):.1f} | {psnr(smooth, reference):.2f} "
                         f"| {plain} | {psnr(reference, x):.2f} | {psnr(smooth, x):.2f} |")
        print(f"[{time.perf_counter() - start:5.0f} s] {label}", file=sys.stderr, flush=True)
    lines = [
        "# JPEG: the operator and kornia's differentiable JPEG against PIL",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, kornia {kornia.__version__}, Pillow {PIL.__version__}; "
        f"total {time.perf_counter() - start:.0f} s.",
        "- Reference: PIL's JPEG of the 8-bit image at the quality (mode L for greyscale; RGB with PIL's default 4:2:0 "
        "subsampling), reopened. Differences in grey levels (1/255); PSNR on [0, 1].",
        "- A: the `jpeg` operator's value (libjpeg-turbo through torchvision.io). kornia: `jpeg_codec_differentiable` "
        "in float32, greyscale as R = G = B and the channel mean (the function whose derivative A's gradient is).",
        "- Uniform noise: 8-bit images with independent uniform pixels (seed 0), a worst case for chroma subsampling.",
        "",
        *table,
        "",
        "kornia's quantization tables against libjpeg's (IJG scaling, baseline), by quality: the largest difference of "
        "an entry, luma and chroma, and how many of the 128 entries differ by more than 0.01:",
        "",
        *(["| quality | luma max | chroma max | entries off |", "|---|---|---|---|", *kornia_table_gaps(args.qualities)]
          if private else ["(n/a: this kornia version lacks the private helpers)"]),
    ]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
