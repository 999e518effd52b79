"""`diffusers:DIR`: a diffusers `UNet2DModel` folder as a prior of the family its scheduler says: an eps-prediction
DDPM (linear or scaled-linear schedule), a flow-matching velocity model (FlowMatchEulerDiscreteScheduler) or an
EDM-preconditioned denoiser (EDMEulerScheduler).

Needs the optional diffusers package (`pip install -e ".[diffusers]"`). Nothing is downloaded and no
pickled code runs: the weights are read here (safetensors, or a .bin through ipbench.weights) and checked
against the folder's config.json.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ipbench.errors import UsageError, first_line
from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.flow import FlowModel
from ipbench.models.ve import VEModel, edm_inputs, edm_preconditioned, edm_sigma_grid
from ipbench.models.registry import register_model_path
from ipbench.weights import read_state_dict, state_dict_mismatch


SCHEDULER_CONFIGS = ("scheduler/scheduler_config.json", "scheduler_config.json")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


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


class DiffusersFlowModel(FlowModel):
    """A diffusers UNet2DModel trained with FlowMatchEulerDiscreteScheduler: x_sigma = (1 - sigma) x0 + sigma noise,
    the network given timestep sigma * num_train_timesteps and predicting noise - x0 (the scheduler's step is
    x + (sigma_next - sigma) v), which is ipbench's flow path with s = sigma (models/flow.py)."""

    def __init__(self, unet: nn.Module, scheduler: Mapping, image_shape: tuple[int, int, int], where: str) -> None:
        steps = scheduler.get("num_train_timesteps", 1000)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise UsageError(f"{where}: num_train_timesteps={steps!r}; valid: an integer >= 1")
        if scheduler.get("invert_sigmas"):
            raise UsageError(f"{where}: invert_sigmas is set (a reversed path); valid: the standard flow path")
        super().__init__(image_shape)  # its VP view on DDPM's linear grid (models/flow.py)
        self.unet, self.train_timesteps = unet, steps

    def velocity(self, x_s: Tensor, s: Tensor) -> Tensor:
        return self.unet(x_s, s * self.train_timesteps, return_dict=False)[0]


class DiffusersEDMModel(VEModel):
    """A diffusers UNet2DModel F trained with EDMEulerScheduler's preconditioning (models/ve.py): its VP grid
    is the scheduler's own num_train_timesteps sigmas between sigma_min and sigma_max (rho schedule)."""

    def __init__(self, unet: nn.Module, scheduler: Mapping, image_shape: tuple[int, int, int], where: str) -> None:
        prediction = scheduler.get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction"):
            raise UsageError(f"{where}: prediction_type {prediction!r}; valid: 'epsilon', 'v_prediction'")
        if scheduler.get("sigma_schedule", "karras") != "karras":
            raise UsageError(f"{where}: sigma_schedule {scheduler['sigma_schedule']!r}; valid: 'karras'")
        numbers = {k: scheduler.get(k, d) for k, d in (("sigma_min", 0.002), ("sigma_max", 80.0), ("sigma_data", 0.5),
                                                       ("rho", 7.0))}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in numbers.values()) \
                or not numbers["sigma_min"] < numbers["sigma_max"]:
            raise UsageError(f"{where}: sigma_min, sigma_max, sigma_data, rho = {list(numbers.values())}; valid: "
                             "positive numbers with sigma_min < sigma_max")
        steps = scheduler.get("num_train_timesteps", 1000)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise UsageError(f"{where}: num_train_timesteps={steps!r}; valid: an integer >= 2")
        super().__init__(edm_sigma_grid(numbers["sigma_min"], numbers["sigma_max"], steps, numbers["rho"]), image_shape)
        self.unet, self.sigma_data, self.v_prediction = unet, float(numbers["sigma_data"]), prediction == "v_prediction"

    def denoise_ve(self, x: Tensor, sigma: Tensor) -> Tensor:
        scaled, noise = edm_inputs(x, sigma, self.sigma_data)
        output = self.unet(scaled, noise, return_dict=False)[0]
        return edm_preconditioned(output, x, sigma, self.sigma_data, self.v_prediction)


# Scheduler class -> the family its UNet is (built from the UNet, the scheduler config, the image shape).
FAMILY_SCHEDULERS = {"FlowMatchEulerDiscreteScheduler": DiffusersFlowModel, "EDMEulerScheduler": DiffusersEDMModel}
REFUSED_SCHEDULERS = {
    "ScoreSdeVeScheduler": "score-SDE VE models take data in [0, 1] with a fourier time embedding, a range their "
                           "config does not record; valid: DDPM-family, FlowMatchEulerDiscrete or EDMEuler schedulers",
}


