"""`ffhq-1k`: the FFHQ evaluation images of DPS and its successors, read from the user's own copy.

Layout (DPS, Chung et al. 2023, sec. 4 "FFHQ 256x256 ... 1k validation images"; reused by DiffPIR, DAPS
and most of the line): the first 1,000 images of FFHQ (Karras et al. 2019), which are folder `00000` of
the release: files `00000.png` ... `00999.png`. Ids are the file stems, "00000" ... "00999" (images 0-999),
in that order, so `--num-images N` takes images 0 .. N-1.

Point the environment variable IPBENCH_FFHQ_DIR at that folder (or at the release root that holds
`00000/`). The 1024x1024 originals and 256x256 downsized copies both work: `load_images` centre-crops
(a no-op for these square images) and resizes to the model's shape with PIL bicubic, antialiased, which
is not bit-identical to every paper's own 1024 -> 256 resize. A contiguous prefix (00000.png .. 0NNNN.png)
is accepted, for a partial copy; a gap is refused, because it would silently change which images
"the first N" are.
"""
from __future__ import annotations

import os
from pathlib import Path

from ipbench.data.sets import register_image_set
from ipbench.errors import UsageError
from ipbench.paths import expand_user

FFHQ_DIR_ENV = "IPBENCH_FFHQ_DIR"
FFHQ_1K_IDS = tuple(f"{i:05d}" for i in range(1000))

_HOW = f"set {FFHQ_DIR_ENV} to the folder holding FFHQ's 00000.png ... 00999.png (folder 00000 of the FFHQ release)"


def ffhq_1k_files(folder: str | Path | None) -> list[Path]:
    """The files of `ffhq-1k` in `folder` (or `folder/00000`), in id order; see the module docstring."""
    if folder is None or str(folder).strip() == "":
        raise UsageError(f"image set 'ffhq-1k' needs your copy of FFHQ: {_HOW}, or pass --images DIR")
    root = expand_user(folder, f"image set 'ffhq-1k': {FFHQ_DIR_ENV}=")
    if not root.is_dir():
        raise UsageError(f"image set 'ffhq-1k': {FFHQ_DIR_ENV}={str(folder)!r} is not a folder; {_HOW}")
    if not (root / "00000.png").is_file() and (root / "00000" / "00000.png").is_file():
        root = root / "00000"  # the release root: images1024x1024/00000/00000.png
    present = [(root / f"{i}.png").is_file() for i in FFHQ_1K_IDS]
    if not present[0]:
        raise UsageError(f"image set 'ffhq-1k': {str(root)!r} has no 00000.png (nor 00000/00000.png); {_HOW}")
    count = present.index(False) if False in present else len(present)
    if any(present[count:]):
        raise UsageError(f"image set 'ffhq-1k': {str(root)!r} lacks {FFHQ_1K_IDS[count]}.png but has later images; "
                         "the set is 00000.png ... 00999.png in order, so fill the gap (or pass --images DIR)")
    return [root / f"{i}.png" for i in FFHQ_1K_IDS[:count]]


@register_image_set("ffhq-1k", split="test", origin="FFHQ")  # the DPS line evaluates on it
def ffhq_1k() -> list[Path]:
    """FFHQ images 00000-00999 (the DPS-line FFHQ test set) from your folder $IPBENCH_FFHQ_DIR."""
    return ffhq_1k_files(os.environ.get(FFHQ_DIR_ENV))
