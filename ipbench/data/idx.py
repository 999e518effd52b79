"""IDX files (the MNIST / Fashion-MNIST format, optionally gzipped) as image tensors."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ipbench.errors import UsageError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (magic 0x0000TTDD: type TT, DD dimensions, big-endian sizes)."""
    path = Path(path)
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UsageError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"{path}: IDX header says {shape} but the file holds {data.size} values")
    return data.reshape(shape)


def idx_images(path: str | Path, pad_to: int | None = 32) -> torch.Tensor:
    """(N, 1, H, W) float32 in [0, 1] from an IDX image file, zero-padded (centred) to pad_to x pad_to."""
    array = read_idx(path)
    if array.ndim != 3:
        raise UsageError(f"{path}: expected an (N, H, W) image array, got shape {array.shape}")
    images = torch.from_numpy(array.astype(np.float32) / 255.0).unsqueeze(1)
    if pad_to is not None:
        dh, dw = pad_to - images.shape[2], pad_to - images.shape[3]
        if dh < 0 or dw < 0:
            raise UsageError(f"{path}: images of {tuple(images.shape[2:])} do not fit in {pad_to}x{pad_to}")
        images = F.pad(images, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    return images


def idx_labels(path: str | Path) -> np.ndarray:
    """(N,) int64 class labels from an IDX label file (a 1-D uint8 array, as Fashion-MNIST's)."""
    array = read_idx(path)
    if array.ndim != 1:
        raise UsageError(f"{path}: expected a 1-D label array, got shape {array.shape}")
    return array.astype(np.int64)
