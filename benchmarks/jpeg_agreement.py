"""How the `jpeg` operator's value (Pillow's JPEG) compares with other JPEG codecs, and kornia's differentiable JPEG,
whose derivative is the operator's, with the operator's value.

For each image set and quality, against A(x), the operator's round trip of the 8-bit image (Pillow, libjpeg-turbo;
mode L for greyscale, RGB with 4:2:0 chroma subsampling):
- torchvision.io's `encode_jpeg` / `decode_jpeg`, another binding of libjpeg-turbo (left out where it is missing);
- RED-diff's codec (ipbench.checks.jpeg_reference, numpy) as its code computes it (float, nothing clipped), and
  with a decoder's 8-bit output step (clipped to [0, 1], rounded); n/a where a side is not a multiple of 16;
- kornia's `jpeg_codec_differentiable` (float32; greyscale as R = G = B and the channel mean), and as a diagnosis
  of its gap, the same with its smooth rounding r + (u - r)^3 swapped for plain rounding (through a private name,
  left out where a kornia version lacks it).
Differences in grey levels (1/255): largest and mean absolute, and PSNR on [0, 1]. Then kornia's quantization tables
against libjpeg's (IJG scaling, baseline), which kornia scales with a smooth floor.

    python benchmarks/jpeg_agreement.py --out results/jpeg_agreement.md   # under a minute of CPU
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from ipbench.checks.jpeg_reference import CHROMA_BASE, LUMA_BASE, ijg_tables, reddiff_jpeg
from ipbench.data import load_images
from ipbench.operators.jpeg import kornia_jpeg, libjpeg_round_trip
from ipbench.results.report import publish

QUALITIES = [1, 10, 30, 50, 75, 95]


def torchvision_round_trip() -> Callable[[torch.Tensor, int], torch.Tensor] | None:
    """torchvision.io's JPEG round trip of a [0, 1] batch (8-bit), or None where torchvision has none."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
    except ImportError:
        return None

    def round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
        pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its image codecs
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = decode_jpeg(encode_jpeg(list(pixels), quality=quality), mode=ImageReadMode.UNCHANGED)
        return torch.stack(decoded).double() / 255

    return round_trip


def hard_rounding_kornia(x: torch.Tensor, quality: int) -> torch.Tensor:
    """kornia_jpeg with kornia's smooth rounding swapped for torch.round for the call (a diagnosis only)."""
    import kornia.enhance.jpeg as kj

    smooth = kj._differentiable_polynomial_rounding
    kj._differentiable_polynomial_rounding = torch.round
    try:
        return kornia_jpeg(x, quality)
    finally:
        kj._differentiable_polynomial_rounding = smooth


def kornia_table_gaps(qualities: Sequence[int]) -> list[str]:
    """Per quality, the largest |kornia - IJG| entry of the luma and chroma tables and how many of the 128 differ
    by more than 0.01 (kornia's `_quantize`, recomputed from its private functions)."""
    import kornia.enhance.jpeg as kj

    rows = []
    for quality in qualities:
        q = torch.tensor([float(quality)], dtype=torch.float64)
        gaps = []
        for base, ijg in zip((LUMA_BASE, CHROMA_BASE), ijg_tables(quality)):
            scaled = torch.from_numpy(base).double()[None, None] * kj._jpeg_quality_to_scale(q)[:, None, None, None]
            table = kj._differentiable_polynomial_floor(kj._differentiable_clipping((scaled + 50.0) / 100.0, 1, 255))
            gaps.append((table[0, 0].numpy() - ijg).__abs__())
        both = np.concatenate([g.ravel() for g in gaps])
        rows.append(f"| {quality} | {gaps[0].max():.3f} | {gaps[1].max():.3f} | {int((both > 0.01).sum())} |")
    return rows


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a.double() - b.double()).square().mean()))


