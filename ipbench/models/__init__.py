"""Score models: the interface, the analytic Gaussian, loaders by name or checkpoint."""
from ipbench.models.base import (ScoreModel, diffuse_measurement, linear_alphas_cumprod, time_for_sigma, timesteps,
                                 to_image, to_model, tweedie_x0)
from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.registry import (MODELS, load_checkpoint, load_model, model_file, register_architecture,
                                     register_model, save_checkpoint)
from ipbench.models import builtin as _builtin  # noqa: F401  (registers the shipped models)
# importing registers ffhq256, imagenet256, diffusers:DIR and ldm:DIR
from ipbench.models import adm as _adm, diffusers_unet as _diffusers_unet  # noqa: F401
from ipbench.models import stable_diffusion as _stable_diffusion  # noqa: F401

__all__ = ["ScoreModel", "GaussianScoreModel", "MODELS", "load_model", "model_file", "load_checkpoint",
           "save_checkpoint",
           "register_model", "register_architecture", "to_model", "to_image", "tweedie_x0", "time_for_sigma",
           "timesteps", "diffuse_measurement", "linear_alphas_cumprod"]
