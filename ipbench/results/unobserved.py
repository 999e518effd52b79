"""How figures show pixels that a measurement does not see (inpainting holes).

The runner saves such a measurement with an opacity channel, 0 where A sees nothing (benchmark/runner.py).
Drawn black, a hole would vanish on Fashion-MNIST's black background; drawn here as a magenta checkerboard,
a colour outside any grayscale image and a pattern unlike image content, the same for grayscale and RGB.
"""
from __future__ import annotations

from PIL import Image

CHECKER = ((255, 0, 255), (150, 0, 150))  # light and dark magenta
CHECKER_SQUARES = 16  # squares across the shorter side


def checkerboard(size: tuple[int, int]) -> Image.Image:
    """An RGB checkerboard of `size` (width, height) in the CHECKER colours."""
    width, height = size
    square = max(1, min(width, height) // CHECKER_SQUARES)
    board = Image.new("RGB", size, CHECKER[0])
    dark = Image.new("RGB", (square, square), CHECKER[1])
    for top in range(0, height, square):
        for left in range((top // square) % 2 * square, width, 2 * square):
            board.paste(dark, (left, top))
    return board


def shown(image: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """`image` as RGB, resized (nearest) to `size` if given, its transparent pixels on the checkerboard."""
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    if image.mode not in ("LA", "RGBA", "PA") and "transparency" not in image.info:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    opaque = rgba.getchannel("A").point(lambda a: 255 if a > 0 else 0)  # seen pixels keep their value
    board = checkerboard(rgba.size)
    board.paste(rgba.convert("RGB"), (0, 0), opaque)
    return board
