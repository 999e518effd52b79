"""Opening image files with bounded memory: the size the header declares is checked before any decoding.

A PNG of a few kilobytes can declare 50,000 x 50,000 pixels and decode to gigabytes (a decompression bomb).
PIL only warns between its limit and twice its limit, so every image ipbench reads from a user (test
images, mask files, the PNGs of a run folder) goes through `open_image`, which refuses anything above
`MAX_PIXELS` in one line naming the file, instead of decoding it.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from ipbench.errors import UsageError

MAX_PIXELS = 89_478_485  # PIL's default limit (1 GiB / 4 bytes a pixel / 3), enforced here instead of warned


class ImageTooLarge(UsageError):
    """An image file whose header declares more than MAX_PIXELS pixels; it was not decoded."""


@contextmanager
def open_image(path: str | Path, what: str = "image") -> Iterator[Image.Image]:
    """`Image.open(path)` whose declared width x height is at most MAX_PIXELS (ImageTooLarge otherwise).

    The check reads the header only; the caller decodes (`.load()`, `.convert()`) within the block.
    Other errors of PIL and the OS pass through unchanged.
    """
    def refuse(size: str) -> ImageTooLarge:
        return ImageTooLarge(f"{what} {path}: declares too many pixels{size} to decode safely; at most "
                             f"{MAX_PIXELS:,} are read (a decompression bomb?)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in our words
        try:
            image = Image.open(path)
        except Image.DecompressionBombError:  # over twice PIL's limit: PIL refuses on open already
            raise refuse("") from None
    with image:
        if image.width * image.height > MAX_PIXELS:
            raise refuse(f" ({image.width} x {image.height})")
        yield image
