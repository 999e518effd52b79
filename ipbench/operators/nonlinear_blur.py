"""Nonlinear deblurring: the learned blur of bkse's GOPRO kernel network, as DPS and DAPS measure with it.

    y = clamp(G(x, k), 0, 1) + sigma_y n,    k ~ N(0, 1.2^2 I) of shape (512, H / 128, W / 128), one per image,

G being the `adaptKernel` map of bkse's KernelWizard (Tran et al. 2021, "Explore Image Deblurring via Encoded
Blur Kernel Space"; VinAIResearch/blur-kernel-space-exploring at f2fe73e, models/kernel_encoding/kernel_wizard.py:
151-161): it blurs the sharp image x with the blur that the kernel latent k encodes, and adds x back (:159).

Sources. DPS (DPS2022/diffusion-posterior-sampling at effbde7, guided_diffusion/measurements.py:175-200,
`NonlinearBlurOperator`) loads KernelWizard with bkse's options/generate_blur/default.yml (configs/
nonlinear_deblur_config.yaml:13; the checkpoint `experiments/pretrained/GOPRO_wVAE.pth`, nf 64, front_RBs 10,
back_RBs 20, kernel_dim 512, use_vae, norms none) and, on its [-1, 1] data x_m, computes (:196-199)
k = torch.randn(1, 512, 2, 2) * 1.2, x = (x_m + 1) / 2, y_m = clamp(2 G(x, k) - 1, -1, 1), with noise sigma 0.05
on y_m (nonlinear_deblur_config.yaml:17). DAPS (zhangbingliang2019/DAPS at 098df6b, forward_operator/__init__.py:
317-359) does the same with bkse vendored (forward_operator/bkse/, its code unchanged but for the imports), its sigma
0.05 (configs/task/nonlinear_blur.yaml:14).
In image units x is ipbench's image itself and y = (y_m + 1) / 2 = clamp(G(x, k), 0, 1), with
sigma_y = sigma / 2 = 0.025, the default.

The network. Only what `adaptKernel` runs is built and loaded: the feature extractor (a 3 x 3 convolution, two
stride-2 ones, 10 residual blocks; kernel_wizard.py:112-125), the kernel adapter (a 5-level pix2pix U-Net into whose
innermost level k is concatenated; :73-99, models/backbones/unet_parts.py:27-109) and the reconstruction trunk
(20 residual blocks, two pixel-shuffle upsamplings; :134-149). The kernel extractor (the paper's F, :11-69, which
encodes a sharp/blurred pair into a latent) is not part of the forward map: its tensors, present in the published
file, are checked for their shapes and not loaded. Facts of the published architecture kept here: the convolutions
of the adapter have no bias except its outermost transposed one (norm "none" makes bkse's `use_bias` False,
unet_parts.py:58-61), and its LeakyReLU(0.2) acts in place on a level's input before the concatenation that skips
it (:65, :107, :109), so the skip carries LeakyReLU(x), not x (kept, though the ReLU that the enclosing level applies
first makes the two equal). On random weights this network gives bkse's `adaptKernel` bit for bit (checked once
against its code at 128 and 256 px; the tests recompute the formula around it).

Sizes. The feature extractor halves twice and the adapter five times, so one latent cell covers 128 x 128 pixels:
height and width must be multiples of 128 (bkse's README says as much), and k is (512, H / 128, W / 128), DPS's
2 x 2 at 256 px. Larger images get more latent cells (a blur that varies over the image), each drawn as DPS draws.
Channels: the network is RGB; a greyscale image enters it as R = G = B and its clamped output leaves as the mean of
the three channels (the grey image seen as RGB, measured by DPS's operator, converted back to grey).

Deviations. DPS draws a new k at every call of its forward map (measurements.py:196), so each guidance step
(guided_diffusion/condition_methods.py:30) fits y with a blur other than the one that made it; here, as in DAPS,
the blur is fixed: one k per image, drawn from the image's measurement generator when the operator is built, used
by every call of A. DAPS draws one k for all images, numpy's seed 0 (forward_operator/__init__.py:325-328), not
reproduced here. A has no adjoint: solvers that need a linear A decline it (operators/base.py, `linear_problem`).
`A_dagger` is RED-diff's start for this task (NVlabs/RED-diff at 66482f2, utils/degredations.py:875-876: H_pinv(y) =
H(y), the blur applied once more), here with the image's own latent where RED-diff's H draws a new one (:866);
no inverse, only where RED-diff starts. (That code also loads no weights: it wraps the file's dict as
{'state_dict': ...} and loads with strict=False, :857-860, so its network keeps bkse's random initialisation.)

Weights. `weights` names the checkpoint file; by default GOPRO_wVAE.pth in torch's hub cache
(`torch.hub.get_dir()/checkpoints`). Nothing is downloaded: a missing file is a one-line error saying where the
file comes from (bkse's README, Model Zoo, "GOPRO wVAE"; the DAPS README, 2.4, links the same file).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from deepinv.physics import Physics
from torch import Tensor, nn

from ipbench.errors import UsageError
from ipbench.operators.base import Shape, register_operator
from ipbench.paths import expand_user
from ipbench.weights import hub_checkpoints, read_state_dict, state_dict_mismatch

NAME = "deblur-nonlinear"
WEIGHTS_FILE = "GOPRO_wVAE.pth"
WEIGHTS_ORIGIN = ("bkse's 'GOPRO wVAE' checkpoint, https://drive.google.com/file/d/1vRoDpIsrTRYZKsOMPNbPcMtFDpCT6Foy "
                  "(github.com/VinAIResearch/blur-kernel-space-exploring, README, Model Zoo)")
NF = 64  # feature channels (default.yml nf)
FRONT_BLOCKS, BACK_BLOCKS = 10, 20  # residual blocks before and after the adapter (front_RBs, back_RBs)
KERNEL_DIM = 512  # channels of the kernel latent (kernel_dim)
LATENT_STD = 1.2  # DPS: torch.randn(1, 512, 2, 2) * 1.2 (measurements.py:196); DAPS the same (:326)
CELL = 128  # pixels a side per latent cell: 2^2 (feature extractor) x 2^5 (adapter)
EXTRACTOR_PREFIX = "kernel_extractor."  # the paper's F: in the file, not in the forward map
EXTRACTOR_BLOCKS = 4  # its resnet blocks (KernelExtractor n_blocks)


class ResidualBlock(nn.Module):
    """bkse's ResidualBlock_noBN (models/backbones/resnet.py:71-89): x + conv2(relu(conv1(x))), 3 x 3, with bias."""

    def __init__(self, nf: int = NF) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class AdapterLevel(nn.Module):
    """One level of the kernel adapter's U-Net (bkse's UnetSkipConnectionBlock with norm "none").

    Its state-dict names are bkse's: `down.0` (outermost) or `down.1` the stride-2 4 x 4 convolution, `up.1` the
    transposed one, `submodule` the next level. A level halves, runs the inner levels (the innermost concatenates
    the kernel latent instead), doubles back and concatenates its activated input; the outermost adds no skip
    and ends in tanh."""

    def __init__(self, outer: int, inner: int, submodule: "AdapterLevel | None" = None, *,
                 outermost: bool = False, latent_channels: int = 0) -> None:
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(outer, inner, 4, 2, 1, bias=False)
        into_up = latent_channels + inner if submodule is None else 2 * inner  # the latent, or the inner skip
        self.down = nn.Sequential(down) if outermost else nn.Sequential(nn.LeakyReLU(0.2), down)
        up = nn.ConvTranspose2d(into_up, outer, 4, 2, 1, bias=outermost)  # bias only where bkse's default applies
        self.up = nn.Sequential(nn.ReLU(), up, nn.Tanh()) if outermost else nn.Sequential(nn.ReLU(), up)
        if submodule is not None:
            self.submodule = submodule

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        if self.outermost:
            return self.up(self.submodule(self.down(x), latent))
        activated = self.down[0](x)  # bkse's LeakyReLU is in place: its skip concatenates this, not x
        inner = self.down[1](activated)
        inner = self.submodule(inner, latent) if hasattr(self, "submodule") else torch.cat([inner, latent], dim=1)
        return torch.cat([self.up(inner), activated], dim=1)


