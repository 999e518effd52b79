"""The models that ship with ipbench."""
from __future__ import annotations

from functools import lru_cache

import torch

from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.registry import register_architecture, register_model

register_architecture("gaussian")(GaussianScoreModel)

PHOTOS_SHAPE = (3, 256, 256)


@lru_cache(maxsize=1)
def _gaussian_photos() -> GaussianScoreModel:
    from ipbench.data import load_images

    model = GaussianScoreModel.fit(load_images("photos", PHOTOS_SHAPE).images)
    model.default_image_set = "photos"
    return model


@register_model("gaussian")
def gaussian(device: torch.device) -> GaussianScoreModel:
    """Stationary Gaussian fitted to the bundled `photos` (256x256 RGB): exact score, instant on CPU."""
    source = _gaussian_photos()
    model = GaussianScoreModel(source.mean.flatten(), source.colour_basis, source.spectrum)
    model.default_image_set = "photos"
    return model.to(device)
