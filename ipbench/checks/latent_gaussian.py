"""Ground truth for latent solvers: a linear autoencoder with a Gaussian latent prior has an exact posterior.

The prior is z ~ N (a `GaussianScoreModel` on latents, in its image units u = (z + 1) / 2), and the image is
x = decode(z) = to_image(W z) (models/linear_autoencoder.py), i.e. x = W u + c with c = (1 - W 1) / 2. For
y = A x + n, n ~ N(0, sigma_y^2 I) and a linear A,

    y - A c = (A W) u + n,

so E[u | y] is the Gaussian latent prior's posterior mean for the operator A W (models/gaussian.py, whitened CG in
float64), and E[x | y] = W E[u | y] + c = decode(E[z | y]) since decode is affine. E[x | y] minimises the expected
squared image error over every function of y, so a latent solver's ratio R = mean(e) / mean(m) of its per-image
MSE to E[x | y]'s is >= 1 up to Monte-Carlo error, exactly as for the pixel solvers (checks/gaussian_truth.py,
whose scoring this reuses).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from ipbench.checks.gaussian_truth import DEVICE, Problem, image_ids, per_image_mse, prior_generators
from ipbench.data import load_images
from ipbench.models import GaussianScoreModel
from ipbench.models.base import to_model
from ipbench.models.latent import LatentPrior
from ipbench.models.linear_autoencoder import LinearAutoencoder, gaussian_latent_prior
from ipbench.operators import Operator, measure
from ipbench.seeding import measurement_generator

IMAGE_SHAPE = (3, 16, 16)
LATENT_SHAPE = (3, 8, 8)  # 192 of the image's 768 values: the decoder's range is a quarter of the image space


def fit_latent_prior(image_shape: tuple[int, int, int] = IMAGE_SHAPE,
                     latent_shape: tuple[int, int, int] = LATENT_SHAPE, seed: int = 0) -> LatentPrior:
    """A random linear autoencoder and a Gaussian fitted to the latents of the bundled photos."""
    return gaussian_latent_prior(load_images("photos", image_shape).images, latent_shape, seed)


def _latent_parts(prior: LatentPrior) -> tuple[GaussianScoreModel, LinearAutoencoder]:
    latent, autoencoder = prior.latent, prior.autoencoder
    if not isinstance(latent, GaussianScoreModel) or not isinstance(autoencoder, LinearAutoencoder):
        raise TypeError("the exact latent posterior needs a Gaussian latent model and a linear autoencoder")
    return latent, autoencoder


def sample_images(prior: LatentPrior, n: int, generators: list[torch.Generator]) -> Tensor:
    """n images of the prior: decodings of latent prior samples (float64, image units)."""
    latent, autoencoder = _latent_parts(prior)
    u = latent.sample(n, generators).double()
    return autoencoder.decode_latents(to_model(u))


def posterior_mean(prior: LatentPrior, y: Tensor, A, A_adjoint, sigma_y: float) -> Tensor:
    """E[x | y] in image units (float64): decode(E[z | y]) by the latent Gaussian's posterior for A W."""
    latent, autoencoder = _latent_parts(prior)
    W = autoencoder.basis
    n = y.shape[0]
    offset = ((1.0 - W.sum(1)) / 2).view(1, *autoencoder.image_shape)  # c = (1 - W 1) / 2
    lift = lambda u: (u.flatten(1) @ W.T).view(u.shape[0], *autoencoder.image_shape)  # noqa: E731  u -> W u
    drop = lambda x: (x.flatten(1) @ W).view(x.shape[0], *autoencoder.latent_shape)  # noqa: E731  x -> W^T x
    shifted = y.double() - A(offset.expand(n, *autoencoder.image_shape))
    u = latent.posterior_mean(shifted, lambda u: A(lift(u)), lambda v: drop(A_adjoint(v)), sigma_y)
    return lift(u) + offset


def make_latent_problem(prior: LatentPrior, label: str, op_name: str, op_params: dict, n: int, seed: int) -> Problem:
    """Truth decoded from latent prior samples, y measured with per-image generators, E[x | y] exactly."""
    ids = image_ids(n)
    x = sample_images(prior, n, prior_generators(seed, ids)).float()
    operator = Operator.create(op_name, op_params)
    gens = [measurement_generator(seed, i, label) for i in ids]
    physics = operator.build(prior.autoencoder.image_shape, gens, DEVICE)
    y = measure(physics, x, gens)
    physics64 = copy.deepcopy(physics).to(torch.float64)
    mean = posterior_mean(prior, y, physics64.A, physics64.A_adjoint, operator.sigma_y)
    seen = (physics64.A(physics64.A_adjoint(torch.ones_like(y, dtype=torch.float64))).abs() > 1e-9).double()
    return Problem(label, operator, physics, physics64, ids, seed, x, y, mean, seen, per_image_mse(mean, x))
