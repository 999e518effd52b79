"""ffhq256 / imagenet256 (deepinv DiffUNet), diffusers:DIR and the ffhq-1k image set, offline.

Ground truth used here, never the package's own output:
- deepinv's own loading path, `DiffUNet(pretrained=PATH)` with `forward(x, t, type_t="timestep")`, for eps;
- guided-diffusion's linear schedule written out with numpy (float64 linspace, as its
  `get_named_beta_schedule("linear", 1000)` does), and diffusers' own schedulers, for alpha_bar;
- diffusers' own `UNet2DModel` forward, for the diffusers wrapper;
- the published file sizes of the checkpoints (ffhq_10m.pt 357 MiB, 256x256_diffusion_uncond.pt 2.1 GB
  of float32), for the two architectures' parameter counts.

Weights are random and small on disk: every tensor of a full-architecture state dict is a float16
view into one shared random storage (a few MB), which the loader casts to independent float32 tensors.
Forwards run at 32x32 (the UNet downsamples 5 times; any multiple of 32 works). No test touches the
network: sockets and torch's downloader fail the test if called.
"""
from __future__ import annotations

import json
import math
import pickle
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipbench.data import load_images
from ipbench.data.ffhq import FFHQ_DIR_ENV
from ipbench.errors import UsageError
from ipbench.models import load_model, registry
from ipbench.models import adm as P, diffusers_unet as D
from ipbench.weights import read_state_dict
from tests.conftest import ShellPayload

