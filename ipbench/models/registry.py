"""Score models by name (`bench run --model NAME`) or by checkpoint path.

A loader is a function `(device) -> ScoreModel` registered with `@register_model("name")`. A checkpoint
is a dict saved by `save_checkpoint` {format, arch, config, state_dict}, loaded with weights_only=True
and built by the architecture registered under `arch`, so no pickled code ever runs. An architecture is a
ScoreModel class, or the class of a part of one (an `Autoencoder`, which `load_checkpoint` reads but `load_model`
refuses: it is no prior); a model made of parts saves them in one file (models/checkpoint_parts.py). A path loader
`(path, device) -> ScoreModel` registered with `@register_model_path("prefix")` serves `--model prefix:PATH`,
for files that cannot name their own architecture (a raw state dict, a diffusers folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from ipbench.errors import UsageError, first_line
from ipbench.files import atomic_write
from ipbench.models.base import ScoreModel
from ipbench.paths import expand_user
from ipbench.registry import Registry
from ipbench.weights import CHECKPOINT_FORMAT

ModelLoader = Callable[[torch.device], ScoreModel]
MODELS: Registry[ModelLoader] = Registry("model")
PathLoader = Callable[[Path, torch.device], ScoreModel]
MODEL_PATH_LOADERS: Registry[PathLoader] = Registry("model path prefix")


class Architecture(Protocol):
    """A ScoreModel class (or a part's, such as an Autoencoder) that can be rebuilt from a checkpoint's config and
    state dict."""

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, torch.Tensor]) -> nn.Module: ...


ARCHITECTURES: Registry[type] = Registry("model architecture")


def register_model(name: str, aliases: tuple[str, ...] = ()) -> Callable[[ModelLoader], ModelLoader]:
    """Register a loader `(device) -> ScoreModel` under `name`."""
    return MODELS.decorator(name, aliases)


def register_model_path(prefix: str) -> Callable[[PathLoader], PathLoader]:
    """Register a loader `(path, device) -> ScoreModel` for `--model PREFIX:PATH`."""
    return MODEL_PATH_LOADERS.decorator(prefix)


def register_architecture(name: str) -> Callable[[type], type]:
    """Register a ScoreModel class, or a part's class (with `from_config` and `config`), for checkpoints."""
    def register(cls: type) -> type:
        cls.arch_name = name
        return ARCHITECTURES.add(name, cls)

    return register


def save_checkpoint(model: nn.Module, path: str | Path, half: bool = False) -> None:
    """Save a model of a registered architecture so that `load_model(path)` restores it.

    `half` stores floating-point weights as float16 (loaders cast back to float32).
    """
    arch = getattr(type(model), "arch_name", None)
    if arch is None:
        raise ValueError(f"{type(model).__name__} has no registered architecture")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = {"format": CHECKPOINT_FORMAT, "arch": arch, "config": model.config(), "state_dict": state}
    atomic_write(path, lambda partial: torch.save(blob, partial))


def load_checkpoint(path: str | Path) -> nn.Module:
    """Load a checkpoint written by `save_checkpoint` (a ScoreModel, or a part such as an Autoencoder); refuses
    anything else with a clear error."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused or file unreadable: a user mistake, not a crash
        raise UsageError(f"model file {path}: not a loadable checkpoint ({first_line(exc)})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"model file {path}: not an ipbench checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    try:
        cls = ARCHITECTURES.get(blob["arch"])
        return cls.from_config(blob["config"], blob["state_dict"])
    except UsageError as exc:  # declared fields out of bounds, weights that do not fit: the architecture says which
        raise UsageError(f"model file {path}: {exc}") from None
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:  # missing or foreign parts
        raise UsageError(f"model file {path}: malformed ipbench checkpoint ({first_line(exc)})") from None


def model_file(name_or_path: str) -> Path | None:
    """The file (or folder) a model given by path is read from: PATH of PREFIX:PATH, or a checkpoint file;
    None for a registered name. Its content hash goes into run.json, so a file changed under the same name
    is noticed on resume."""
    prefix, colon, path = name_or_path.partition(":")
    if name_or_path in MODELS:
        return None
    if colon and prefix in MODEL_PATH_LOADERS:
        return expand_user(path, f"--model {prefix}:") if path else None
    file = expand_user(name_or_path, "--model")
    return file if file.is_file() else None


def load_model(name_or_path: str, device: torch.device | str = "cpu") -> ScoreModel:
    """A registered model by name, or a checkpoint file by path, on `device` in eval mode."""
    device = torch.device(device)
    prefix, colon, path = name_or_path.partition(":")
    if name_or_path in MODELS:
        model = MODELS.get(name_or_path)(device)
    elif colon and prefix in MODEL_PATH_LOADERS:
        model = MODEL_PATH_LOADERS.get(prefix)(expand_user(path, f"--model {prefix}:"), device)
    elif expand_user(name_or_path, "--model").is_file():
        path = expand_user(name_or_path, "--model")
        model = load_checkpoint(path)
        if not isinstance(model, ScoreModel):
            from ipbench.models.latent import Autoencoder

            hint = (f"; train a latent prior on it with bench train --latent-of {path}"
                    if isinstance(model, Autoencoder) else "")
            raise UsageError(f"model file {path}: holds a {type(model).arch_name} ({type(model).__name__}), not a "
                             f"prior (a score model){hint}")
    else:
        forms = ", ".join(f"{p}:PATH" for p in MODEL_PATH_LOADERS.names())
        raise UsageError(f"unknown model {name_or_path!r}: not a registered name ({', '.join(MODELS.names())}), "
                         f"nor PREFIX:PATH ({forms}), nor a file")
    return model.to(device).eval().requires_grad_(False)  # solvers differentiate w.r.t. x_t only
