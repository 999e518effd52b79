"""The pixel-space checkpoints of the DPS line of papers, and any diffusers UNet2DModel folder.

Names (`bench run --model ...`, `load_model(...)`):

    ffhq256               FFHQ 256 UNet of DPS / DiffPIR / DAPS: file ffhq_10m.pt
    imagenet256           guided-diffusion's unconditional ImageNet 256 UNet: file 256x256_diffusion_uncond.pt
    ffhq256:PATH          the same architecture with the weights in the state-dict file PATH
    imagenet256:PATH      likewise
    diffusers:DIR         a diffusers UNet2DModel folder, e.g. google/ddpm-celebahq-256 (`pip install diffusers`)

A bare name reads its file from torch's hub cache, `torch.hub.get_dir()/checkpoints/FILE`
(~/.cache/torch/hub/checkpoints unless $TORCH_HOME says otherwise). A missing file is downloaded there
only when the user opts in, with IPBENCH_DOWNLOAD=1 (or `load_pretrained(name, download=True)`);
otherwise, or when the download fails, a one-line UsageError says which file to place where. A raw
state dict cannot tell its architecture, which is why a file path needs its name: `ffhq256:PATH`.

Both checkpoints are guided-diffusion's ADM UNet (Dhariwal & Nichol 2021), built by deepinv's
`DiffUNet` (its `large_model=True` is the ImageNet configuration), trained on the linear DDPM schedule
with T = 1000, beta 1e-4 .. 0.02 (Ho et al. 2020; DPS configs/diffusion_config.yaml: `noise_schedule:
linear`, `rescale_timesteps: False`), which is what deepinv's `DiffUNet.get_alpha_prod` assumes too.
They learn their variance (Nichol & Dhariwal 2021): the network outputs 6 channels, eps then the
variance interpolation; ipbench's interface needs eps only and uses the first 3.

Every file is read with `torch.load(weights_only=True)` (or safetensors), checked key by key and shape
by shape against the architecture, and refused with a UsageError otherwise; no pickled code runs.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from ipbench.data import ffhq as _ffhq  # noqa: F401  (registers the `ffhq-1k` image set, ffhq256's default)
from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.registry import CHECKPOINT_FORMAT, register_model, register_model_path

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
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _unpickling_detail(exc: BaseException) -> str:
    """The informative line of torch's weights_only refusal (e.g. 'Trying to load unsupported GLOBAL
    posix.system ...'), without its advice to retry with weights_only=False."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(boilerplate)), lines[0] if lines else type(exc).__name__)


# ---------------------------------------------------------------------------------------- score models

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
        net = self.net
        angles = t[:, None].float() * self.freqs[None]
        emb = net.time_embed(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
        h, skips = x_t, []
        for block in net.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = net.middle_block(h, emb)
        for block in net.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return net.out(h)[:, : self.channels]


class DiffusersScoreModel(ScoreModel):
    """A diffusers `UNet2DModel` eps-network as a ScoreModel, on the schedule of its scheduler config.

    With a learned variance (variance_type learned / learned_range) the network outputs 2C channels and
    `eps` keeps the first C, as diffusers' DDPMScheduler does.
    """

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, image_shape: tuple[int, int, int]) -> None:
        super().__init__(alphas_cumprod, image_shape)
        self.unet = unet

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.unet(x_t, t, return_dict=False)[0][:, : self.channels]


# --------------------------------------------------------------------------------- state-dict checking

