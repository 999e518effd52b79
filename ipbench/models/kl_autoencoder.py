"""A KL-regularised convolutional autoencoder (LDM's AutoencoderKL, Rombach et al. 2022, sec. 3 and appendix G,
scaled down): the `Autoencoder` of a latent prior that ipbench trains (`bench train --autoencoder`).

The encoder maps an image x (in [-1, 1] model units) to the mean and log-variance of a diagonal Gaussian posterior
q(z | x) = N(mu(x), diag(sigma^2(x))) over latents; the decoder maps a latent back to the image. Training
(training/objectives.py) decodes a sample z = mu + sigma eps and adds a small KL(q(z | x) || N(0, I)) penalty,
which keeps the latent space smooth without making the latents uninformative (LDM's "KL-reg.", sec. 3).

Both halves follow LDM's Encoder / Decoder: a stem convolution, per level residual blocks (GroupNorm, SiLU, two 3x3
convolutions) then a strided-convolution downsampling (nearest upsampling and a convolution on the way back), a
middle of residual block, self-attention, residual block, and a normalised output convolution. LDM's 1x1
`quant_conv` / `post_quant_conv` are left out: a 1x1 convolution after (before) a 3x3 one composes into it.

`encode_images` returns the posterior mean times `latent_scale` (LDM's scale factor: 1 / the std of the training
latents, sec. 4.3.2), `decode_latents` divides by it again; images are in [0, 1], the decoder's output too (not
clamped).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict

import torch.nn.functional as F
from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.models.base import to_image, to_model, weights_on_meta
from ipbench.models.kl_autoencoder_config import KLAutoencoderConfig, field_problem
from ipbench.models.latent import Autoencoder
from ipbench.models.unet import Attention
from ipbench.models.unet_config import MAX_PARAMETERS
from ipbench.weights import state_dict_mismatch

__all__ = ["KLAutoencoder", "KLAutoencoderConfig", "config_problem"]

LOGVAR_RANGE = (-30.0, 20.0)  # LDM's DiagonalGaussianDistribution clamps the log-variance so


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """LDM's ResnetBlock without a time embedding: x + conv(SiLU(norm(conv(SiLU(norm(x))))))."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


def _middle(width: int) -> nn.Sequential:
    return nn.Sequential(ResBlock(width, width), Attention(width), ResBlock(width, width))


class Encoder(nn.Module):
    """x (N, C, H, W) in [-1, 1] -> (mean, log-variance), each (N, latent_channels, h, w)."""

    def __init__(self, cfg: KLAutoencoderConfig) -> None:
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.image_shape[0], ch, 3, padding=1)]
        cur = ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cur, ch * mult))
                cur = ch * mult
            if level + 1 < len(cfg.channel_mult):
                layers.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
        layers += [_middle(cur), _norm(cur), nn.SiLU(), nn.Conv2d(cur, 2 * cfg.latent_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.layers(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    """z (N, latent_channels, h, w) -> image (N, C, H, W) in [-1, 1] model units (not clamped)."""

    def __init__(self, cfg: KLAutoencoderConfig) -> None:
        super().__init__()
        ch = cfg.channels
        cur = ch * cfg.channel_mult[-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, cur, 3, padding=1), _middle(cur)]
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(cur, ch * mult))
                cur = ch * mult
            if level > 0:
                layers.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1)))
        layers += [_norm(cur), nn.SiLU(), nn.Conv2d(cur, cfg.image_shape[0], 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)


def config_problem(cfg: KLAutoencoderConfig) -> tuple[str, str] | None:
    """(field, what is wrong) if `cfg` is out of bounds (kl_autoencoder_config.field_problem) or its networks would
    have more than MAX_PARAMETERS weights, counted on the meta device (nothing allocated); else None."""
    problem = field_problem(cfg)
    if problem is not None:
        return problem
    count = weights_on_meta(lambda: Encoder(cfg), lambda: Decoder(cfg))
    if count > MAX_PARAMETERS:
        return "channel_mult", f"gives {count:,} weights (with channels {cfg.channels}); at most {MAX_PARAMETERS:,}"
    return None


class KLAutoencoder(Autoencoder):
    """Images (N, C, H, W) in [0, 1] <-> scaled latents (N, latent_channels, h, w) (module docstring)."""

    def __init__(self, cfg: KLAutoencoderConfig) -> None:
        super().__init__(cfg.image_shape, cfg.latent_shape)
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x) for images x in [0, 1], in the unscaled latent units of training."""
        return self.encoder(to_model(x))

    def image_of(self, z: Tensor) -> Tensor:
        """The decoder's image of an unscaled latent z, in [0, 1] image units (not clamped)."""
        return to_image(self.decoder(z))

    def encode_images(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0] * self.cfg.latent_scale

    def decode_latents(self, z: Tensor) -> Tensor:
        return self.image_of(z / self.cfg.latent_scale)

    def with_latent_scale(self, scale: float) -> "KLAutoencoder":
        """This autoencoder with `latent_scale` set (in place; the weights are unchanged)."""
        self.cfg = dataclasses.replace(self.cfg, latent_scale=float(scale))
        return self

    def config(self) -> dict:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, Tensor]) -> "KLAutoencoder":
        """The autoencoder a checkpoint declares, its fields checked against the bounds before anything is built (a
        UsageError naming the field), its weights against the networks' names and shapes."""
        cfg = KLAutoencoderConfig.from_dict(config)
        problem = config_problem(cfg)
        if problem is not None:
            name, what = problem
            raise UsageError(f"declares {name}={getattr(cfg, name)!r}, which {what}")
        model = cls(cfg)
        mismatch = state_dict_mismatch({k: v.shape for k, v in model.state_dict().items()}, state_dict)
        if mismatch is not None:
            raise UsageError(f"weights do not fit the autoencoder it declares: {mismatch}")
        model.load_state_dict({k: v.float() for k, v in state_dict.items()})
        return model
