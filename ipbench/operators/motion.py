"""Motion-blur deconvolution with random-trajectory kernels, one per image (deepinv `Blur`).

DPS (Chung et al. 2023, sec. 4) blurs 256 x 256 images with 61 x 61 motion kernels of intensity 0.5 from
the `motionblur` package (LeviBorodenko/motionblur, `Kernel._createPath` and `_createKernel`).
`motion_kernel` re-implements that algorithm step by step (path budget, Beta step lengths, triangular
angle jitter, a PIL polyline, Gaussian blur, Lanczos resize, normalised to sum 1), with every draw taken
from the image's torch.Generator instead of numpy's global state; a path gives the package's kernel
pixel for pixel, except that the line width is at least 1 (Pillow 12.3+ draws width 0 as nothing).
Deviations from the DPS code: seeded per-image draws, one kernel per image (the DPS script draws one per
run), and a size scaled with the image side (61 at 256 px, 7 at 32 px). The DPS code correlates, deepinv
`Blur` convolves: `Blur` gets K rotated by 180 degrees, so y = correlate(reflect-pad(x), K) exactly.
docs/operators.md has the algorithm, step by step, and the boundary options.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from deepinv.physics import Blur
from PIL import Image, ImageDraw, ImageFilter

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.params import UNIT
from ipbench.operators.blur import PADDINGS, scaled_blur

INTENSITY = 0.5  # DPS: Kernel(size=(61, 61), intensity=0.5)
EPS = 0.1  # the package's "tiny error used for numerical stability"
MAX_TRIES = 100  # redraws of a (vanishingly rare) empty path or one off the canvas (an all-zero kernel)


def _uniform(g: torch.Generator, n: int = 1, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """n draws of U(low, high) in float64 on the CPU."""
    return low + (high - low) * torch.rand(n, generator=g, device=g.device, dtype=torch.float64).cpu()


def _gamma_int(g: torch.Generator, shape: int) -> torch.Tensor:
    """Gamma(shape, 1) for an integer shape: a sum of `shape` Exp(1) draws."""
    return -torch.log1p(-_uniform(g, shape)).sum()


def _trajectory(size: int, intensity: float, g: torch.Generator) -> np.ndarray:
    """Steps 1-4: the (n, 2) vertices (x, y) of the motion path on the 2 size x 2 size canvas."""
    canvas = 2 * size
    diagonal = math.hypot(canvas, canvas)
    # 1-2. Path budget and step lengths; Beta(1, 30) by inversion, 1 - U^(1/30). Drawing candidates 64 at a
    # time and stopping at the first crossing is the package's one-at-a-time loop, in distribution.
    budget = float(0.75 * diagonal * (_uniform(g) + _uniform(g, 1, 0.0, intensity**2)))
    if budget <= 0:  # probability ~2^-53: no path (the package would divide by zero); the caller redraws
        return np.zeros((0, 2))
    scale = (1 - intensity + EPS) * diagonal
    chunks, total = [], 0.0
    while True:
        steps = scale * (1 - _uniform(g, 64) ** (1 / 30))
        steps = steps[steps < budget]
        sums = total + torch.cumsum(steps, 0)
        crossing = torch.nonzero(sums >= budget)
        if len(crossing):
            chunks.append(steps[:int(crossing[0]) + 1])
            break
        chunks.append(steps)
        total = float(sums[-1]) if len(sums) else total
    steps = torch.cat(chunks)
    # 3. Angles: the first uniform in (-M, M), the others triangular in size, signs a Markov chain.
    max_angle = float(_uniform(g, 1, 0.0, intensity * math.pi))
    x, y = _gamma_int(g, 2), _gamma_int(g, 20)
    jitter = float(x / (x + y))  # Beta(2, 20)
    first = _uniform(g, 1, -max_angle, max_angle)
    a, c, b = 0.0, intensity * max_angle, max_angle + EPS  # Triangular(left, mode, right) by inversion
    u = _uniform(g, len(steps) - 1)
    split = (c - a) / (b - a)
    size_k = torch.where(u < split, a + torch.sqrt(u * (b - a) * (c - a)), b - torch.sqrt((1 - u) * (b - a) * (b - c)))
    flips = torch.where(_uniform(g, len(steps) - 1) < jitter, -1.0, 1.0)
    signs = torch.sign(first) * torch.cumprod(flips, 0)  # sign(0) = 0 keeps a straight path, as np.sign does
    angles = torch.cat([first, size_k * signs])
    # 4. Path: cumulative sum of the increments, centred on its mean vertex, rotated, moved to the centre.
    path = torch.cumsum(torch.polar(steps, angles), 0)
    path = (path - path.mean()) * torch.polar(torch.ones((), dtype=torch.float64), _uniform(g, 1, 0.0, math.pi)[0])
    path = path + complex(canvas / 2, canvas / 2)
    return torch.stack([path.real, path.imag], dim=1).numpy()


def _render(path: np.ndarray, size: int) -> np.ndarray:
    """Step 5: the package's drawing of a path into a (size, size) float64 kernel (not yet normalised)."""
    canvas = 2 * size
    diagonal = math.hypot(canvas, canvas)
    image = Image.new("RGB", (canvas, canvas))
    width = max(1, int(diagonal / 150))  # Pillow <= 11 drew width 0 as 1; 12.3+ draws nothing
    ImageDraw.Draw(image).line(xy=[(float(px), float(py)) for px, py in path], width=width)
    image = image.filter(ImageFilter.GaussianBlur(radius=int(diagonal * 0.01)))
    image = image.resize((size, size), resample=Image.Resampling.LANCZOS).convert("L")
    return np.asarray(image, dtype=np.float64)


