"""The score-model interface and the one place where image and model ranges meet.

Conventions (docs/architecture.md): images are float32 NCHW in [0, 1]; score models work in [-1, 1].
Diffusion time is discrete VP-DDPM, t in {0, ..., T-1}:

    x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps                      (Ho et al. 2020, eq. 4)
    x0_hat = (x_t - sqrt(1 - alpha_bar[t]) eps_hat) / sqrt(alpha_bar[t])          (Tweedie)
    score = -eps_hat / sqrt(1 - alpha_bar[t])
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import Tensor, nn

# What a model file may declare (checked before anything is built from it): an image side in pixels (the
# public pixel-space DDPMs are 256 and 512), image channels, diffusion times.
MAX_SIDE = 2048
MAX_IMAGE_CHANNELS = 4
MAX_TIMESTEPS = 100_000


def image_shape_problem(shape: object) -> tuple[str, str] | None:
    """("image_shape", what is wrong) for a declared (channels, height, width) outside the bounds above, or None."""
    if not isinstance(shape, tuple) or len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                  for s in shape):
        return "image_shape", "must be 3 integers (channels, height, width)"
    if not 1 <= shape[0] <= MAX_IMAGE_CHANNELS:
        return "image_shape", f"has {shape[0]} image channels; must be in 1..{MAX_IMAGE_CHANNELS}"
    if not all(1 <= s <= MAX_SIDE for s in shape[1:]):
        return "image_shape", f"is {shape[1]} x {shape[2]} px; each side must be in 1..{MAX_SIDE}"
    return None


def weights_on_meta(*modules: Callable[[], nn.Module]) -> int:
    """How many weights the modules `modules` build would hold, built on the meta device (nothing allocated): the
    size check a declared configuration passes before anything real is built."""
    with torch.device("meta"):
        return sum(p.numel() for build in modules for p in build().parameters())


def to_model(x: Tensor) -> Tensor:
    """[0, 1] image units -> [-1, 1] model units."""
    return 2.0 * x - 1.0


def to_image(x: Tensor) -> Tensor:
    """[-1, 1] model units -> [0, 1] image units (no clamping)."""
    return (x + 1.0) / 2.0


def linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """alpha_bar of the linear beta schedule of DDPM (Ho et al. 2020, sec. 4), float64."""
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


class ScoreModel(nn.Module, ABC):
    """A prior in [-1, 1] model units, seen through its VP-DDPM epsilon view: the interface every solver uses.

    Subclasses set `image_shape` (C, H, W) and register `alphas_cumprod` (length T) and implement
    `eps(x_t, t)`, where `t` is a long tensor of shape (N,) with one diffusion time per image. A prior of
    another family implements its own prediction and gets `eps` by exact conversion (`models/flow.py`'s
    `FlowModel`; models/parametrization.py); the VE view is `models.denoiser.denoise`, the flow view
    `models.flow.velocity`, for every prior.
    """

    alphas_cumprod: Tensor
    image_shape: tuple[int, int, int]
    default_image_set: str | None = None  # the image set `bench run` uses with this model by default
    default_num_images: int | None = None  # how many of them, when the user names neither set nor count
    # True for a network that takes any noise level (a flow or EDM model): its VE view `denoise_ve` is then
    # evaluated at the sigma asked for, not at the nearest of its discrete times (models/denoiser.py).
    continuous: bool = False

    def __init__(self, alphas_cumprod: Tensor, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.register_buffer("alphas_cumprod", alphas_cumprod.to(torch.float64), persistent=False)
        self.image_shape = tuple(int(s) for s in image_shape)  # type: ignore[assignment]

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @abstractmethod
    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Predicted noise E[eps | x_t] for x_t of shape (N, C, H, W) and t of shape (N,)."""

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.eps(x_t, t)

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        """E[x0 | x] for x = x0 + sigma eps, sigma (N,) > 0: what a `continuous` model implements natively."""
        raise NotImplementedError(f"{type(self).__name__} is not continuous: use models.denoiser.denoise")

    def alpha_bar(self, t: Tensor, like: Tensor) -> Tensor:
        """alpha_bar[t] shaped (N, 1, 1, 1) in the dtype and device of `like`."""
        return self.alphas_cumprod[t].to(like.dtype).view(-1, 1, 1, 1)


def timesteps(t: int | Tensor, batch: int, device: torch.device) -> Tensor:
    """A (batch,) long tensor of diffusion times from an int or a tensor.

    An int is written by a fill on the device: torch.as_tensor(int, device="cuda") would copy from host
    memory, and that copy synchronises the stream, once per network call."""
    if not isinstance(t, Tensor):
        return torch.full((batch,), int(t), device=device, dtype=torch.long)
    t = t.to(device=device, dtype=torch.long)
    return t.expand(batch).clone() if t.ndim == 0 else t


def _sqrt(a: Tensor | float) -> Tensor | float:
    return a.sqrt() if isinstance(a, Tensor) else a ** 0.5


def tweedie_x0(x_t: Tensor, eps: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar) eps_hat) / sqrt(alpha_bar), in model units.

    alpha_bar is a float (one time for the batch) or a tensor broadcasting against x_t (one per image).
    """
    return (x_t - _sqrt(1.0 - alpha_bar) * eps) / _sqrt(alpha_bar)


def diffusion_sigma(alphas_cumprod: Tensor) -> Tensor:
    """Model-units noise std of x_t / sqrt(alpha_bar): sqrt((1 - alpha_bar) / alpha_bar)."""
    ab = alphas_cumprod.double().cpu()
    return ((1.0 - ab) / ab).sqrt()


def time_for_sigma(alphas_cumprod: Tensor, sigma_y: float) -> int:
    """The diffusion time whose noise matches image-units Gaussian noise of std sigma_y.

    Noise of std sigma_y on [0, 1] is std 2 sigma_y on [-1, 1]; x_t / sqrt(alpha_bar[t]) carries noise
    of std sqrt((1 - alpha_bar) / alpha_bar), so t is the time where that equals 2 sigma_y (nearest in
    log sigma). sigma_y = 0 gives t = 0.
    """
    if sigma_y < 0 or not math.isfinite(sigma_y):
        raise ValueError(f"sigma_y must be finite and >= 0, got {sigma_y}")
    if sigma_y == 0:
        return 0
    sig = diffusion_sigma(alphas_cumprod)
    return int(torch.argmin((sig.log() - math.log(2.0 * sigma_y)).abs()))


def diffuse_measurement(x_img: Tensor, alpha_bar: Tensor | float) -> Tensor:
    """Map a noisy image-units estimate to x_t: sqrt(alpha_bar) * to_model(x).

    If x = x0 + n with n ~ N(0, sigma_y^2) and t = time_for_sigma(sigma_y), this is (up to the
    matching error) a sample of x_t given x0, as the forward process would make it.
    """
    return _sqrt(alpha_bar) * to_model(x_img)
