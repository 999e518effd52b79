"""ipbench's LPIPS networks against the `lpips` package's own LPIPS module on the same weights, and that
they are built without torchvision's full AlexNet / VGG16."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import lpips as lpips_pkg
import pytest
import torch
import torch.nn.functional as F

from ipbench.results import lpips_networks
from ipbench.results.metrics import lpips
from tests.test_metrics import load_example, needs_examples, rand, write_random_vgg16

TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def package_lpips(net: str, trunk: dict[str, torch.Tensor] | None = None) -> lpips_pkg.LPIPS:
    """lpips.LPIPS(net, v0.1) as its authors build it; with `trunk`, its torchvision network built randomly
    (pnet_rand, no download) and then given `trunk`, i.e. lpips.LPIPS on those ImageNet weights."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation
        model = lpips_pkg.LPIPS(net=net, version="0.1", pnet_rand=trunk is not None, verbose=False)
    if trunk is not None:
        model.net.load_state_dict({k: v.float() for k, v in trunk.items()}, strict=True)
    return model.eval()


def package_distance(model: lpips_pkg.LPIPS, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """metrics.lpips's input convention recomputed: grayscale repeated, smaller side upsampled to 64, [-1, 1]."""
    x, ref = (t.expand(-1, 3, -1, -1) for t in (x, ref))
    if x.shape[-1] < 64:
        x, ref = (F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False) for t in (x, ref))
    with torch.no_grad():
        return model(2 * x - 1, 2 * ref - 1).reshape(-1).double()


def sample_images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random and structured grayscale images (checkerboard, ramp, disc, stripes) and their
    perturbed copies, (8, 1, size, size) each, in [0, 1]."""
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    structured = torch.stack([((i // 4 + j // 4) % 2).float(), (i + j).float() / (2 * size - 2),
                              (((i - c) ** 2 + (j - c) ** 2) < (size / 3) ** 2).float(),
                              0.5 + 0.5 * torch.sin(2 * math.pi * j / 8.0)])[:, None]
    x = torch.cat([rand(4, 1, size, size, seed=size), structured])
    ref = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(size + 1))).clamp(0, 1)
    return x, ref


@pytest.mark.parametrize("size", [32, 64])
def test_alex_equals_the_package_on_seeded_images(size: int) -> None:
    model = package_lpips("alex", lpips_networks._load_backbone("alex"))
    x, ref = sample_images(size)
    d = lpips(x, ref)
    assert (d > 0.005).all()  # no pair is identical: the comparison is not vacuous
    torch.testing.assert_close(d, package_distance(model, x, ref), rtol=0, atol=1e-6)


@needs_examples
def test_alex_equals_the_package_on_the_authors_examples() -> None:
    model = package_lpips("alex", lpips_networks._load_backbone("alex"))
    ref, p0, p1 = load_example("ex_ref"), load_example("ex_p0"), load_example("ex_p1")
    x, ref = torch.cat([p0, p1]), ref.expand(2, -1, -1, -1)
    torch.testing.assert_close(lpips(x, ref), package_distance(model, x, ref), rtol=0, atol=1e-6)


@pytest.mark.slow  # the package's VGG16 build alone takes seconds
def test_vgg_equals_the_package_on_the_same_trunk(hub_cache: Path) -> None:
    state = write_random_vgg16(hub_cache)
    trunk = {f"slice{lpips_networks.VGG_CONV_SLICES[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
             for k, v in state.items()}
    model = package_lpips("vgg", trunk)
    x, ref = sample_images(32)
    torch.testing.assert_close(lpips(x, ref, net="vgg"), package_distance(model, x, ref), rtol=0, atol=1e-6)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_equals_the_package_with_torchvision_weights(net: str) -> None:
    """Where torchvision's ImageNet file is in torch's hub cache, lpips.LPIPS(net) itself loads it."""
    if not (Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]).is_file():
        pytest.skip(f"{TORCHVISION_FILES[net]} not in torch's hub cache (see ipbench/assets/lpips/NOTICE.md)")
    lpips_networks.lpips_network.cache_clear()
    model = package_lpips(net)
    x, ref = sample_images(64)
    torch.testing.assert_close(lpips(x, ref, net=net), package_distance(model, x, ref), rtol=0, atol=1e-6)


def test_only_the_used_layers_are_built(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a torchvision network was built")

    write_random_vgg16(hub_cache)
    lpips_networks.lpips_network.cache_clear()  # a network cached by an earlier test would be built already
    for name in ("alexnet", "vgg16"):  # lpips's `tv` is torchvision.models
        monkeypatch.setattr(lpips_pkg.pretrained_networks.tv, name, refuse)
    linear = [f"lin{k}.model.1.weight" for k in range(5)]
    for net, trunk_keys in (("alex", lpips_networks._load_backbone("alex")),
                            ("vgg", lpips_networks._vgg_backbone())):
        model = lpips_networks.lpips_network(net, torch.device("cpu"))
        names = {name for name, _ in model.named_parameters()}  # lins.k is lin{k}, listed once
        assert names == {f"net.{k}" for k in trunk_keys} | set(linear)
        assert not any(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in lpips_networks.lpips_network("alex", torch.device("cpu")).parameters()) == 2_470_848
