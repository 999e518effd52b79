"""RED-diff's JPEG codec recomputed in numpy: the reference that tests/test_jpeg_operator.py and
benchmarks/jpeg_agreement.py hold the `jpeg` operator (Pillow's libjpeg-turbo) against.

NVlabs/RED-diff at 66482f2, utils/jpeg_torch.py: RGB to YCbCr by its matrix, 128 added to Cb and Cr (:8-13); chroma
subsampled by keeping every other row and column (:25-26); 8 x 8 blocks minus 128, orthonormal 2-D DCT-II
(utils/dct.py:187-195), divided by the quality's tables, rounded (:110-152); decoding multiplies back, inverts the
DCT, adds 128, repeats each chroma sample over 2 x 2 and converts back by its inverse matrix (:155-202). The tables
(utils/jpeg_quantization.py, from torchjpeg) are libjpeg's: the IJG base tables of JPEG Annex K scaled to the quality
and clipped to [1, 255] (`ijg_tables`; equal to that file's for every quality 1..100). The code works on [-1, 1] data
mapped to [0, 255] by (x + 1) / 2 * 255 (:114) and back by x / 255 * 2 - 1 (:200): here in image units, x 255 and
y / 255. Like the code, nothing is clipped or rounded to 8 bits unless asked (`eight_bit`), and sides must be
multiples of 16.
"""
from __future__ import annotations

import numpy as np
from scipy.fft import dctn, idctn

# JPEG Annex K, tables K.1 (luminance) and K.2 (chrominance): libjpeg's base tables
LUMA_BASE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]])
CHROMA_BASE = np.full((8, 8), 99)
CHROMA_BASE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
RGB_TO_YCBCR = np.array([[.299, .587, .114], [-.1687, -.3313, .5], [.5, -.4187, -.0813]])  # jpeg_torch.py:10
YCBCR_TO_RGB = np.array([[1.0, -3.68199903e-05, 1.40198758], [1.0, -3.44113281e-01, -7.14103821e-01],
                         [1.0, 1.77197812, -1.34583413e-04]])  # jpeg_torch.py:18-20


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """libjpeg's tables at `quality` (jcparam.c: jpeg_quality_scaling, then baseline): (base s + 50) // 100 in
    [1, 255], s = 5000 / q below 50 and 200 - 2 q from 50 on."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(np.clip((base * scale + 50) // 100, 1, 255).astype(np.float64) for base in (LUMA_BASE, CHROMA_BASE))


def _blocks(plane: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H/8, W/8, 8, 8)."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


def _unblocks(blocks: np.ndarray) -> np.ndarray:
    n, bh, bw = blocks.shape[:3]
    return blocks.transpose(0, 1, 3, 2, 4).reshape(n, bh * 8, bw * 8)


def _code(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Encode and decode one [0, 255] plane: blockwise DCT of plane - 128, quantized by `table`, and back."""
    coefficients = dctn(_blocks(plane) - 128, type=2, norm="ortho", axes=(-2, -1))
    quantized = np.round(coefficients / table) * table  # torch.round and np.round both round half to even
    return _unblocks(idctn(quantized, type=2, norm="ortho", axes=(-2, -1))) + 128


def reddiff_jpeg(x: np.ndarray, quality: int, eight_bit: bool = False) -> np.ndarray:
    """RED-diff's decode(encode(x, qf)) of a (N, 3, H, W) batch in image units [0, 1] (a greyscale batch, C = 1, as
    R = G = B, which the code takes to Cb = Cr = 128 and back, and returned as its first channel). `eight_bit`: then
    clipped to [0, 1] and rounded to 1/255, as a decoder that writes 8-bit samples does (the code does neither)."""
    grey = x.shape[1] == 1
    rgb = np.repeat(x, 3, axis=1) if grey else x
    if rgb.shape[1] != 3 or rgb.shape[2] % 16 or rgb.shape[3] % 16:
        raise ValueError(f"RED-diff's codec takes RGB (or grey) images with sides divisible by 16, got {x.shape}")
    luma_table, chroma_table = ijg_tables(quality)
    ycbcr = np.einsum("oc,nchw->nohw", RGB_TO_YCBCR, rgb * 255.0)
    ycbcr[:, 1:] += 128
    luma = _code(ycbcr[:, 0], luma_table)
    chroma = [_code(ycbcr[:, c, ::2, ::2], chroma_table).repeat(2, axis=1).repeat(2, axis=2) for c in (1, 2)]
    decoded = np.stack([luma, chroma[0] - 128, chroma[1] - 128], axis=1)
    out = np.einsum("oc,nchw->nohw", YCBCR_TO_RGB, decoded) / 255.0
    out = np.round(np.clip(out, 0, 1) * 255) / 255 if eight_bit else out
    return out[:, :1] if grey else out
