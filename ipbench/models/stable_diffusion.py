"""`ldm:DIR`: a latent diffusion model (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models") saved as a diffusers pipeline folder, loaded as a `LatentPrior` (models/latent.py). The folder's layout
says which:

- Stable Diffusion 1.x / 2.x (`vae/` AutoencoderKL, `unet/` UNet2DConditionModel, `scheduler/`, `text_encoder/`
  CLIPTextModel and `tokenizer/` CLIPTokenizer): the KL autoencoder's `encode` is the posterior mean of the image
  in [-1, 1] times the VAE config's `scaling_factor` (after subtracting `shift_factor` where one is set), `decode`
  the inverse; the latent model is the UNet given a prompt's CLIP text embedding (the last hidden state of the
  prompt padded to the tokenizer's length, as diffusers' pipeline encodes it). With no condition that prompt is
  the empty one (the unconditional half, which SD was trained with by dropping captions). An optional
  `prompts.json` in the folder, {"class name": "prompt", ...}, makes the prior class-conditional
  (models/conditional.py): `--condition true --guidance W` gives each image the prompt of the class its name
  carries (`000-face.png`), with classifier-free guidance eps_u + W (eps_c - eps_u) against the empty prompt.
- LDM with a VQ autoencoder (diffusers' LDMPipeline: `vqvae/` VQModel, `unet/` UNet2DModel, `scheduler/`; the
  FFHQ / CelebA-HQ LDM-VQ-4 models): `encode` is the encoder and `quant_conv` output before quantisation (LDM's
  VQModelInterface.encode), times the config's `scaling_factor` as LDMPipeline divides by it; `decode` quantises
  to the nearest codebook entries before decoding (VQModel.decode with force_not_quantize=False, LDM's default
  decode), the gradient passing the quantiser straight through (the codebook lookup is z + (z_q - z).detach()).
  Loading CompVis's original .ckpt files is not supported (they are pickles; convert them to this layout).

The noise schedule is the scheduler config's (`diffusers_alphas_cumprod`: linear or scaled_linear, exactly);
a v-prediction or sample-prediction UNet is converted exactly to eps: eps = sqrt(ab) v + sqrt(1 - ab) x_t,
eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab). The latent shape is the UNet's sample_size, the image shape that times
the autoencoder's downsampling (2 ^ (levels - 1)).

Needs diffusers, and transformers for the text encoder (`pip install -e ".[diffusers]"`). Nothing is downloaded
and no pickled code runs: every part's weights are read here and checked against its config.json.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ipbench.errors import UsageError, first_line
from ipbench.models.base import ScoreModel, to_image, to_model
from ipbench.models.conditional import ClassConditional
from ipbench.models.diffusers_unet import (DiffusersScoreModel, _built_unet, _read_json, built_model,
                                           diffusers_alphas_cumprod)
from ipbench.models.latent import Autoencoder, LatentPrior
from ipbench.models.registry import register_model_path
from ipbench.weights import read_state_dict, state_dict_mismatch

PREDICTIONS = ("epsilon", "v_prediction", "sample")
INSTALL = 'pip install -e ".[diffusers]"'
SD_LAYOUT = "vae/, unet/, scheduler/, text_encoder/, tokenizer/"
VQ_LAYOUT = "vqvae/, unet/, scheduler/"
TEXT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def eps_of(output: Tensor, x_t: Tensor, ab: Tensor, prediction: str) -> Tensor:
    """The eps a network's `prediction` ('epsilon', 'v_prediction' or 'sample') stands for at alpha_bar `ab` (N,)."""
    if prediction == "epsilon":
        return output
    ab = ab.to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
    if prediction == "v_prediction":  # v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022)
        return ab.sqrt() * output + (1 - ab).sqrt() * x_t
    return (x_t - ab.sqrt() * output) / (1 - ab).sqrt()  # x0-prediction


class DiffusersKLAutoencoder(Autoencoder):
    """A diffusers AutoencoderKL: images [0, 1] <-> [-1, 1] for the VAE, latents (mean - shift) * scaling_factor."""

    def __init__(self, vae: nn.Module, image_shape: tuple[int, int, int], latent_shape: tuple[int, int, int]) -> None:
        super().__init__(image_shape, latent_shape)
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift_factor = 0.0 if shift is None else float(shift)

    def decode_latents(self, z: Tensor) -> Tensor:
        return to_image(self.vae.decode(z / self.scaling_factor + self.shift_factor, return_dict=False)[0])

    def encode_images(self, x: Tensor) -> Tensor:
        mean = self.vae.encode(to_model(x), return_dict=False)[0].mean
        return (mean - self.shift_factor) * self.scaling_factor


