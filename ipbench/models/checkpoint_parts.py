"""Checkpoints of a model made of parts (a latent prior: its autoencoder and its latent model).

The whole model's config holds each part's architecture and config, {part: {"arch": NAME, "config": {...}}}, and its
state dict holds each part's weights under the part's name (`autoencoder.encoder...`, `latent.net...`), as
`nn.Module.state_dict` names a submodule's. Each part is rebuilt by its own registered architecture, whose checks run
before it is built; what does not fit is one line naming the part.
"""
from __future__ import annotations

from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.models.registry import ARCHITECTURES


def part_config(module: nn.Module) -> dict:
    """{"arch", "config"} of a part of a registered architecture; ValueError for one without (cannot be saved)."""
    arch = getattr(type(module), "arch_name", None)
    if arch is None:
        raise ValueError(f"{type(module).__name__} has no registered architecture")
    return {"arch": arch, "config": module.config()}  # type: ignore[operator]


def build_part(name: str, config: dict, state_dict: dict[str, Tensor], kind: type, refused: str | None = None) -> nn.Module:
    """Part `name` of a checkpoint: its architecture (not `refused`, e.g. the whole's own, which would nest) rebuilt
    from config[name] and the weights under `name.`, and an instance of `kind`; otherwise a one-line UsageError
    naming the part."""
    entry = config.get(name) if isinstance(config, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("arch"), str) or "config" not in entry:
        raise UsageError(f"its {name} part is missing or malformed (expected {{'arch': NAME, 'config': {{...}}}})")
    arch = entry["arch"]
    if arch not in ARCHITECTURES or arch == refused:
        valid = ", ".join(n for n in ARCHITECTURES.names() if n != refused)
        raise UsageError(f"its {name} part declares architecture {arch!r}; valid: {valid}")
    prefix = f"{name}."
    weights = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    try:
        part = ARCHITECTURES.get(arch).from_config(entry["config"], weights)
    except UsageError as exc:
        raise UsageError(f"its {name} ({arch}): {exc}") from None
    if not isinstance(part, kind):
        raise UsageError(f"its {name} part is a {arch} ({type(part).__name__}), not a {kind.__name__}")
    return part


def unexpected_weights(state_dict: dict[str, Tensor], parts: tuple[str, ...]) -> str | None:
    """A one-line note of weights that belong to none of `parts`, or None."""
    stray = [k for k in state_dict if not k.startswith(tuple(f"{p}." for p in parts))]
    if not stray:
        return None
    return f"{len(stray)} weight(s) of no part (e.g. {stray[0]!r}); the parts are {', '.join(parts)}"