def _read_json(path: Path, where: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: cannot read {path} ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: {path} is not a JSON object")
    return data


def diffusers_alphas_cumprod(config: Mapping, where: str, predictions: tuple[str, ...] = ("epsilon",)) -> Tensor:
    """alpha_bar of a diffusers scheduler config, float64; UsageError unless it is a linear or scaled_linear
    schedule (the two ipbench reproduces exactly, with diffusers' formulas) of a prediction type in `predictions`
    (those the caller converts to eps)."""
    prediction = config.get("prediction_type", "epsilon")  # configs older than the key are epsilon models
    if prediction not in predictions:
        valid = ", ".join(repr(p) for p in predictions)
        raise UsageError(f"{where}: prediction_type {prediction!r} is not supported; valid: {valid}")
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
                             f"({first_line(exc)})") from None
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


def load_diffusers(directory: str | Path, device: torch.device | str = "cpu") -> ScoreModel:
    """A diffusers UNet2DModel folder as a prior, of the family its scheduler config names: a DDPM-family
    scheduler (see `diffusers_alphas_cumprod` for what is accepted), FlowMatchEulerDiscreteScheduler (a
    flow-matching velocity model) or EDMEulerScheduler (an EDM-preconditioned denoiser); anything else is refused.

    `directory` is either a model folder (config.json, diffusion_pytorch_model.safetensors or .bin and
    scheduler_config.json, as google/ddpm-celebahq-256) or a pipeline folder (unet/, scheduler/).
    Nothing is downloaded and no pickled code runs: the weights are read by this function.
    """
    where = f"model diffusers:{directory}"
    unet_dir, scheduler_file = _diffusers_files(Path(directory).expanduser(), where)
    scheduler = _read_json(scheduler_file, where)
    kind = scheduler.get("_class_name", "")
    config = _read_json(unet_dir / "config.json", where)
    if kind in FAMILY_SCHEDULERS:
        image_shape = _diffusers_image_shape(config, "fixed_small", where)
        model = FAMILY_SCHEDULERS[kind](_built_unet(unet_dir, config, where), scheduler, image_shape,
                                        f"{where} ({scheduler_file.name})")
        return model.to(device).eval().requires_grad_(False)
    if kind in REFUSED_SCHEDULERS:
        raise UsageError(f"{where}: {kind} is not supported: {REFUSED_SCHEDULERS[kind]}")
    alphas_cumprod = diffusers_alphas_cumprod(scheduler, f"{where} ({scheduler_file.name})")
    image_shape = _diffusers_image_shape(config, scheduler.get("variance_type", "fixed_small"), where)
    unet = _built_unet(unet_dir, config, where)
    return DiffusersScoreModel(unet, alphas_cumprod, image_shape).to(device).eval().requires_grad_(False)


def _built_unet(unet_dir: Path, config: dict, where: str) -> nn.Module:
    """The UNet2DModel of config.json with the folder's weights, checked name by name and shape by shape."""
    return built_model(_diffusers_unet_class(where), unet_dir, config, where)


def built_model(cls: type, folder: Path, config: dict, where: str) -> nn.Module:
    """A diffusers model of `cls` from its config.json (`config`) and the folder's weights, checked name by name and
    shape by shape; a one-line UsageError naming the folder otherwise."""
    state = dict(_read_diffusers_weights(folder, where))
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"{where}: {folder / 'config.json'} does not build a {cls.__name__} ({first_line(exc)})") from None
    fix_keys = getattr(model, "_fix_state_dict_keys_on_load", None)  # diffusers' renaming of old attention weights
    if fix_keys is not None:  # (query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0), in place
        fix_keys(state)
    problem = state_dict_mismatch({k: v.shape for k, v in model.state_dict().items()}, state)
    if problem is not None:
        raise UsageError(f"{where}: the weights in {folder} do not fit config.json: {problem}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


@register_model_path("diffusers")
def diffusers_folder(path: Path, device: torch.device) -> ScoreModel:
    """A diffusers UNet2DModel folder (a DDPM, flow-matching or EDM model, by its scheduler); needs `pip install diffusers`."""
    return load_diffusers(path, device)
