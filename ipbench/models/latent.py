"""Latent diffusion priors (Rombach et al. 2022): a diffusion model over an autoencoder's latents.

A `LatentPrior` is a `ScoreModel` whose `image_shape` is its latent shape (c, h, w): its `eps`, `denoise_ve` and
flow views are those of the latent model, so the latent solvers reuse every view and step of the pixel ones on z.
What makes it a prior over images is its `Autoencoder`: `decode(z)` gives an image in [0, 1], `encode(x)` a latent.
The measurement is taken of the image, y = A(decode(z0)) + n, so a latent solver works through the decoder (and,
for PSLD's gluing or ReSample's re-encoding, the encoder); a pixel solver on a latent prior would treat latents as
pixels, so it is n/a (`solvers.base.prior_problem`). Latents are in the latent model's own units: there is no
[0, 1] <-> [-1, 1] conversion on z (the decoder's output is in image units).

The autoencoder counts the images it decodes and encodes (with and without a backward through it), so rows and
speed figures split a latent solver's cost into the latent network and the autoencoder.

A latent prior whose parts have registered architectures is saved as one checkpoint (architecture `latent`,
models/checkpoint_parts.py): its config names each part's architecture and config, its weights are the parts'
under `autoencoder.` and `latent.`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.checkpoint_parts import build_part, part_config, unexpected_weights
from ipbench.models.conditional import unwrapped


class Autoencoder(nn.Module, ABC):
    """Images (N, C, H, W) in [0, 1] <-> latents (N, c, h, w). Subclasses implement `decode_latents` and
    `encode_images`; callers use `decode` and `encode`, which count the images they pass."""

    image_shape: tuple[int, int, int]
    latent_shape: tuple[int, int, int]

    def __init__(self, image_shape: tuple[int, int, int], latent_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)  # type: ignore[assignment]
        self.latent_shape = tuple(int(s) for s in latent_shape)  # type: ignore[assignment]
        self.reset_counts()

    @abstractmethod
    def decode_latents(self, z: Tensor) -> Tensor:
        """The image of latents z, in [0, 1] image units (not clamped), differentiable in z."""

    @abstractmethod
    def encode_images(self, x: Tensor) -> Tensor:
        """The latent of images x in [0, 1] (the encoder's mean, for a KL autoencoder), differentiable in x."""

    def decode(self, z: Tensor) -> Tensor:
        self.decoded += z.shape[0]
        return self.decode_latents(z)

    def encode(self, x: Tensor) -> Tensor:
        self.encoded += x.shape[0]
        return self.encode_images(x)

    def reset_counts(self) -> None:
        self.decoded = self.encoded = 0


class LatentPrior(ScoreModel):
    """A diffusion model over latents (`latent`, any ScoreModel family) with its `autoencoder`."""

    def __init__(self, latent: ScoreModel, autoencoder: Autoencoder) -> None:
        if tuple(latent.image_shape) != tuple(autoencoder.latent_shape):
            raise ValueError(f"latent model's shape {tuple(latent.image_shape)} is not the autoencoder's latent "
                             f"shape {tuple(autoencoder.latent_shape)}")
        super().__init__(latent.alphas_cumprod, latent.image_shape)
        self.latent = latent
        self.autoencoder = autoencoder
        self.continuous = latent.continuous
        self.default_image_set = getattr(latent, "default_image_set", None)
        self.default_num_images = getattr(latent, "default_num_images", None)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.latent.eps(x_t, t)

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.latent.denoise_ve(x, sigma)

    def config(self) -> dict:
        """{"autoencoder": {"arch", "config"}, "latent": {"arch", "config"}}: each part's registered architecture."""
        return {"autoencoder": part_config(self.autoencoder), "latent": part_config(self.latent)}

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, Tensor]) -> "LatentPrior":
        """The latent prior a checkpoint declares: each part checked and built by its own architecture, then the
        latent model's shape against the autoencoder's latent shape; a one-line UsageError naming what does not fit."""
        stray = unexpected_weights(state_dict, ("autoencoder", "latent"))
        if stray is not None:
            raise UsageError(f"weights do not fit the latent prior it declares: {stray}")
        refused = getattr(cls, "arch_name", None)  # a latent prior over a latent prior's latents would nest
        autoencoder = build_part("autoencoder", config, state_dict, Autoencoder, refused)
        latent = build_part("latent", config, state_dict, ScoreModel, refused)
        if tuple(latent.image_shape) != tuple(autoencoder.latent_shape):
            raise UsageError(f"its latent model is over {_shape(latent.image_shape)} latents but its autoencoder's "
                             f"latents are {_shape(autoencoder.latent_shape)}")
        return cls(latent, autoencoder)


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def autoencoder_of(model: ScoreModel) -> Autoencoder | None:
    """The autoencoder of a latent prior (looking through the run's wrappers), None for a pixel prior."""
    inner = unwrapped(model)
    return inner.autoencoder if isinstance(inner, LatentPrior) else None


def pixel_shape(model: ScoreModel) -> tuple[int, int, int]:
    """The shape of the images a prior is a prior over: its autoencoder's for a latent prior, else its own."""
    autoencoder = autoencoder_of(model)
    return tuple(model.image_shape) if autoencoder is None else autoencoder.image_shape  # type: ignore[return-value]


def latent_shape(model: ScoreModel) -> tuple[int, int, int] | None:
    autoencoder = autoencoder_of(model)
    return None if autoencoder is None else autoencoder.latent_shape


@torch.no_grad()
def reconstruction(autoencoder: Autoencoder, x: Tensor) -> Tensor:
    """decode(encode(x)): what the autoencoder keeps of images x (its reconstruction error bounds every latent
    solver's, since a latent prior's images are decodings)."""
    return autoencoder.decode(autoencoder.encode(x))
