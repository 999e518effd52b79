"""A small DDPM epsilon-prediction UNet (Ho et al. 2020, appendix B, scaled down) as a ScoreModel.

Residual blocks with GroupNorm, SiLU and a sinusoidal time embedding added to each block, optional
self-attention at chosen resolutions, strided-conv downsampling and nearest upsampling with skips.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, linear_alphas_cumprod, weights_on_meta
from ipbench.models.unet_config import MAX_PARAMETERS, UNetConfig, field_problem
from ipbench.weights import state_dict_mismatch

__all__ = ["UNet", "UNetConfig", "UNetScoreModel", "UNetWeights", "config_problem"]


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer times (Vaswani et al. 2017), as in the DDPM code."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t, t[, labels]): (N, C, H, W) x (N,) -> (N, C, H, W)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        in_ch, size = cfg.image_shape[0], cfg.image_shape[1]
        ch, emb_dim = cfg.channels, 4 * cfg.channels
        self.base = ch
        self.embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # Class-conditional: one embedding per class plus a last, null one (the label dropped, for classifier-free
        # guidance, Ho & Salimans 2022), added to the time embedding as in guided-diffusion's UNetModel.
        self.num_classes = cfg.num_classes
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.stem = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cur = [ch], ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(nn.ModuleList([ResBlock(cur, ch * mult, emb_dim, cfg.dropout),
                                                Attention(ch * mult) if size in cfg.attention_resolutions else nn.Identity()]))
                cur = ch * mult
                skips.append(cur)
            if level + 1 < len(cfg.channel_mult):
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                size //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb_dim, cfg.dropout), Attention(cur),
                                  ResBlock(cur, cur, emb_dim, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(nn.ModuleList([ResBlock(cur + skips.pop(), ch * mult, emb_dim, cfg.dropout),
                                              Attention(ch * mult) if size in cfg.attention_resolutions else nn.Identity()]))
                cur = ch * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1)))
                size *= 2
        self.head = nn.Sequential(_norm(cur), nn.SiLU(), nn.Conv2d(cur, in_ch, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """`labels` (N,) class indices of a conditional UNet, -1 (or None for all) for the null label."""
        emb = self.embed(timestep_embedding(t, self.base))
        if self.label_embed is not None:
            null = torch.full_like(t, self.num_classes, dtype=torch.long)
            emb = emb + self.label_embed(null if labels is None else torch.where(labels < 0, null, labels))
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](h, emb))
            else:
                h = layer(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](torch.cat([h, hs.pop()], dim=1), emb))
            else:
                h = layer(h)
        return self.head(h)


def config_problem(cfg: UNetConfig) -> tuple[str, str] | None:
    """(field, what is wrong) if `cfg` is out of bounds (`unet_config.field_problem`) or its network would
    have more than MAX_PARAMETERS weights, counted on the meta device (nothing allocated); else None."""
    problem = field_problem(cfg)
    if problem is not None:
        return problem
    count = weights_on_meta(lambda: UNet(cfg))
    if count > MAX_PARAMETERS:
        return "channel_mult", (f"gives {count:,} weights (with channels {cfg.channels}, num_res_blocks "
                                f"{cfg.num_res_blocks}); at most {MAX_PARAMETERS:,}")
    return None


class UNetWeights:
    """`config` and `from_config` of a model built as `cls(UNetConfig)` with its network in `self.net`: what its
    checkpoints hold, checked before anything is built (shared by the eps and the flow UNet)."""

    cfg: UNetConfig

    def config(self) -> dict:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, Tensor]):  # -> an instance of cls
        """The model a checkpoint declares, its fields checked against the bounds before anything is built
        (a UsageError naming the field), its weights against the network's names and shapes."""
        cfg = UNetConfig.from_dict(config)
        problem = config_problem(cfg)
        if problem is not None:
            name, what = problem
            raise UsageError(f"declares {name}={getattr(cfg, name)!r}, which {what}")
        model = cls(cfg)  # type: ignore[call-arg]
        mismatch = state_dict_mismatch({k: v.shape for k, v in model.state_dict().items()}, state_dict)
        if mismatch is not None:
            raise UsageError(f"weights do not fit the UNet it declares: {mismatch}")
        model.load_state_dict({k: v.float() for k, v in state_dict.items()})
        return model


class UNetScoreModel(UNetWeights, ScoreModel):
    """A UNet eps-model on the linear DDPM schedule. Why linear: it is the schedule of the public
    pixel-space DDPM checkpoints (FFHQ 256, ImageNet 256) the DPS-line papers use, so times such as
    t0 = 500 or the one-step-denoising times 30 / 100 / 300 mean the same noise level on every model."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(linear_alphas_cumprod(cfg.num_timesteps, cfg.beta_start, cfg.beta_end), cfg.image_shape)
        self.cfg = cfg
        self.net = UNet(cfg)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.net(x_t, t)
