"""The ADM checkpoints of the DPS line of papers: `ffhq256` and `imagenet256`.

    ffhq256 | imagenet256          the file (ffhq_10m.pt | 256x256_diffusion_uncond.pt) from torch's hub cache
    ffhq256:PATH | imagenet256:PATH    the same architecture with the weights of the state-dict file PATH

A bare name downloads its missing file only when the user opts in (IPBENCH_DOWNLOAD=1, or
`load_pretrained(name, download=True)`); otherwise a one-line UsageError says which file to place where.
Both are guided-diffusion's ADM UNet (Dhariwal & Nichol 2021) built by deepinv's `DiffUNet`
(`large_model=True` is ImageNet's), on the linear DDPM schedule, T = 1000, beta 1e-4 .. 0.02 (Ho et al.
2020; DPS configs/diffusion_config.yaml). They learn their variance: of the 6 output channels, eps is the
first 3. Files are read by ipbench.weights and checked key by key and shape by shape.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from ipbench.errors import UsageError, first_line
from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.conditional import ClassConditional
from ipbench.models.registry import register_model, register_model_path
from ipbench.weights import hub_checkpoints, read_state_dict, state_dict_mismatch

DOWNLOAD_ENV = "IPBENCH_DOWNLOAD"
T_TRAIN, BETA_START, BETA_END = 1000, 1e-4, 0.02  # the linear DDPM schedule of both checkpoints
IMAGE_SHAPE = (3, 256, 256)
SCHEDULE_BUFFERS = ("sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod")  # deepinv's, not in the checkpoints


@dataclass(frozen=True)
class PretrainedUNet:
    """One published ADM checkpoint: its file name, where it comes from, and its deepinv configuration."""

    name: str
    file: str
    url: str
    origin: str  # where a user finds the file by hand
    large_model: bool  # deepinv DiffUNet: False = 128 channels, 1 res block (FFHQ); True = 256, 2 (ImageNet)
    default_image_set: str | None
    num_classes: int | None = None  # class-conditional (guided-diffusion's class_cond): its label embedding's rows


PRETRAINED: dict[str, PretrainedUNet] = {
    "ffhq256": PretrainedUNet(
        "ffhq256", "ffhq_10m.pt",
        "https://huggingface.co/deepinv/diffunet/resolve/main/diffusion_ffhq_10m.pt?download=true",
        "DPS's README (github.com/DPS2022/diffusion-posterior-sampling); deepinv mirrors it as diffusion_ffhq_10m.pt",
        large_model=False, default_image_set="ffhq-1k"),
    "imagenet256": PretrainedUNet(
        "imagenet256", "256x256_diffusion_uncond.pt",
        "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
        "github.com/openai/guided-diffusion, 'Download pre-trained models'",
        large_model=True, default_image_set="photos"),  # no ImageNet set is bundled: the 8 natural photos
    "imagenet256-cond": PretrainedUNet(
        "imagenet256-cond", "256x256_diffusion.pt",
        "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion.pt",
        "github.com/openai/guided-diffusion, 'Download pre-trained models' (the class-conditional 256x256 model)",
        large_model=True, default_image_set="photos", num_classes=1000),
}


class DiffUNetScoreModel(ScoreModel):
    """An ADM UNet (deepinv `DiffUNet`) as a ScoreModel on the linear DDPM schedule, T = 1000.

    `eps` calls `DiffUNet.forward_diffusion(x_t, t)` (x_t in [-1, 1], t the integer timestep, no
    rescaling) and keeps the first C of its 2C output channels: those are eps_theta; the last C are the
    learned-variance interpolation v of Nichol & Dhariwal 2021, eq. 15, which this interface does not use.
    """

    def __init__(self, net: nn.Module, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> None:
        super().__init__(linear_alphas_cumprod(T_TRAIN, BETA_START, BETA_END), image_shape)
        self.net = net
        half = net.model_channels // 2
        # ADM's sinusoidal frequencies exp(-log(10000) k / half), kept on the model's device: deepinv
        # builds them on the host at every call, and that copy synchronises the GPU stream each step.
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half),
                             persistent=False)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """DiffUNet.forward_diffusion(x_t, t) (unconditional), with the time embedding from `freqs`."""
        return self.network_eps(x_t, t, None)

    def network_eps(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """eps_theta(x_t, t[, labels]): a class-conditional network adds its label embedding to the time's, as
        guided-diffusion's UNetModel.forward does."""
        net = self.net
        angles = t[:, None].float() * self.freqs[None]
        emb = net.time_embed(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
        if labels is not None:
            emb = emb + net.label_emb(labels)
        h, skips = x_t, []
        for block in net.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = net.middle_block(h, emb)
        for block in net.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return net.out(h)[:, : self.channels]



class ConditionalDiffUNetScoreModel(ClassConditional, DiffUNetScoreModel):
    """guided-diffusion's class-conditional ADM (class_cond=True): eps_theta(x_t, t, y) for a class y, with no null
    label, since it was trained with every label (Dhariwal & Nichol 2021 guide it with a separate classifier instead,
    sec. 4): it runs with a class at w = 1 (`--condition true|wrong`), and classifier-free guidance or no class
    is refused (models/conditional.py). Its classes are ImageNet's label indices, named "0".."999"."""

    null_label = False

    def __init__(self, net: nn.Module, num_classes: int, image_shape: tuple[int, int, int] = IMAGE_SHAPE) -> None:
        super().__init__(net, image_shape)
        self.class_names = [str(i) for i in range(num_classes)]
        self.labels: Tensor | None = None
        self.guidance = 1.0

    def eps_given(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        if labels is None or bool((labels < 0).any()):
            raise UsageError("the class-conditional ADM has no unconditional half: every image needs a class")
        return self.network_eps(x_t, t, labels)


# ----------------------------------------------------------------------------------------- building

def _deepinv_diffunet() -> type:
    try:
        from deepinv.models.diffunet import DiffUNet
    except ImportError as exc:
        raise UsageError(f"the ADM models need deepinv's DiffUNet (pip install 'deepinv>=0.3'): "
                         f"{first_line(exc)}") from None
    return DiffUNet


def _skeleton(large_model: bool, num_classes: int | None = None) -> nn.Module:
    """deepinv's DiffUNet (3 -> 6 channels) on the meta device: the architecture, no memory, no weights; with
    `num_classes`, guided-diffusion's label embedding (nn.Embedding(num_classes, 4 x model_channels), its
    class_cond), which deepinv's constructor does not build."""
    with torch.device("meta"):
        net = _deepinv_diffunet()(in_channels=3, out_channels=3, large_model=large_model, pretrained=None)
        if num_classes is not None:
            net.num_classes = num_classes
            net.label_emb = nn.Embedding(num_classes, 4 * net.model_channels)
    return net


@lru_cache(maxsize=4)
def diffunet_shapes(large_model: bool, num_classes: int | None = None) -> dict[str, torch.Size]:
    """Parameter name -> shape of the DiffUNet configuration (without deepinv's schedule buffers)."""
    return {k: v.shape for k, v in _skeleton(large_model, num_classes).state_dict().items()
            if k not in SCHEDULE_BUFFERS}


def diffunet_from_state_dict(state: Mapping[str, Tensor], spec: PretrainedUNet, source: str) -> nn.Module:
    """deepinv's DiffUNet of `spec` holding `state` (cast to float32); UsageError naming `source` if it does not fit.

    deepinv's own schedule buffers are recomputed (and ignored if the file has them, as a saved
    `DiffUNet.state_dict()` does).
    """
    state = {k: v for k, v in state.items() if k not in SCHEDULE_BUFFERS}
    problem = state_dict_mismatch(diffunet_shapes(spec.large_model, spec.num_classes), state)
    if problem is not None:
        fits = [o.name for o in PRETRAINED.values() if (o.large_model, o.num_classes) != (spec.large_model, spec.num_classes)
                and state_dict_mismatch(diffunet_shapes(o.large_model, o.num_classes), state) is None]
        hint = f"; it fits {fits[0]}: use --model {fits[0]}:{source}" if fits else ""
        raise UsageError(f"model file {source}: not a state dict of {spec.name}'s architecture (ADM UNet, deepinv "
                         f"DiffUNet large_model={spec.large_model}): {problem}{hint}")
    net = _skeleton(spec.large_model, spec.num_classes)
    sqrt_1m_alphas_cumprod, sqrt_alphas_cumprod = net.get_alpha_prod()[-2:]  # computed on the CPU, not on meta
    weights = {k: v.float() for k, v in state.items()}
    weights.update(sqrt_1m_alphas_cumprod=sqrt_1m_alphas_cumprod, sqrt_alphas_cumprod=sqrt_alphas_cumprod)
    net.load_state_dict(weights, strict=True, assign=True)  # assign: the meta skeleton takes the loaded tensors
    return net.eval()


# ----------------------------------------------------------------------------------- weights and names

def weights_path(name: str) -> Path:
    """Where the bare name `name` looks for its file: torch.hub.get_dir()/checkpoints/FILE."""
    return hub_checkpoints() / PRETRAINED[name].file


def download_requested() -> bool:
    """Whether the user opted in to downloads with IPBENCH_DOWNLOAD (1/true/yes; 0/false/no/unset: no)."""
    value = os.environ.get(DOWNLOAD_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise UsageError(f"{DOWNLOAD_ENV}={os.environ[DOWNLOAD_ENV]!r} is invalid; valid: 1, true, yes (download "
                     "missing weights) or 0, false, no")


def _download(url: str, dest: Path) -> None:
    """Fetch `url` to `dest` (atomically: torch writes a temporary file and renames it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), progress=True)


def _resolve_weights(spec: PretrainedUNet, download: bool | None) -> Path:
    """The hub-cache file of `spec`, downloaded first if missing and the user opted in."""
    dest = weights_path(spec.name)
    if dest.is_file():
        return dest
    if not (download_requested() if download is None else download):
        raise UsageError(f"model {spec.name}: weights file {dest} not found; place {spec.file} there (from "
                         f"{spec.origin}), or pass --model {spec.name}:/path/to/{spec.file}, or set "
                         f"{DOWNLOAD_ENV}=1 to download it from {spec.url}")
    try:
        _download(spec.url, dest)
    except Exception as exc:  # no network, HTTP error, full disk: tell the user how to do it by hand
        raise UsageError(f"model {spec.name}: downloading {spec.url} to {dest} failed ({first_line(exc)}); place "
                         f"{spec.file} at {dest} by hand, or pass --model {spec.name}:/path/to/{spec.file}") from None
    return dest


def load_pretrained(name: str, path: str | Path | None = None, *, download: bool | None = None,
                    device: torch.device | str = "cpu") -> DiffUNetScoreModel:
    """`ffhq256` or `imagenet256` from `path`, or from the hub cache when `path` is None.

    `download`: None follows IPBENCH_DOWNLOAD; True fetches a missing hub-cache file; False never does.
    An explicit `path` is never downloaded to.
    """
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained model {name!r}; valid: {', '.join(PRETRAINED)}")
    spec = PRETRAINED[name]
    file = Path(path).expanduser() if path is not None else _resolve_weights(spec, download)
    if path is not None and not file.is_file():
        raise UsageError(f"model {name}:{path}: file {file} not found (expected {spec.name}'s state dict, {spec.file})")
    net = diffunet_from_state_dict(read_state_dict(file), spec, str(file))
    model = DiffUNetScoreModel(net) if spec.num_classes is None else ConditionalDiffUNetScoreModel(net, spec.num_classes)
    model.default_image_set = spec.default_image_set
    return model.to(device).eval().requires_grad_(False)


def ffhq256_network(weights: str | Path | None = None, image_size: int = 256, seed: int = 0,
                    device: torch.device | str = "cpu") -> DiffUNetScoreModel:
    """The FFHQ-configuration ADM (deepinv DiffUNet, 128 channels) at `image_size` px, for speed and compiler
    studies: the weights of the state-dict file `weights`, or random ones when it is None.

    Random weights are drawn with torch's generator seeded with `seed` (the caller's random state is
    restored), and the zero-initialised layers get a random init too (`randomize_zero_layers`), so that eps is not
    identically 0 and reduced precision changes it as it would a trained network's. Any multiple of 32
    works as `image_size` (the checkpoint's is 256)."""
    if weights is not None:
        net = load_pretrained("ffhq256", weights).net
    else:
        with torch.random.fork_rng(devices=[]):  # module initialisers draw from the global generator: seed it
            torch.manual_seed(seed)                # here, and leave the caller's random state as it was
            net = _deepinv_diffunet()(in_channels=3, out_channels=3, large_model=PRETRAINED["ffhq256"].large_model,
                                      pretrained=None)
            randomize_zero_layers(net)
    model = DiffUNetScoreModel(net, (3, image_size, image_size))
    return model.to(device).eval().requires_grad_(False)


def randomize_zero_layers(net: nn.Module) -> None:
    """Give ADM's zero-initialised layers (zero_module: each block's last conv, the attention projections, the
    output conv) PyTorch's default random init, in place."""
    for module in net.modules():
        params = list(module.parameters(recurse=False))
        if params and hasattr(module, "reset_parameters") and not any(p.any() for p in params):
            module.reset_parameters()


@register_model("ffhq256")
def ffhq256(device: torch.device) -> DiffUNetScoreModel:
    """FFHQ 256 UNet of DPS/DiffPIR/DAPS (ffhq_10m.pt in the torch hub cache, or ffhq256:PATH); linear DDPM, T=1000."""
    return load_pretrained("ffhq256", device=device)


@register_model("imagenet256")
def imagenet256(device: torch.device) -> DiffUNetScoreModel:
    """guided-diffusion ImageNet 256 uncond UNet (256x256_diffusion_uncond.pt in the hub cache, or imagenet256:PATH)."""
    return load_pretrained("imagenet256", device=device)


@register_model("imagenet256-cond")
def imagenet256_cond(device: torch.device) -> DiffUNetScoreModel:
    """guided-diffusion ImageNet 256 class-conditional UNet (256x256_diffusion.pt; classes 0..999, --condition)."""
    return load_pretrained("imagenet256-cond", device=device)


@register_model_path("imagenet256-cond")
def imagenet256_cond_file(path: Path, device: torch.device) -> DiffUNetScoreModel:
    """imagenet256-cond with the weights in the state-dict file PATH (e.g. 256x256_diffusion.pt)."""
    return load_pretrained("imagenet256-cond", path, device=device)


@register_model_path("ffhq256")
def ffhq256_file(path: Path, device: torch.device) -> DiffUNetScoreModel:
    """ffhq256 with the weights in the state-dict file PATH (e.g. DPS's models/ffhq_10m.pt)."""
    return load_pretrained("ffhq256", path, device=device)


@register_model_path("imagenet256")
def imagenet256_file(path: Path, device: torch.device) -> DiffUNetScoreModel:
    """imagenet256 with the weights in the state-dict file PATH (e.g. 256x256_diffusion_uncond.pt)."""
    return load_pretrained("imagenet256", path, device=device)


