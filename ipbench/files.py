"""Writing files so that a crash, a full disk or Ctrl-C never leaves a partial one under the final name.

Each file is written to a temporary name beside it and renamed over the target (atomic on POSIX and
Windows), so a file that exists is complete: a resumed run can trust what it finds.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from PIL import Image


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary_path)`, then rename the temporary file to `path` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda partial: partial.write_text(text))


def write_png(image: "Image.Image", path: str | Path, text: dict[str, str] | None = None) -> None:
    """Write a PIL image as a PNG atomically, with `text` in its text chunks (PIL only: no torch, so that
    `bench grid` and `bench report` write figures without importing it)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    atomic_write(path, lambda partial: image.save(partial, format="PNG", pnginfo=info))
