"""The models that ship with ipbench."""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import torch

from ipbench.models.conditional import ConditionalUNetModel
from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.kl_autoencoder import KLAutoencoder
from ipbench.models.latent import LatentPrior
from ipbench.models.linear_autoencoder import gaussian_latent_prior
from ipbench.models.registry import load_checkpoint, register_architecture, register_model
from ipbench.models.unet import UNetScoreModel
from ipbench.models.unet_flow import UNetFlowModel

register_architecture("gaussian")(GaussianScoreModel)
register_architecture("unet")(UNetScoreModel)
register_architecture("unet-flow")(UNetFlowModel)
register_architecture("unet-cond")(ConditionalUNetModel)
register_architecture("kl-autoencoder")(KLAutoencoder)  # a latent prior's part; load_model refuses it alone
register_architecture("latent")(LatentPrior)  # an autoencoder and a latent model in one file

PHOTOS_SHAPE = (3, 256, 256)


@lru_cache(maxsize=1)
def _gaussian_photos() -> GaussianScoreModel:
    from ipbench.data import load_images

    return GaussianScoreModel.fit(load_images("photos", PHOTOS_SHAPE).images)


@register_model("gaussian")
def gaussian(device: torch.device) -> GaussianScoreModel:
    """Stationary Gaussian fitted to the bundled `photos` (256x256 RGB): exact score, instant on CPU."""
    source = _gaussian_photos()
    model = GaussianScoreModel(source.mean.flatten().clone(), source.colour_basis.clone(), source.spectrum.clone())
    model.default_image_set = "photos"
    return model.to(device)


@register_model("gaussian-latent")
def gaussian_latent(device: torch.device) -> LatentPrior:
    """A linear autoencoder (random orthonormal, 3x32x32 <-> 3x16x16) with a Gaussian latent prior fitted to the
    bundled `photos` at 32 px: the latent prior whose posterior is exact, for checking latent solvers."""
    from ipbench.data import load_images

    model = gaussian_latent_prior(load_images("photos", (3, 32, 32)).images, (3, 16, 16))
    model.default_image_set = "photos"
    return model.to(device)


def _bundled(name: str):
    """A checkpoint shipped in ipbench/models/weights (see MODEL_CARD.md there)."""
    return load_checkpoint(files("ipbench") / "models" / "weights" / name)


@register_model("fashion32")
def fashion32(device: torch.device) -> UNetScoreModel:
    """DDPM UNet trained by ipbench on Fashion-MNIST (32x32 grey); see models/weights/MODEL_CARD.md."""
    model = _bundled("fashion32-fp16.pt")
    model.default_image_set = "fashion32-test"
    model.default_num_images = 16  # keeps the default `bench run` under 90 s on 2 CPU cores
    return model.to(device)


@register_model("gaussian-fashion32")
def gaussian_fashion32(device: torch.device) -> GaussianScoreModel:
    """Stationary Gaussian fitted to the 60,000 Fashion-MNIST training images (the learned model's baseline)."""
    model = _bundled("gaussian-fashion32.pt")
    model.default_image_set = "fashion32-test"
    return model.to(device)
