"""Reading weight files safely: flat state dicts through torch.load(weights_only=True), checked by name and shape.

Model loaders and the metrics' networks (LPIPS-VGG, FID's Inception) all read their files here, so a
malicious, truncated or foreign file is one one-line UsageError wherever it is met; no pickled code runs.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ipbench.errors import UsageError, first_line

CHECKPOINT_FORMAT = "ipbench.score-model/1"  # the tag of files written by models.registry.save_checkpoint


def hub_checkpoints() -> Path:
    """The folder where a published weights file is looked up by its bare name: torch's hub cache,
    torch.hub.get_dir()/checkpoints (TORCH_HOME moves it), where torch.hub itself stores downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _unpickling_detail(exc: BaseException) -> str:
    """The informative line of torch's weights_only refusal (e.g. 'Trying to load unsupported GLOBAL
    posix.system ...'), without its advice to retry with weights_only=False."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(boilerplate)), lines[0] if lines else type(exc).__name__)


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
        raise UsageError(f"{what} {path}: not a loadable state dict ({first_line(exc)})") from None
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