class KernelAdapter(nn.Module):
    """bkse's KernelAdapter (the paper's G; kernel_wizard.py:73-99): levels nf -> nf -> 2 nf -> 4 nf -> 8 nf -> 8 nf."""

    def __init__(self, nf: int = NF, latent_channels: int = KERNEL_DIM) -> None:
        super().__init__()
        level = AdapterLevel(8 * nf, 8 * nf, latent_channels=latent_channels)
        for outer, inner in ((4 * nf, 8 * nf), (2 * nf, 4 * nf), (nf, 2 * nf)):
            level = AdapterLevel(outer, inner, level)
        self.model = AdapterLevel(nf, nf, level, outermost=True)

    def forward(self, features: Tensor, latent: Tensor) -> Tensor:
        return self.model(features, latent)


class BlurNetwork(nn.Module):
    """The part of bkse's KernelWizard (kernel_wizard.py:102-161) that `adaptKernel(x, k)` runs:
    x + reconstruction(adapter(features(x), k)), for RGB x in [0, 1] and a (N, 512, H / 128, W / 128) latent k."""

    def __init__(self, channels: int = 3, nf: int = NF) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.1)
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(channels, nf, 3, 1, 1), act, nn.Conv2d(nf, nf, 3, 2, 1), act, nn.Conv2d(nf, nf, 3, 2, 1), act,
            *[ResidualBlock(nf) for _ in range(FRONT_BLOCKS)])
        self.adapter = KernelAdapter(nf)
        self.recon_trunk = nn.Sequential(
            *[ResidualBlock(nf) for _ in range(BACK_BLOCKS)],
            nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2), act,
            nn.Conv2d(nf, 4 * 64, 3, 1, 1), nn.PixelShuffle(2), act,
            nn.Conv2d(64, 64, 3, 1, 1), act, nn.Conv2d(64, channels, 3, 1, 1))

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        return x + self.recon_trunk(self.adapter(self.feature_extractor(x), latent))