class DiffusersVQAutoencoder(Autoencoder):
    """A diffusers VQModel as LDM's VQModelInterface: encode before quantisation, quantise when decoding."""

    def __init__(self, vqvae: nn.Module, image_shape: tuple[int, int, int], latent_shape: tuple[int, int, int]) -> None:
        super().__init__(image_shape, latent_shape)
        self.vqvae = vqvae
        self.scaling_factor = float(vqvae.config.scaling_factor)

    def decode_latents(self, z: Tensor) -> Tensor:
        return to_image(self.vqvae.decode(z / self.scaling_factor, force_not_quantize=False, return_dict=False)[0])

    def encode_images(self, x: Tensor) -> Tensor:
        return self.vqvae.encode(to_model(x), return_dict=False)[0] * self.scaling_factor


class DiffusersLatentUNet(DiffusersScoreModel):
    """A diffusers UNet2DModel over latents, its prediction converted to eps."""

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, latent_shape: tuple[int, int, int],
                 prediction: str) -> None:
        super().__init__(unet, alphas_cumprod, latent_shape)
        self.prediction = prediction

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        output = super().eps(x_t, t)
        return eps_of(output, x_t, self.alphas_cumprod.to(x_t.device)[t.long()], self.prediction)


class TextConditionedUNet(ClassConditional, ScoreModel):
    """A UNet2DConditionModel eps-model given text embeddings: label -1 (or none) the empty prompt's, label k the
    k-th prompt's (`class_names`, the keys of prompts.json)."""

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, latent_shape: tuple[int, int, int], prediction: str,
                 embeddings: Tensor, class_names: list[str]) -> None:
        super().__init__(alphas_cumprod, latent_shape)
        self.unet, self.prediction, self.class_names = unet, prediction, list(class_names)
        self.register_buffer("embeddings", embeddings)  # (1 + prompts, tokens, width): the empty prompt first
        self.labels: Tensor | None = None
        self.guidance = 1.0

    def eps_given(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        rows = torch.zeros(x_t.shape[0], dtype=torch.long, device=x_t.device) if labels is None \
            else labels.to(x_t.device).long() + 1
        context = self.embeddings[rows].to(x_t.dtype)
        output = self.unet(x_t, t, encoder_hidden_states=context, return_dict=False)[0]
        return eps_of(output, x_t, self.alphas_cumprod.to(x_t.device)[t.long()], self.prediction)


class ConditionalLatentPrior(LatentPrior, ClassConditional):
    """A latent prior over a class-conditional latent model: the condition `conditioned` sets on it is the latent
    model's, so every view (eps, denoise_ve, flow) is conditioned alike."""

    latent: TextConditionedUNet

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        return self.latent.class_names

    @property
    def labels(self) -> Tensor | None:  # type: ignore[override]
        return self.latent.labels

    @labels.setter
    def labels(self, value: Tensor | None) -> None:
        self.latent.labels = value

    @property
    def guidance(self) -> float:  # type: ignore[override]
        return self.latent.guidance

    @guidance.setter
    def guidance(self, value: float) -> None:
        self.latent.guidance = value

    def eps_given(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        return self.latent.eps_given(x_t, t, labels)


def _diffusers(where: str):
    try:
        import diffusers
    except ImportError:
        raise UsageError(f"{where}: needs the optional diffusers package; install it with `{INSTALL}`") from None
    return diffusers


def _config(folder: Path, name: str, what: str, where: str) -> dict:
    path = folder / name / "config.json"
    if not path.is_file():
        raise UsageError(f"{where}: no {name}/config.json; put the pipeline's {name}/ folder ({what}, as diffusers' "
                         f"save_pretrained writes it) at {folder / name}")
    return _read_json(path, where)


def _class_check(config: Mapping, expected: str, folder: str, where: str) -> None:
    if config.get("_class_name", expected) != expected:
        raise UsageError(f"{where}: {folder}/config.json is a {config['_class_name']}; valid: a {expected}")


def _sample_size(config: Mapping, where: str) -> tuple[int, int]:
    size = config.get("sample_size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
        return size[0], size[1]
    raise UsageError(f"{where}: unet/config.json sample_size {size!r}; valid: an int or [height, width]")


def _shapes(autoencoder: Mapping, unet: Mapping, latent_key: str, where: str
            ) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(image shape, latent shape) from the autoencoder's and the UNet's configs; one line where they disagree."""
    channels = autoencoder.get(latent_key, 4)
    if unet.get("in_channels", 4) != channels:
        raise UsageError(f"{where}: unet/config.json in_channels={unet.get('in_channels', 4)} but the autoencoder's "
                         f"{latent_key}={channels}; valid: equal (the UNet runs on the autoencoder's latents)")
    height, width = _sample_size(unet, where)
    factor = 2 ** (len(autoencoder.get("block_out_channels", (64,))) - 1)
    image = (int(autoencoder.get("in_channels", 3)), height * factor, width * factor)
    return image, (int(channels), height, width)


def _schedule(folder: Path, where: str) -> tuple[Tensor, str]:
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise UsageError(f"{where}: no scheduler/scheduler_config.json; put the pipeline's scheduler/ folder at "
                         f"{folder / 'scheduler'} (the noise schedule the model was trained with)")
    config = _read_json(path, where)
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise UsageError(f"{where} ({path.name}): prediction_type {prediction!r}; valid: {', '.join(PREDICTIONS)}")
    return diffusers_alphas_cumprod(config, f"{where} ({path.name})", predictions=PREDICTIONS), prediction


def _text_embeddings(folder: Path, prompts: list[str], width: int, where: str) -> Tensor:
    """(1 + len(prompts), tokens, width): the CLIP text embeddings of "" and each prompt, padded to the tokenizer's
    length (the last hidden state, as diffusers' Stable Diffusion pipelines encode prompts)."""
    try:
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    except ImportError:
        raise UsageError(f"{where}: the text encoder needs the optional transformers package; install it with "
                         f"`{INSTALL}`") from None
    config = _config(folder, "text_encoder", "CLIPTextModel config.json + model.safetensors", where)
    tokenizer_dir = folder / "tokenizer"
    if not ((tokenizer_dir / "vocab.json").is_file() or (tokenizer_dir / "tokenizer.json").is_file()):
        raise UsageError(f"{where}: no tokenizer/vocab.json or tokenizer/tokenizer.json; put the pipeline's "
                         f"tokenizer/ folder (CLIPTokenizer) at {tokenizer_dir}")
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        encoder = CLIPTextModel(CLIPTextConfig.from_dict({k: v for k, v in config.items() if not k.startswith("_")}))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{where}: cannot build the CLIP tokenizer / text encoder ({first_line(exc)})") from None
    if encoder.config.hidden_size != width:
        raise UsageError(f"{where}: text_encoder hidden_size={encoder.config.hidden_size} but unet/config.json "
                         f"cross_attention_dim={width}; valid: equal")
    encoder_dir = folder / "text_encoder"
    weights = next((encoder_dir / n for n in TEXT_WEIGHTS if (encoder_dir / n).is_file()), None)
    if weights is None:
        raise UsageError(f"{where}: no text_encoder/{' or '.join(TEXT_WEIGHTS)}; put the CLIP text encoder's weights "
                         f"at {encoder_dir}")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = read_state_dict(weights)
    expected = {k: v.shape for k, v in encoder.state_dict().items()}
    state = {k: v for k, v in state.items() if k in expected or not k.endswith("position_ids")}  # an old buffer
    problem = state_dict_mismatch(expected, state)
    if problem is not None:
        raise UsageError(f"{where}: the weights in {encoder_dir} do not fit its config.json: {problem}")
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    ids = tokenizer(["", *prompts], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return encoder.eval()(ids)[0].float()


def _prompts(folder: Path, prompts: Mapping[str, str] | None, where: str) -> dict[str, str]:
    """The class names and prompts: `prompts`, else the folder's optional prompts.json, else none."""
    if prompts is None:
        path = folder / "prompts.json"
        if not path.is_file():
            return {}
        try:
            prompts = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{where}: cannot read {path} ({first_line(exc)})") from None
        where = f"{where} ({path.name})"
    if not isinstance(prompts, Mapping) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                   for k, v in prompts.items()):
        raise UsageError(f"{where}: prompts must be a JSON object of class name -> prompt, e.g. "
                         '{"face": "a photo of a face"}')
    return dict(prompts)


def _stable_diffusion(folder: Path, prompts: Mapping[str, str] | None, where: str) -> LatentPrior:
    diffusers = _diffusers(where)
    vae_config = _config(folder, "vae", "AutoencoderKL config.json + diffusion_pytorch_model.safetensors", where)
    unet_config = _config(folder, "unet", "UNet2DConditionModel config.json + diffusion_pytorch_model.safetensors",
                          where)
    _class_check(vae_config, "AutoencoderKL", "vae", where)
    _class_check(unet_config, "UNet2DConditionModel", "unet", where)
    refused = [k for k in ("addition_embed_type", "class_embed_type", "num_class_embeds", "time_cond_proj_dim")
               if unet_config.get(k) is not None]
    if refused:
        raise UsageError(f"{where}: unet/config.json sets {', '.join(refused)} (an SDXL, upscaler or distilled UNet); "
                         "valid: a Stable Diffusion 1.x / 2.x text-conditional UNet")
    if unet_config.get("out_channels", 4) != unet_config.get("in_channels", 4):
        raise UsageError(f"{where}: unet/config.json out_channels={unet_config.get('out_channels')} differs from "
                         f"in_channels={unet_config.get('in_channels')}; valid: equal (an eps, v or x0 prediction)")
    image_shape, latent_shape = _shapes(vae_config, unet_config, "latent_channels", where)
    alphas_cumprod, prediction = _schedule(folder, where)
    names = _prompts(folder, prompts, where)
    width = unet_config.get("cross_attention_dim", 1280)
    if not isinstance(width, int):
        raise UsageError(f"{where}: unet/config.json cross_attention_dim {width!r}; valid: one integer")
    embeddings = _text_embeddings(folder, list(names.values()), width, where)
    vae = built_model(diffusers.AutoencoderKL, folder / "vae", vae_config, where)
    unet = built_model(diffusers.UNet2DConditionModel, folder / "unet", unet_config, where)
    latent = TextConditionedUNet(unet, alphas_cumprod, latent_shape, prediction, embeddings, list(names))
    autoencoder = DiffusersKLAutoencoder(vae, image_shape, latent_shape)
    return (ConditionalLatentPrior if names else LatentPrior)(latent, autoencoder)


def _vq_ldm(folder: Path, where: str) -> LatentPrior:
    diffusers = _diffusers(where)
    vq_config = _config(folder, "vqvae", "VQModel config.json + diffusion_pytorch_model.safetensors", where)
    unet_config = _config(folder, "unet", "UNet2DModel config.json + diffusion_pytorch_model.safetensors", where)
    _class_check(vq_config, "VQModel", "vqvae", where)
    _class_check(unet_config, "UNet2DModel", "unet", where)
    if unet_config.get("num_class_embeds") is not None or unet_config.get("class_embed_type") is not None:
        raise UsageError(f"{where}: unet/config.json is class-conditional; valid: an unconditional UNet2DModel")
    if vq_config.get("norm_type", "group") != "group":
        raise UsageError(f"{where}: vqvae/config.json norm_type {vq_config['norm_type']!r}; valid: 'group' (LDM's)")
    image_shape, latent_shape = _shapes(vq_config, unet_config, "latent_channels", where)
    if unet_config.get("out_channels", latent_shape[0]) != latent_shape[0]:
        raise UsageError(f"{where}: unet/config.json out_channels={unet_config.get('out_channels')}; valid: "
                         f"{latent_shape[0]} (its in_channels)")
    alphas_cumprod, prediction = _schedule(folder, where)
    vqvae = built_model(diffusers.VQModel, folder / "vqvae", vq_config, where)
    unet = _built_unet(folder / "unet", unet_config, where)
    latent = DiffusersLatentUNet(unet, alphas_cumprod, latent_shape, prediction)
    return LatentPrior(latent, DiffusersVQAutoencoder(vqvae, image_shape, latent_shape))


def load_latent_diffusion(directory: str | Path, device: torch.device | str = "cpu",
                          prompts: Mapping[str, str] | None = None) -> LatentPrior:
    """A diffusers latent diffusion pipeline folder as a LatentPrior: Stable Diffusion (vae/ ...) or LDM-VQ
    (vqvae/ ...), by its layout. `prompts` ({class name: prompt}) overrides the folder's optional prompts.json."""
    folder = Path(directory).expanduser()
    where = f"model ldm:{directory}"
    if not folder.is_dir():
        raise UsageError(f"{where}: not a folder; valid: a diffusers pipeline folder with {SD_LAYOUT} (Stable "
                         f"Diffusion) or {VQ_LAYOUT} (LDM-VQ)")
    if (folder / "vqvae").is_dir():
        model = _vq_ldm(folder, where)
    elif (folder / "vae").is_dir() or (folder / "text_encoder").is_dir():
        model = _stable_diffusion(folder, prompts, where)
    else:
        raise UsageError(f"{where}: no vae/ or vqvae/ in {folder}; valid: a diffusers pipeline folder with "
                         f"{SD_LAYOUT} (Stable Diffusion) or {VQ_LAYOUT} (LDM-VQ)")
    return model.to(device).eval().requires_grad_(False)


@register_model_path("ldm")
def latent_diffusion_folder(path: Path, device: torch.device) -> ScoreModel:
    """A diffusers latent diffusion pipeline folder (Stable Diffusion 1.x / 2.x or LDM-VQ); needs `pip install -e ".[diffusers]"`."""
    return load_latent_diffusion(path, device)