needs_prefix_paths = pytest.mark.skipif(not hasattr(registry, "MODEL_PATH_LOADERS"),
                                        reason="load_model does not understand PREFIX:PATH yet (registry.py change pending)")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any network access fails the test; so does any download not explicitly faked by the test."""
    def no_network(*args, **kwargs):
        pytest.fail("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(P, "_download", lambda url, dest: pytest.fail(f"download of {url} attempted"))
    monkeypatch.delenv(P.DOWNLOAD_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def compact_random_state(shapes: dict[str, torch.Size], dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """Random weights of the given shapes, all views into one storage (small on disk)."""
    n = max(math.prod(s) for s in shapes.values())
    base = (0.05 * torch.randn(n + 1009, generator=torch.Generator().manual_seed(0))).to(dtype)
    return {k: base[(31 * i) % 1009:][: math.prod(s)].view(s) for i, (k, s) in enumerate(shapes.items())}


@pytest.fixture(scope="module")
def ffhq_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "ffhq_10m.pt"
    torch.save(compact_random_state(P.diffunet_shapes(False)), path)
    return path


@pytest.fixture(scope="module")
def ffhq_model(ffhq_file: Path) -> P.DiffUNetScoreModel:
    return P.load_pretrained("ffhq256", ffhq_file)


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the ADM checkpoints --------------------------------------------------------------------------------


def test_architectures_have_the_published_sizes() -> None:
    """ffhq_10m.pt is 357 MiB and 256x256_diffusion_uncond.pt 2.1 GB of float32 (4 bytes a parameter)."""
    ffhq, imagenet = P.diffunet_shapes(False), P.diffunet_shapes(True)
    ffhq_params, imagenet_params = (sum(math.prod(s) for s in d.values()) for d in (ffhq, imagenet))
    assert round(4 * ffhq_params / 2**20) == 357
    assert round(4 * imagenet_params / 1e9, 1) == 2.2  # guided-diffusion lists it as 2.1 GiB
    for shapes, width in ((ffhq, 128), (imagenet, 256)):  # 3 -> width stem; width -> 6 = eps + variance head
        assert shapes["input_blocks.0.0.weight"] == (width, 3, 3, 3)
        assert shapes["out.2.weight"] == (6, width, 3, 3)
        assert not any(k in shapes for k in P.SCHEDULE_BUFFERS)


def test_ffhq256_eps_is_deepinvs_timestep_forward_first_half(ffhq_model: P.DiffUNetScoreModel, ffhq_file: Path) -> None:
    from deepinv.models import DiffUNet

    reference = DiffUNet(pretrained=str(ffhq_file)).eval()  # deepinv's own loader, strict=True
    x_t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 999])
    with torch.no_grad():
        expected = reference(x_t, t, type_t="timestep")
        eps = ffhq_model.eps(x_t, t)
    assert expected.shape == (2, 6, 32, 32) and eps.shape == (2, 3, 32, 32)
    torch.testing.assert_close(eps, expected[:, :3], rtol=1e-5, atol=1e-6)
    assert eps.abs().mean() > 1e-3  # random weights, not a zero head
    assert not torch.allclose(eps[0], eps[1])  # t is used


def test_ffhq256_is_a_linear_ddpm_model_in_eval_mode(ffhq_model: P.DiffUNetScoreModel) -> None:
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)  # guided-diffusion, noise_schedule "linear"
    np.testing.assert_allclose(ffhq_model.alphas_cumprod.numpy(), np.cumprod(1.0 - betas), rtol=1e-12)
    assert ffhq_model.image_shape == (3, 256, 256) and ffhq_model.num_timesteps == 1000
    assert ffhq_model.default_image_set == "ffhq-1k"
    assert not ffhq_model.training and not any(p.requires_grad for p in ffhq_model.parameters())
    assert all(p.dtype == torch.float32 for p in ffhq_model.parameters())


def test_garbage_variance_half_does_not_change_eps(ffhq_file: Path) -> None:
    model = P.load_pretrained("ffhq256", ffhq_file)
    x_t, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor([400])
    before = model.eps(x_t, t)
    head = model.net.out[2]
    head.weight[3:] = float("nan")  # the variance half of the last conv
    head.bias[3:] = float("inf")
    full = model.net.forward_diffusion(x_t, t)
    assert not torch.isfinite(full[:, 3:]).any()  # the corruption is real ...
    assert torch.equal(model.eps(x_t, t), before)  # ... and eps does not see it


def test_imagenet256_loads_its_configuration(tmp_path: Path) -> None:
    """The 552M-parameter configuration, from a float32 file whose tensors share one storage (75 MB, no
    cast, so they stay aliased: fine for a forward, which is all this test does)."""
    path = tmp_path / "256x256_diffusion_uncond.pt"
    torch.save(compact_random_state(P.diffunet_shapes(True), torch.float32), path)
    model = P.load_pretrained("imagenet256", path)
    assert model.image_shape == (3, 256, 256) and model.default_image_set == "photos"
    assert model.net.model_channels == 256 and model.net.num_res_blocks == 2
    x_t, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)), torch.tensor([250])
    with torch.no_grad():
        full = model.net.forward_diffusion(x_t, t)
    assert full.shape == (1, 6, 32, 32) and torch.equal(model.eps(x_t, t), full[:, :3])
    assert torch.isfinite(full).all() and full[:, :3].abs().mean() > 1e-3


def test_imagenet256_cond_is_guided_diffusions_class_conditional_adm(tmp_path: Path) -> None:
    """The class-conditional configuration (its label embedding of 1000 rows added to the time embedding) from a
    random file: eps depends on the class, is the network's output with that label, and what the model cannot do
    (no class, classifier-free guidance: it has no null label) is refused in one line, before a run."""
    from ipbench.benchmark.condition import conditional_model
    from ipbench.models.conditional import conditioned

    path = tmp_path / "256x256_diffusion.pt"
    torch.save(compact_random_state(P.diffunet_shapes(True, 1000), torch.float32), path)
    model = P.load_pretrained("imagenet256-cond", path)
    assert isinstance(model, P.ConditionalDiffUNetScoreModel) and len(model.class_names) == 1000
    x_t, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)), torch.tensor([250, 250])
    labels = torch.tensor([1, 207])
    with torch.no_grad(), conditioned(model, labels, 1.0):
        eps = model.eps(x_t, t)
        angles = t[:, None].float() * model.freqs[None]  # guided-diffusion's forward, written out
        emb = model.net.time_embed(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)) + model.net.label_emb(labels)
        h, skips = x_t, []
        for block in model.net.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = model.net.middle_block(h, emb)
        for block in model.net.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        torch.testing.assert_close(eps, model.net.out(h)[:, :3])
    with torch.no_grad(), conditioned(model, labels.flip(0), 1.0):
        assert not torch.allclose(model.eps(x_t, t), eps)  # the class matters
    with pytest.raises(UsageError, match="no unconditional half"):
        conditional_model(model, "imagenet256-cond", "none")
    with pytest.raises(UsageError, match="classifier-free guidance needs an unconditional half"):
        conditional_model(model, "imagenet256-cond", "true", 3.0)
    assert conditional_model(model, "imagenet256-cond", "wrong", 1.0) is model


@needs_prefix_paths
def test_load_model_understands_name_colon_path(ffhq_file: Path) -> None:
    model = load_model(f"ffhq256:{ffhq_file}")
    assert isinstance(model, P.DiffUNetScoreModel) and not model.training
    with pytest.raises(UsageError) as info:
        load_model(f"imagenet256:{ffhq_file}")
    assert f"ffhq256:{ffhq_file}" in one_line(info)


def test_the_other_architecture_is_refused_with_a_hint(ffhq_file: Path) -> None:
    with pytest.raises(UsageError) as info:
        P.load_pretrained("imagenet256", ffhq_file)
    message = one_line(info)
    assert str(ffhq_file) in message and "imagenet256" in message and "missing key" in message
    assert f"use --model ffhq256:{ffhq_file}" in message


def _edit(state: dict, kind: str) -> dict:
    state = dict(state)
    if kind == "missing":
        del state["middle_block.1.qkv.weight"]
    elif kind == "unexpected":
        state["module.extra.weight"] = torch.zeros(3)
    elif kind == "shape":  # an eps-only (3-channel) head, as a learn_sigma=False model would have
        state["out.2.weight"], state["out.2.bias"] = state["out.2.weight"][:3], state["out.2.bias"][:3]
    elif kind == "dtype":
        state["out.2.bias"] = torch.zeros(6, dtype=torch.long)
    return state


@pytest.mark.parametrize("kind, expected", [("missing", "1 missing key(s) (e.g. 'middle_block.1.qkv.weight')"),
                                            ("unexpected", "1 unexpected key(s) (e.g. 'module.extra.weight')"),
                                            ("shape", "2 shape mismatch(es) (e.g. 'out.2.weight': file (3, 128, 3, 3), "
                                                      "expected (6, 128, 3, 3))"),
                                            ("dtype", "1 non-float tensor(s) (e.g. 'out.2.bias': torch.int64)")])
def test_a_wrong_state_dict_is_refused_in_one_line(ffhq_file: Path, kind: str, expected: str) -> None:
    state = _edit(read_state_dict(ffhq_file), kind)
    with pytest.raises(UsageError) as info:
        P.diffunet_from_state_dict(state, P.PRETRAINED["ffhq256"], "broken.pt")
    message = one_line(info)
    assert message.startswith("model file broken.pt: not a state dict of ffhq256's architecture") and expected in message


def test_a_saved_deepinv_state_dict_with_schedule_buffers_loads(ffhq_file: Path) -> None:
    state = read_state_dict(ffhq_file)
    state["sqrt_alphas_cumprod"] = torch.full((1000,), float("nan"))  # deepinv's buffer, recomputed
    net = P.diffunet_from_state_dict(state, P.PRETRAINED["ffhq256"], "x.pt")
    assert torch.isfinite(net.sqrt_alphas_cumprod).all() and net.sqrt_alphas_cumprod.device.type == "cpu"


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip"])
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path: Path, kind: str) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    if kind == "raw-pickle":
        path.write_bytes(pickle.dumps(ShellPayload(marker), protocol=2))  # torch.load's own protocol
    else:
        torch.save({"out.2.weight": torch.zeros(1), "payload": ShellPayload(marker)}, path)
    with pytest.raises(UsageError) as info:
        P.load_pretrained("ffhq256", path)
    message = one_line(info)
    assert "evil.pt" in message and "refused, not a plain file of tensors" in message
    assert "unsupported GLOBAL" in message and "system" in message  # refused for the right reason: the call
    assert "weights_only=False" not in message  # torch's advice to run the pickle is not passed on
    assert not marker.exists()
    if kind == "raw-pickle":
        pickle.loads(path.read_bytes())  # noqa: S301  (deliberate: the payload is real, it creates the marker)
        assert marker.exists()


def test_files_that_are_not_state_dicts_are_refused(tmp_path: Path, small_model_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    for path, says in ((junk, "refused, not a plain file of tensors"), (listed, "got list"),
                       (small_model_path, "it is an ipbench checkpoint, pass its path alone")):
        with pytest.raises(UsageError) as info:
            P.load_pretrained("ffhq256", path)
        assert str(path) in one_line(info) and says in str(info.value)
    with pytest.raises(UsageError, match="no-such.pt"):
        P.load_pretrained("ffhq256", tmp_path / "no-such.pt")


# --- where the weights come from ------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache: TORCH_HOME=tmp, so torch.hub.get_dir() is tmp/hub."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert checkpoints == tmp_path / "torch" / "hub" / "checkpoints"
    return checkpoints


@pytest.mark.parametrize("name, file", [("ffhq256", "ffhq_10m.pt"), ("imagenet256", "256x256_diffusion_uncond.pt")])
@pytest.mark.parametrize("opt_out", [None, "0", "no"])
def test_missing_weights_say_where_to_put_them_and_never_download(hub: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  name: str, file: str, opt_out: str | None) -> None:
    if opt_out is not None:
        monkeypatch.setenv(P.DOWNLOAD_ENV, opt_out)
    with pytest.raises(UsageError) as info:
        load_model(name)  # the autouse _offline fixture fails the test if a download is attempted
    message = one_line(info)
    assert f"weights file {hub / file} not found" in message
    assert f"--model {name}:/path/to/{file}" in message and "IPBENCH_DOWNLOAD=1" in message


def test_a_bare_name_reads_the_hub_cache(hub: Path, ffhq_file: Path) -> None:
    hub.mkdir(parents=True)
    (hub / "ffhq_10m.pt").symlink_to(ffhq_file)
    model = load_model("ffhq256")
    assert isinstance(model, P.DiffUNetScoreModel) and model.default_image_set == "ffhq-1k"


@pytest.mark.parametrize("how", ["env", "argument"])
def test_download_happens_only_on_opt_in_and_goes_to_the_hub_cache(hub: Path, ffhq_file: Path, how: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append((url, dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(ffhq_file)

    monkeypatch.setattr(P, "_download", fake_download)
    if how == "env":
        monkeypatch.setenv(P.DOWNLOAD_ENV, "1")
        load = lambda: load_model("ffhq256")  # noqa: E731
    else:
        load = lambda: P.load_pretrained("ffhq256", download=True)  # noqa: E731
    with pytest.raises(UsageError):
        P.load_pretrained("ffhq256", download=False)  # an explicit False wins over the environment
    assert calls == []
    assert isinstance(load(), P.DiffUNetScoreModel)
    assert calls == [(P.PRETRAINED["ffhq256"].url, hub / "ffhq_10m.pt")]
    load()  # present now: no second download
    assert len(calls) == 1


def test_a_failed_download_says_which_file_to_place_where(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(url: str, dest: Path) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(P, "_download", no_network)
    monkeypatch.setenv(P.DOWNLOAD_ENV, "yes")
    with pytest.raises(UsageError) as info:
        load_model("imagenet256")
    message = one_line(info)
    assert "name resolution" in message and f"place 256x256_diffusion_uncond.pt at {hub / '256x256_diffusion_uncond.pt'}" in message


def test_an_invalid_download_setting_is_refused(hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P.DOWNLOAD_ENV, "maybe")
    with pytest.raises(UsageError, match="IPBENCH_DOWNLOAD='maybe' is invalid"):
        load_model("ffhq256")


# --- diffusers UNet2DModel folders ----------------------------------------------------------------------


def _tiny_unet(out_channels: int = 3):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is an optional extra")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=(16, 32), in_channels=3, out_channels=out_channels,
                                 block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                                 attention_head_dim=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    with torch.no_grad():
        for p in unet.parameters():  # diffusers zero-initialises some layers; random everywhere instead
            p.normal_(0.0, 0.1)
    return unet.eval()


def _save_folder(root: Path, unet, scheduler: dict | None = None, layout: str = "flat", safe: bool = True) -> Path:
    DDPMScheduler = pytest.importorskip("diffusers", reason="diffusers is an optional extra").DDPMScheduler

    unet_dir, scheduler_dir = (root, root) if layout == "flat" else (root / "unet", root / "scheduler")
    unet.save_pretrained(unet_dir, safe_serialization=safe)
    DDPMScheduler(**(scheduler or {})).save_pretrained(scheduler_dir)
    return root


def _eps_check(model: D.DiffusersScoreModel, unet) -> None:
    x_t = torch.randn(2, 3, 16, 32, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([10, 900])
    with torch.no_grad():
        expected = unet(x_t, t).sample[:, :3]
    torch.testing.assert_close(model.eps(x_t, t), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout, safe", [("flat", True), ("pipeline", False)])
def test_a_diffusers_folder_is_an_eps_model_on_its_schedule(tmp_path: Path, layout: str, safe: bool) -> None:
    DDPMScheduler = pytest.importorskip("diffusers", reason="diffusers is an optional extra").DDPMScheduler

    unet = _tiny_unet()
    folder = _save_folder(tmp_path / "ddpm", unet, layout=layout, safe=safe)
    model = D.load_diffusers(folder)
    assert model.image_shape == (3, 16, 32) and not model.training
    torch.testing.assert_close(model.alphas_cumprod.float(), DDPMScheduler().alphas_cumprod, rtol=1e-6, atol=0)
    _eps_check(model, unet)
    if layout == "pipeline":  # the unet/ folder itself also finds ../scheduler
        assert D.load_diffusers(folder / "unet").num_timesteps == 1000


def test_scaled_linear_is_reproduced_as_diffusers_computes_it(tmp_path: Path) -> None:
    DDPMScheduler = pytest.importorskip("diffusers", reason="diffusers is an optional extra").DDPMScheduler

    config = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=500)
    model = D.load_diffusers(_save_folder(tmp_path / "m", _tiny_unet(), config))
    assert model.num_timesteps == 500
    torch.testing.assert_close(model.alphas_cumprod.float(), DDPMScheduler(**config).alphas_cumprod, rtol=1e-5, atol=0)


def test_a_learned_variance_unet_keeps_the_eps_half(tmp_path: Path) -> None:
    unet = _tiny_unet(out_channels=6)
    model = D.load_diffusers(_save_folder(tmp_path / "m", unet, {"variance_type": "learned_range"}))
    _eps_check(model, unet)
    x_t, t = torch.randn(1, 3, 16, 32), torch.tensor([5])
    before = model.eps(x_t, t)
    model.unet.conv_out.weight[3:] = float("nan")
    assert torch.equal(model.eps(x_t, t), before)


def test_pre_0_14_attention_key_names_are_converted(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch", reason="safetensors comes with the diffusers extra")
    load_file, save_file = st.load_file, st.save_file

    unet = _tiny_unet()
    folder = _save_folder(tmp_path / "old", unet)
    weights = folder / "diffusion_pytorch_model.safetensors"
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    state = load_file(str(weights))
    old = {}
    for key, value in state.items():
        for new_name, old_name in renames.items():
            key = key.replace(new_name, old_name)
        old[key] = value
    assert any(".query." in k for k in old)
    save_file(old, str(weights))
    _eps_check(D.load_diffusers(folder), unet)


@pytest.mark.parametrize("change, says", [
    ({"prediction_type": "v_prediction"}, "prediction_type 'v_prediction' is not supported"),
    ({"prediction_type": "sample"}, "prediction_type 'sample' is not supported"),
    ({"beta_schedule": "squaredcos_cap_v2"}, "beta_schedule 'squaredcos_cap_v2' is not supported"),
    ({"trained_betas": [0.1] * 1000}, "trained_betas"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
    ({"beta_start": 0.03}, "valid: 0 < beta_start < beta_end < 1"),
    ("no-scheduler", "no scheduler config"),
    ("no-weights", "has no diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin"),
    ("fourier", "time_embedding_type 'fourier'"),
    ("class-conditional", "class-conditional"),
    ("other-arch", "do not fit config.json"),
])
def test_a_diffusers_folder_ipbench_cannot_reproduce_is_refused(tmp_path: Path, change, says: str) -> None:
    folder = _save_folder(tmp_path / "m", _tiny_unet(), change if isinstance(change, dict) else None)
    if change == "no-scheduler":
        (folder / "scheduler_config.json").unlink()
    elif change == "no-weights":
        (folder / "diffusion_pytorch_model.safetensors").unlink()
    elif change in ("fourier", "class-conditional", "other-arch"):
        config = json.loads((folder / "config.json").read_text())
        edit = {"fourier": {"time_embedding_type": "fourier"}, "class-conditional": {"num_class_embeds": 10},
                "other-arch": {"layers_per_block": 2}}[change]
        (folder / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(UsageError) as info:
        D.load_diffusers(folder)
    message = one_line(info)
    assert says in message and f"diffusers:{folder}" in message


def test_a_malicious_diffusers_bin_is_refused_without_running_it(tmp_path: Path) -> None:
    folder = _save_folder(tmp_path / "m", _tiny_unet(), safe=False)
    marker = tmp_path / "pwned"
    (folder / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(ShellPayload(marker), protocol=2))
    with pytest.raises(UsageError, match="refused"):
        D.load_diffusers(folder)
    assert not marker.exists()


def test_without_diffusers_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "m"  # written by hand: this test runs whether or not diffusers is installed
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 32}))
    (folder / "scheduler_config.json").write_text(json.dumps(
        {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}))
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    with pytest.raises(UsageError) as info:
        D.load_diffusers(folder)
    assert "pip install diffusers" in one_line(info)


@needs_prefix_paths
def test_load_model_understands_diffusers_colon_dir(tmp_path: Path) -> None:
    unet = _tiny_unet()
    model = load_model(f"diffusers:{_save_folder(tmp_path / 'm', unet)}")
    _eps_check(model, unet)


# --- ffhq-1k --------------------------------------------------------------------------------------------


def _pngs(folder: Path, ids, size: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        Image.fromarray(np.full((size, size, 3), int(i) % 256, dtype=np.uint8)).save(folder / f"{int(i):05d}.png")


def test_ffhq_1k_is_files_00000_to_00999_in_id_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "images1024x1024"
    _pngs(root / "00000", range(1000))
    _pngs(root / "00000", [1000])  # not part of the set
    (root / "00000" / "LICENSE.txt").write_text("CC BY-NC-SA 4.0")
    for folder in (root / "00000", root):  # the folder itself, or the release root holding 00000/
        monkeypatch.setenv(FFHQ_DIR_ENV, str(folder))
        images = load_images("ffhq-1k", (3, 4, 4))
        assert images.ids == [f"{i:05d}" for i in range(1000)] and images.source == "ffhq-1k"
        first = load_images("ffhq-1k", (3, 4, 4), num_images=3)
        assert first.ids == ["00000", "00001", "00002"]
        assert torch.allclose(first.images[:, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0]) / 255)


def test_ffhq_1k_accepts_a_prefix_and_refuses_a_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pngs(tmp_path / "ffhq", range(5))
    monkeypatch.setenv(FFHQ_DIR_ENV, str(tmp_path / "ffhq"))
    assert load_images("ffhq-1k", (3, 4, 4)).ids == ["00000", "00001", "00002", "00003", "00004"]
    with pytest.raises(UsageError, match="only 5"):
        load_images("ffhq-1k", (3, 4, 4), num_images=10)
    (tmp_path / "ffhq" / "00002.png").unlink()
    with pytest.raises(UsageError) as info:
        load_images("ffhq-1k", (3, 4, 4))
    assert "lacks 00002.png but has later images" in one_line(info)


def test_ffhq_1k_without_a_folder_says_how_to_point_at_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FFHQ_DIR_ENV, raising=False)
    with pytest.raises(UsageError) as info:
        load_images("ffhq-1k", (3, 4, 4))
    assert "set IPBENCH_FFHQ_DIR to the folder holding FFHQ's 00000.png ... 00999.png" in one_line(info)
    for bad, says in ((tmp_path / "nowhere", "is not a folder"), (tmp_path, "has no 00000.png")):
        monkeypatch.setenv(FFHQ_DIR_ENV, str(bad))
        with pytest.raises(UsageError, match=says):
            load_images("ffhq-1k", (3, 4, 4))
