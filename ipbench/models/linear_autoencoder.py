"""A linear autoencoder: the latent prior whose posterior is known exactly when its latent prior is Gaussian.

decode(z) = to_image(W z) and encode(x) = W^T to_model(x), with W (P x d) of orthonormal columns (P pixels, d latent
values): encode o decode is the identity on latents and decode o encode the orthogonal projection onto W's range.
With a Gaussian latent prior (models/gaussian.py) the image x = decode(z) is Gaussian too (of rank d) and affine in
z, so for a linear A the posterior of z given y = A x + n is Gaussian in closed form (checks/latent_gaussian.py):
the MMSE bound every latent solver is tested against, as the pixel solvers are against the pixel Gaussian.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ipbench.models.base import to_image, to_model
from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.latent import Autoencoder, LatentPrior


class LinearAutoencoder(Autoencoder):
    """decode(z) = to_image(W z), encode(x) = W^T to_model(x); `basis` W is (P, d) with orthonormal columns."""

    def __init__(self, basis: Tensor, image_shape: tuple[int, int, int], latent_shape: tuple[int, int, int]) -> None:
        super().__init__(image_shape, latent_shape)
        pixels, latents = (int(torch.Size(s).numel()) for s in (image_shape, latent_shape))
        if tuple(basis.shape) != (pixels, latents):
            raise ValueError(f"basis of shape {tuple(basis.shape)}; expected ({pixels}, {latents})")
        gram = basis.to(torch.float64).T @ basis.to(torch.float64)
        if not torch.allclose(gram, torch.eye(latents, dtype=torch.float64), atol=1e-8):
            raise ValueError("basis columns are not orthonormal")
        self.register_buffer("basis", basis.to(torch.float64))

    @classmethod
    def random(cls, image_shape: tuple[int, int, int], latent_shape: tuple[int, int, int],
               seed: int = 0) -> "LinearAutoencoder":
        """W from the QR factorisation of a seeded Gaussian matrix: a uniformly random d-dimensional subspace."""
        pixels, latents = (int(torch.Size(s).numel()) for s in (image_shape, latent_shape))
        gaussian = torch.randn(pixels, latents, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        basis, _ = torch.linalg.qr(gaussian)
        return cls(basis, image_shape, latent_shape)

    def decode_latents(self, z: Tensor) -> Tensor:
        x = z.to(torch.float64).flatten(1) @ self.basis.T
        return to_image(x.view(z.shape[0], *self.image_shape)).to(z.dtype)

    def encode_images(self, x: Tensor) -> Tensor:
        z = to_model(x.to(torch.float64)).flatten(1) @ self.basis
        return z.view(x.shape[0], *self.latent_shape).to(x.dtype)


def gaussian_latent_prior(images: Tensor, latent_shape: tuple[int, int, int], seed: int = 0) -> LatentPrior:
    """A random linear autoencoder for images shaped like `images` (N, C, H, W in [0, 1]) and a stationary Gaussian
    fitted to their latents: a latent prior with an exact posterior (checks/latent_gaussian.py)."""
    autoencoder = LinearAutoencoder.random(tuple(images.shape[1:]), latent_shape, seed)
    latents = autoencoder.encode_images(images.double())
    return LatentPrior(GaussianScoreModel.fit(to_image(latents).float()), autoencoder)