def read_state_dict(path: Path, what: str = "model file") -> dict[str, Tensor]:
    """A flat {name: tensor} dict from `path` via torch.load(weights_only=True); otherwise a one-line
    UsageError that starts with `what` and the path (a model file, a metric's weights, ...)."""
    if not path.is_file():
        raise UsageError(f"{what} {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # code, other objects, or bytes that are no pickle at all
        raise UsageError(f"{what} {path}: refused, not a plain file of tensors (torch.load weights_only=True: "
                         f"{_unpickling_detail(exc)})") from None
    except Exception as exc:  # truncated, not a torch file, ...
        raise UsageError(f"{what} {path}: not a loadable state dict ({_first_line(exc)})") from None
    if not isinstance(blob, Mapping) or not blob:
        raise UsageError(f"{what} {path}: not a state dict (a non-empty dict of name -> tensor), "
                         f"got {type(blob).__name__}")
    bad = next((k for k, v in blob.items() if not isinstance(k, str) or not isinstance(v, Tensor)), None)
    if bad is not None:
        hint = ": it is an ipbench checkpoint, pass its path alone" if blob.get("format") == CHECKPOINT_FORMAT else ""
        raise UsageError(f"{what} {path}: not a state dict (entry {bad!r} is a {type(blob[bad]).__name__}, "
                         f"not a tensor){hint}")
    return dict(blob)


def state_dict_mismatch(expected: Mapping[str, torch.Size], state: Mapping[str, Tensor]) -> str | None:
    """None if `state` has exactly the keys and shapes of `expected` (all floating point); else a one-line summary."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    not_float = [k for k in expected if k in state and not state[k].is_floating_point()]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[0]!r})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} shape mismatch(es) (e.g. {k!r}: file {tuple(state[k].shape)}, "
                     f"expected {tuple(expected[k])})")
    if not_float:
        parts.append(f"{len(not_float)} non-float tensor(s) (e.g. {not_float[0]!r}: {state[not_float[0]].dtype})")
    return "; ".join(parts) or None


def _deepinv_diffunet() -> type:
    try:
        from deepinv.models.diffunet import DiffUNet
    except ImportError as exc:
        raise UsageError(f"the ADM models need deepinv's DiffUNet (pip install 'deepinv>=0.3'): "
                         f"{_first_line(exc)}") from None
    return DiffUNet


def _skeleton(large_model: bool) -> nn.Module:
    """deepinv's DiffUNet (3 -> 6 channels) on the meta device: the architecture, no memory, no weights."""
    with torch.device("meta"):
        return _deepinv_diffunet()(in_channels=3, out_channels=3, large_model=large_model, pretrained=None)


@lru_cache(maxsize=2)
def diffunet_shapes(large_model: bool) -> dict[str, torch.Size]:
    """Parameter name -> shape of the DiffUNet configuration (without deepinv's schedule buffers)."""
    return {k: v.shape for k, v in _skeleton(large_model).state_dict().items() if k not in SCHEDULE_BUFFERS}


def diffunet_from_state_dict(state: Mapping[str, Tensor], spec: PretrainedUNet, source: str) -> nn.Module:
    """deepinv's DiffUNet of `spec` holding `state` (cast to float32); UsageError naming `source` if it does not fit.

    deepinv's own schedule buffers are recomputed (and ignored if the file has them, as a saved
    `DiffUNet.state_dict()` does).
    """
    state = {k: v for k, v in state.items() if k not in SCHEDULE_BUFFERS}
    problem = state_dict_mismatch(diffunet_shapes(spec.large_model), state)
    if problem is not None:
        fits = [o.name for o in PRETRAINED.values() if o.large_model != spec.large_model
                and state_dict_mismatch(diffunet_shapes(o.large_model), state) is None]
        hint = f"; it fits {fits[0]}: use --model {fits[0]}:{source}" if fits else ""
        raise UsageError(f"model file {source}: not a state dict of {spec.name}'s architecture (ADM UNet, deepinv "
                         f"DiffUNet large_model={spec.large_model}): {problem}{hint}")
    net = _skeleton(spec.large_model)
    sqrt_1m_alphas_cumprod, sqrt_alphas_cumprod = net.get_alpha_prod()[-2:]  # computed on the CPU, not on meta
    weights = {k: v.float() for k, v in state.items()}
    weights.update(sqrt_1m_alphas_cumprod=sqrt_1m_alphas_cumprod, sqrt_alphas_cumprod=sqrt_alphas_cumprod)
    net.load_state_dict(weights, strict=True, assign=True)  # assign: the meta skeleton takes the loaded tensors
    return net.eval()


# ----------------------------------------------------------------------------------- weights and names

def weights_path(name: str) -> Path:
    """Where the bare name `name` looks for its file: torch.hub.get_dir()/checkpoints/FILE."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PRETRAINED[name].file


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
        raise UsageError(f"model {spec.name}: downloading {spec.url} to {dest} failed ({_first_line(exc)}); place "
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
    model = DiffUNetScoreModel(diffunet_from_state_dict(read_state_dict(file), spec, str(file)))
    model.default_image_set = spec.default_image_set
    return model.to(device).eval().requires_grad_(False)


@register_model("ffhq256")
def ffhq256(device: torch.device) -> DiffUNetScoreModel:
    """FFHQ 256 UNet of DPS/DiffPIR/DAPS (ffhq_10m.pt in the torch hub cache, or ffhq256:PATH); linear DDPM, T=1000."""
    return load_pretrained("ffhq256", device=device)


@register_model("imagenet256")
def imagenet256(device: torch.device) -> DiffUNetScoreModel:
    """guided-diffusion ImageNet 256 uncond UNet (256x256_diffusion_uncond.pt in the hub cache, or imagenet256:PATH)."""
    return load_pretrained("imagenet256", device=device)


@register_model_path("ffhq256")
def ffhq256_file(path: Path, device: torch.device) -> DiffUNetScoreModel:
    """ffhq256 with the weights in the state-dict file PATH (e.g. DPS's models/ffhq_10m.pt)."""
    return load_pretrained("ffhq256", path, device=device)


@register_model_path("imagenet256")
def imagenet256_file(path: Path, device: torch.device) -> DiffUNetScoreModel:
    """imagenet256 with the weights in the state-dict file PATH (e.g. 256x256_diffusion_uncond.pt)."""
    return load_pretrained("imagenet256", path, device=device)


# -------------------------------------------------------------------------------------------- diffusers

SCHEDULER_CONFIGS = ("scheduler/scheduler_config.json", "scheduler_config.json")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _read_json(path: Path, where: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: cannot read {path} ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: {path} is not a JSON object")
    return data


def diffusers_alphas_cumprod(config: Mapping, where: str) -> Tensor:
    """alpha_bar of a diffusers scheduler config, float64; UsageError unless it is an eps-prediction
    linear or scaled_linear schedule (the two ipbench reproduces exactly, with diffusers' formulas)."""
    prediction = config.get("prediction_type", "epsilon")  # configs older than the key are epsilon models
    if prediction != "epsilon":
        raise UsageError(f"{where}: prediction_type {prediction!r} is not supported; valid: 'epsilon'")
    if config.get("trained_betas") is not None or config.get("rescale_betas_zero_snr"):
        raise UsageError(f"{where}: trained_betas / rescale_betas_zero_snr are not supported; valid: a plain "
                         "'linear' or 'scaled_linear' beta_schedule")
    missing = [k for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule") if k not in config]
    if missing:
        raise UsageError(f"{where}: scheduler config lacks {', '.join(missing)} (not a DDPM-family scheduler?)")
    kind, steps = config["beta_schedule"], config["num_train_timesteps"]
    start, end = config["beta_start"], config["beta_end"]
    if kind not in ("linear", "scaled_linear"):
        raise UsageError(f"{where}: beta_schedule {kind!r} is not supported; valid: 'linear', 'scaled_linear'")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise UsageError(f"{where}: num_train_timesteps={steps!r}; valid: an integer >= 2")
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (start, end)) or not 0 < start < end < 1:
        raise UsageError(f"{where}: beta_start={start!r}, beta_end={end!r}; valid: 0 < beta_start < beta_end < 1")
    if kind == "linear":  # diffusers: torch.linspace(beta_start, beta_end, T)
        return linear_alphas_cumprod(steps, float(start), float(end))
    betas = torch.linspace(float(start) ** 0.5, float(end) ** 0.5, steps, dtype=torch.float64) ** 2  # scaled_linear
    return torch.cumprod(1.0 - betas, dim=0)


def _diffusers_unet_class(where: str) -> type:
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise UsageError(f"{where}: needs the optional diffusers package; install it with `pip install diffusers`") from None
    return UNet2DModel


def _read_diffusers_weights(unet_dir: Path, where: str) -> dict[str, Tensor]:
    safetensors_file, bin_file = (unet_dir / name for name in WEIGHT_FILES)
    if safetensors_file.is_file():
        from safetensors.torch import load_file  # a dependency of diffusers

        try:
            return load_file(str(safetensors_file))
        except Exception as exc:
            raise UsageError(f"{where}: {safetensors_file} is not a readable safetensors file "
                             f"({_first_line(exc)})") from None
    if bin_file.is_file():
        return read_state_dict(bin_file)
    raise UsageError(f"{where}: {unet_dir} has no {' or '.join(WEIGHT_FILES)} "
                     "(sharded or variant weights are not supported)")


def _diffusers_files(root: Path, where: str) -> tuple[Path, Path]:
    """(the folder holding the UNet's config.json and weights, the scheduler config) of a model or pipeline folder."""
    if not root.is_dir():
        raise UsageError(f"{where}: not a folder; valid: a diffusers UNet2DModel folder (config.json + "
                         "diffusion_pytorch_model.*) or a pipeline folder with unet/ and scheduler/")
    unet_dir = root if (root / "config.json").is_file() else root / "unet"
    if not (unet_dir / "config.json").is_file():
        raise UsageError(f"{where}: no config.json in {root} or {root / 'unet'}; is it a diffusers model folder?")
    candidates = [root / c for c in SCHEDULER_CONFIGS]
    if root.name == "unet":  # the unet/ folder of a pipeline: its scheduler is a sibling
        candidates.append(root.parent / SCHEDULER_CONFIGS[0])
    scheduler_file = next((c for c in candidates if c.is_file()), None)
    if scheduler_file is None:
        raise UsageError(f"{where}: no scheduler config ({' or '.join(SCHEDULER_CONFIGS)}): the noise schedule "
                         "the model was trained with cannot be known without it")
    return unet_dir, scheduler_file


def _diffusers_image_shape(config: Mapping, variance: str, where: str) -> tuple[int, int, int]:
    """(C, H, W) of an unconditional, DDPM-timestep UNet2DModel config; UsageError for anything else."""
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise UsageError(f"{where}: is a {config['_class_name']}; valid: a pixel-space UNet2DModel")
    if config.get("time_embedding_type", "positional") != "positional":
        raise UsageError(f"{where}: time_embedding_type {config['time_embedding_type']!r} (a score-SDE model?); "
                         "valid: 'positional' (DDPM timesteps)")
    if config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        raise UsageError(f"{where}: class-conditional UNet; valid: an unconditional one")
    channels, out_channels = config.get("in_channels", 3), config.get("out_channels", 3)
    learned = variance in ("learned", "learned_range")
    if channels not in (1, 3) or out_channels != (2 * channels if learned else channels):
        raise UsageError(f"{where}: in_channels={channels}, out_channels={out_channels} with variance_type "
                         f"{variance!r}; valid: 1 or 3 channels in, as many out (twice as many for a learned variance)")
    size = config.get("sample_size")
    height, width = (size, size) if isinstance(size, int) else (0, 0)
    if isinstance(size, list) and len(size) == 2:
        height, width = size
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in (height, width)):
        raise UsageError(f"{where}: sample_size {size!r}; valid: an int or [height, width]")
    return channels, height, width


def load_diffusers(directory: str | Path, device: torch.device | str = "cpu") -> DiffusersScoreModel:
    """A diffusers UNet2DModel folder as a ScoreModel (see `diffusers_alphas_cumprod` for what is accepted).

    `directory` is either a model folder (config.json, diffusion_pytorch_model.safetensors or .bin and
    scheduler_config.json, as google/ddpm-celebahq-256) or a pipeline folder (unet/, scheduler/).
    Nothing is downloaded and no pickled code runs: the weights are read by this function.
    """
    where = f"model diffusers:{directory}"
    unet_dir, scheduler_file = _diffusers_files(Path(directory).expanduser(), where)
    scheduler = _read_json(scheduler_file, where)
    alphas_cumprod = diffusers_alphas_cumprod(scheduler, f"{where} ({scheduler_file.name})")
    config = _read_json(unet_dir / "config.json", where)
    image_shape = _diffusers_image_shape(config, scheduler.get("variance_type", "fixed_small"), where)

    unet_class = _diffusers_unet_class(where)
    state = dict(_read_diffusers_weights(unet_dir, where))
    try:
        unet = unet_class.from_config(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"{where}: config.json does not build a UNet2DModel ({_first_line(exc)})") from None
    fix_keys = getattr(unet, "_fix_state_dict_keys_on_load", None)  # diffusers' renaming of old attention weights
    if fix_keys is not None:  # (query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0), in place
        fix_keys(state)
    problem = state_dict_mismatch({k: v.shape for k, v in unet.state_dict().items()}, state)
    if problem is not None:
        raise UsageError(f"{where}: the weights do not fit config.json: {problem}")
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return DiffusersScoreModel(unet, alphas_cumprod, image_shape).to(device).eval().requires_grad_(False)


@register_model_path("diffusers")
def diffusers_folder(path: Path, device: torch.device) -> DiffusersScoreModel:
    """A diffusers UNet2DModel folder (eps prediction, linear/scaled_linear schedule); needs `pip install diffusers`."""
    return load_diffusers(path, device)