class LearnedBlur(Physics):
    """A(x) = clamp(G(x, k), 0, 1) per image with its own latent k (module docstring): a nonlinear deepinv
    Physics, A and RED-diff's start, no adjoint. A greyscale x enters G as R = G = B and leaves as the channel mean."""

    def __init__(self, network: BlurNetwork, latents: Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.register_buffer("latents", latents)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        if x.shape[0] != self.latents.shape[0]:
            raise ValueError(f"{NAME}: built for {self.latents.shape[0]} images (one blur each), got a batch of "
                             f"{x.shape[0]}")
        grey = x.shape[1] == 1
        blurred = self.network(x.expand(-1, 3, -1, -1) if grey else x, self.latents).clamp(0.0, 1.0)
        return blurred.mean(dim=1, keepdim=True) if grey else blurred

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        """RED-diff's H_pinv for nonlinear deblurring (degredations.py:875-876): A applied to y."""
        return self.A(y)


# ---------------------------------------------------------------------------------------------- the weights


@lru_cache(maxsize=1)
def forward_shapes() -> dict[str, torch.Size]:
    """Every tensor of the forward map by its name in the published state dict (built on the meta device)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in BlurNetwork().state_dict().items()}


def extractor_shapes(nf: int = NF, kernel_dim: int = KERNEL_DIM) -> dict[str, tuple[int, ...]]:
    """The kernel extractor's tensors in the published file (kernel_wizard.py:11-69 with default.yml: use_sharp,
    use_vae, norm none, so no biases): a 7 x 7 convolution of the sharp and blurred features (layer 1), five
    stride-2 3 x 3 ones (layers 4, 7, ..., 16) up to 2 x kernel_dim channels (a mean and a log-variance), and
    4 resnet blocks (layers 19..22, convolutions 1 and 5 of each)."""
    out = 2 * kernel_dim
    shapes = {f"{EXTRACTOR_PREFIX}model.1.weight": (nf, 2 * nf, 7, 7)}
    for i in range(5):
        into, out_of = min(nf * 2 ** i, out), min(nf * 2 ** (i + 1), out)
        shapes[f"{EXTRACTOR_PREFIX}model.{4 + 3 * i}.weight"] = (out_of, into, 3, 3)
    for b in range(EXTRACTOR_BLOCKS):
        for j in (1, 5):
            shapes[f"{EXTRACTOR_PREFIX}model.{19 + b}.conv_block.{j}.weight"] = (out, out, 3, 3)
    return shapes


def weights_file(weights: str) -> Path:
    """The checkpoint `weights` names, or GOPRO_wVAE.pth in torch's hub cache when it is empty; a one-line
    UsageError naming the path and where the file comes from when there is none."""
    if not weights:
        path = hub_checkpoints() / WEIGHTS_FILE
        if not path.is_file():
            raise UsageError(f"operator {NAME}: weights file {path} not found; place {WEIGHTS_FILE} there "
                             f"({WEIGHTS_ORIGIN}), or pass --param {NAME}.weights=/path/to/{WEIGHTS_FILE}")
        return path
    path = expand_user(weights, f"operator {NAME}.weights")
    if not path.is_file():
        raise UsageError(f"operator {NAME}.weights={weights}: file {path} not found (expected {WEIGHTS_FILE}, "
                         f"{WEIGHTS_ORIGIN})")
    return path


@lru_cache(maxsize=2)
def _forward_state(path: str, mtime_ns: int, size: int) -> dict[str, Tensor]:
    """The forward map's float32 tensors of the file, checked name by name and shape by shape (the file's stat is
    in the key: the file is read once per process, again if it changes)."""
    what = f"operator {NAME}: weights file"
    state = read_state_dict(Path(path), what)
    used = {k: v for k, v in state.items() if not k.startswith(EXTRACTOR_PREFIX)}
    extractor = {k: v for k, v in state.items() if k.startswith(EXTRACTOR_PREFIX)}
    problem = state_dict_mismatch(forward_shapes(), used)
    if problem is None and extractor:  # present in the published file: it must be that file's
        problem = state_dict_mismatch({k: torch.Size(v) for k, v in extractor_shapes().items()}, extractor)
    if problem is not None:
        raise UsageError(f"{what} {path}: not bkse's GOPRO wVAE KernelWizard ({problem})")
    return {k: v.float() for k, v in used.items()}


def load_network(path: Path, device: torch.device) -> BlurNetwork:
    """The forward map with the file's weights, frozen, on `device` (the cached tensors are assigned, not copied;
    nothing writes to them)."""
    stat = path.stat()
    state = _forward_state(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with torch.device("meta"):
        network = BlurNetwork()
    network.load_state_dict(state, strict=True, assign=True)
    return network.requires_grad_(False).eval().to(device)


def draw_latents(shape: Shape, generators: Sequence[torch.Generator]) -> Tensor:
    """One kernel latent per image, LATENT_STD times N(0, I) of shape (512, H / 128, W / 128), from its generator."""
    _, height, width = shape
    return torch.stack([LATENT_STD * torch.randn(KERNEL_DIM, height // CELL, width // CELL, generator=g,
                                                 device=g.device).cpu() for g in generators])


@register_operator(NAME, aliases=("nonlinear-blur",), files=("weights",))
def deblur_nonlinear(shape: Shape, generators: Sequence[torch.Generator], device: torch.device, *,
                     weights: str = "") -> LearnedBlur:
    """bkse's learned GOPRO blur, a random kernel latent per image (DPS, DAPS); needs GOPRO_wVAE.pth, sides of 128k."""
    channels, height, width = shape
    if channels not in (1, 3):
        raise UsageError(f"operator {NAME}: {channels}-channel images are not supported; the bkse blur network "
                         "takes RGB (3) or greyscale (1, as R = G = B)")
    if height % CELL or width % CELL:
        raise UsageError(f"operator {NAME}: image size {height} x {width} is not supported; the bkse blur network "
                         f"needs a height and width that are multiples of {CELL} (one kernel-latent cell per "
                         f"{CELL} x {CELL} pixels: 2 x 2 at DPS's 256 px)")
    network = load_network(weights_file(weights), device)
    return LearnedBlur(network, draw_latents(shape, generators).to(device))