def gap(a: torch.Tensor, b: torch.Tensor, mean_first: bool = False) -> str:
    d = (a.double() - b.double()).abs() * 255
    return f"{float(d.mean()):.2f}, {float(d.max()):.1f}" if mean_first else f"{float(d.max()):.2f}, {float(d.mean()):.4f}"


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
    import kornia.enhance.jpeg as kj
    import PIL
    import torchvision

    other = torchvision_round_trip()
    private = all(hasattr(kj, name) for name in ("_differentiable_polynomial_rounding", "_differentiable_polynomial_floor",
                                                  "_differentiable_clipping", "_jpeg_quality_to_scale"))
    codecs = ["| images | n | quality | torchvision.io: max, mean levels | RED-diff's codec: mean, max levels; PSNR dB "
              "| RED-diff's, 8-bit output: mean, max levels; PSNR dB | RED-diff's outside [0, 1] by > 1/2 level | A vs image PSNR dB |",
              "|" + "---|" * 8]
    smooth_rows = ["| images | n | quality | kornia: mean, max levels | kornia PSNR dB | kornia, plain rounding: "
                   "mean, max levels; PSNR dB | kornia vs image PSNR dB |", "|" + "---|" * 7]
    for label, x in image_sets(args.num_images):
        x = x.double()
        for quality in args.qualities:
            value = libjpeg_round_trip(x, quality)
            binding = gap(other(x, quality), value) if other else "n/a"
            if x.shape[-1] % 16 == 0 and x.shape[-2] % 16 == 0:
                raw, eight = (torch.from_numpy(reddiff_jpeg(x.numpy(), quality, eight_bit=e)) for e in (False, True))
                reddiff = [f"{gap(r, value, mean_first=True)}; {psnr(r, value):.2f}" for r in (raw, eight)]
                half = 0.5 / 255  # beyond it the 8-bit step changes the pixel
                reddiff.append(f"{float(((raw < -half) | (raw > 1 + half)).double().mean()):.3f}")
            else:
                reddiff = ["n/a"] * 3
            codecs.append(f"| {label} | {len(x)} | {quality} | {binding} | {' | '.join(reddiff)} | {psnr(value, x):.2f} |")
            with torch.no_grad():
                smooth = kornia_jpeg(x.float(), quality)
                hard = hard_rounding_kornia(x.float(), quality) if private else None
            plain = f"{gap(hard, value, mean_first=True)}; {psnr(hard, value):.2f}" if hard is not None else "n/a"
            smooth_rows.append(f"| {label} | {len(x)} | {quality} | {gap(smooth, value, mean_first=True)} "
                               f"| {psnr(smooth, value):.2f} | {plain} | {psnr(smooth, x):.2f} |")
        print(f"[{time.perf_counter() - start:5.0f} s] {label}", file=sys.stderr, flush=True)
    lines = [
        "# JPEG: the operator's value against other codecs, and kornia's differentiable JPEG",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; torch {torch.__version__}, "
        f"Pillow {PIL.__version__}, torchvision {torchvision.__version__}, kornia {kornia.__version__}; "
        f"total {time.perf_counter() - start:.0f} s.",
        "- A: the `jpeg` operator's value, Pillow's JPEG round trip of the 8-bit image (mode L for greyscale; RGB with "
        "4:2:0 subsampling). Every column compares with it: grey levels (1/255) and PSNR on [0, 1].",
        "- RED-diff's codec: NVlabs/RED-diff utils/jpeg_torch.py:110-200 recomputed in numpy "
        "(ipbench/checks/jpeg_reference.py): float, never clipped; chroma subsampled by decimation and upsampled by "
        "repetition. 8-bit output: the same clipped to [0, 1] and rounded, as a decoder writing a file does. Outside "
        "[0, 1]: the fraction of its (float) output pixels more than half a grey level below 0 or above 1.",
        "- kornia: `jpeg_codec_differentiable` in float32, greyscale as R = G = B and the channel mean (the function "
        "whose derivative A's gradient is); plain rounding: its smooth rounding replaced by torch.round (a diagnosis).",
        "- Uniform noise: 8-bit images with independent uniform pixels (seed 0), a worst case for chroma subsampling.",
        "",
        "## Codecs",
        "",
        *codecs,
        "",
        "## kornia's differentiable JPEG",
        "",
        *smooth_rows,
        "",
        "kornia's quantization tables against libjpeg's (IJG scaling, baseline), by quality: the largest difference of "
        "an entry, luma and chroma, and how many of the 128 entries differ by more than 0.01:",
        "",
        *(["| quality | luma max | chroma max | entries off |", "|---|---|---|---|", *kornia_table_gaps(args.qualities)]
          if private else ["(n/a: this kornia version lacks the private functions)"]),
    ]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
