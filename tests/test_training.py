"""bench train: a tiny run lowers the loss and resumes exactly; the shipped weights load; the model
card's reproduce command is one the CLI accepts."""
from __future__ import annotations

import re
import shlex
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_images, save_png
from ipbench.models import load_model
from ipbench.training.loop import TrainConfig, train
from ipbench.models.unet import UNetConfig

TINY = UNetConfig(image_shape=(1, 16, 16), channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(), dropout=0.0)
CARD = files("ipbench") / "models" / "weights" / "MODEL_CARD.md"


@pytest.fixture(scope="module")
def tiny_images() -> torch.Tensor:
    return load_images("fashion32-test", (1, 16, 16), num_images=8).images


@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_a_tiny_run_lowers_the_loss(tmp_path, tiny_images):
    cfg = TrainConfig(steps=150, batch_size=8, lr=2e-3, warmup=10, checkpoint_every=1000)
    _, losses = train(tiny_images, tmp_path, TINY, cfg, torch.device("cpu"), progress=False, log=lambda s: None)
    # at init the output layer is zero, so eps_hat = 0 and the first loss is the mean of 2,048 eps^2
    # (1 +- 0.03); learning must then cut it clearly
    assert abs(losses[0] - 1.0) < 0.1, losses[0]
    assert sum(losses[-20:]) / 20 < 0.5 * losses[0]


def test_resume_continues_the_same_run(tmp_path, tiny_images):
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup=2, checkpoint_every=3)
    straight, straight_losses = train(tiny_images, tmp_path / "a", TINY, cfg, torch.device("cpu"), progress=False,
                                      log=lambda s: None)
    half = TrainConfig(**{**cfg.__dict__, "steps": 3})
    _, first = train(tiny_images, tmp_path / "b", TINY, half, torch.device("cpu"), progress=False, log=lambda s: None)
    resumed, second = train(tiny_images, tmp_path / "b", TINY, cfg, torch.device("cpu"), progress=False,
                            log=lambda s: None)
    assert len(second) == 3  # it resumed at step 3 rather than starting over
    torch.testing.assert_close(torch.tensor(first + second), torch.tensor(straight_losses), rtol=1e-5, atol=1e-6)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_shipped_fashion32_loads_and_beats_the_gaussian_baseline():
    model, baseline = load_model("fashion32"), load_model("gaussian-fashion32")
    assert model.image_shape == (1, 32, 32) and model.default_image_set == "fashion32-test"
    x = load_images("fashion32-test", model.image_shape, num_images=16).images * 2 - 1
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for time in (30, 100, 300):
        t = torch.full((x.shape[0],), time)
        ab = model.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
        with torch.no_grad():
            eps, eps_gauss = model.eps(x_t, t), baseline.eps(x_t, t)
        assert torch.isfinite(eps).all()
        # the Gaussian's eps is the exact E[eps | x_t] of the best stationary Gaussian fit to the same
        # training images; a learned prior must predict the noise of held-out images better
        assert float((eps - noise).square().mean()) < float((eps_gauss - noise).square().mean()), time


def test_model_card_command_is_accepted(tmp_path, monkeypatch):
    text = CARD.read_text()
    match = re.search(r"^\s*(bench train [^\n]+)$", text, re.MULTILINE)
    assert match, "MODEL_CARD.md must show the bench train command that made the weights"
    args = shlex.split(match.group(1))[1:]
    captured = {}

    def fake_train(images, out, model_cfg, cfg, device, progress=True, log=print, **family):
        captured.update(images=images.shape, model_cfg=model_cfg, cfg=cfg, family=family)
        raise SystemExit(0)  # stop before any training: only the parsing is under test

    monkeypatch.setattr("ipbench.training.loop.train", fake_train)
    out_index = args.index("--out") + 1
    args[out_index] = str(tmp_path / "out")
    if not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("the Debian package dataset-fashion-mnist is not installed")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    shipped = load_model("fashion32")
    assert captured["model_cfg"].channels == shipped.cfg.channels
    assert captured["model_cfg"].channel_mult == shipped.cfg.channel_mult
    assert captured["model_cfg"].num_res_blocks == shipped.cfg.num_res_blocks
    assert captured["images"][0] == 60000
    assert captured["family"] == {"objective": "eps", "labels": None, "class_names": None}  # the card's: an eps DDPM


@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_train_into_another_models_folder_is_a_one_line_error(tmp_path):
    """A training folder holding another model's state: exit 2 and a line naming what differs, no traceback."""
    out = tmp_path / "train"
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        save_png(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(i)), images / f"{i}.png")
    common = ["train", "--data", str(images), "--out", str(out), "--resolution", "8", "--steps", "1",
              "--batch-size", "2", "--channel-mult", "1", "--attention", "", "--sample-steps", "1", "--no-progress",
              "--device", "cpu"]
    first = CliRunner().invoke(cli, [*common, "--channels", "8"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, [*common, "--channels", "16"])
    assert second.exit_code == 2, second.output
    assert "holds the training state of another model (it differs in channels)" in second.output
    assert "Traceback" not in second.output
    (out / "train_state.pt").write_bytes(b"not a torch file")
    third = CliRunner().invoke(cli, [*common, "--channels", "8"])
    assert third.exit_code == 2 and "not a readable training state" in third.output