def motion_kernel(size: int, intensity: float, generator: torch.Generator) -> torch.Tensor:
    """A (size, size) float32 motion kernel K (non-negative, sum 1) drawn from `generator` (see the module doc).

    K is in the package's orientation (row = canvas y, column = canvas x), applied as a correlation.
    """
    for _ in range(MAX_TRIES):
        path = _trajectory(size, intensity, generator)
        kernel = _render(path, size) if len(path) >= 2 else np.zeros((size, size))
        if kernel.sum() > 0:
            return torch.from_numpy(kernel / kernel.sum()).float()
    raise RuntimeError(f"motion_kernel: {MAX_TRIES} paths in a row left the {size} x {size} canvas")


@register_operator("deblur-motion", choices={"padding": PADDINGS}, ranges={"intensity": UNIT})
def deblur_motion(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                  kernel_size: int | None = None, intensity: float = INTENSITY, padding: str = "reflect") -> Blur:
    """Random motion blur, one kernel per image (DPS: 61 px trajectory kernels, intensity 0.5, scaled)."""
    side = min(shape[1], shape[2])
    size = scaled_blur(side)[0] if kernel_size is None else kernel_size
    if size < 3 or size % 2 == 0:
        raise UsageError(f"operator deblur-motion.kernel_size={size}: must be an odd integer >= 3")
    if not 0 <= intensity <= 1:
        raise UsageError(f"operator deblur-motion.intensity={intensity}: must be in [0, 1] (0 = straight line)")
    if (padding == "reflect" and size // 2 >= side) or (padding == "circular" and size // 2 > side) \
            or (padding == "valid" and size > side):
        raise UsageError(f"operator deblur-motion.kernel_size={size}: too large for {padding} padding on a "
                         f"{shape[1]} x {shape[2]} image")
    kernels = torch.stack([motion_kernel(size, intensity, g) for g in generators])
    # deepinv Blur convolves; the DPS code correlates with K, i.e. convolves with K rotated by 180 degrees.
    return Blur(filter=kernels.flip(-2, -1)[:, None].to(device), padding=padding, device=device)
