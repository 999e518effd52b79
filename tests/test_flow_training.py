"""bench train --objective flow: a tiny flow-matching run lowers its loss, saves a checkpoint that loads as a
flow model (its VP view usable by every solver), samples through the flow ODE, and a training folder of one
objective refuses to resume as the other."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_images, save_png
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.flow import FlowModel
from ipbench.models.unet import UNetConfig
from ipbench.training.loop import TrainConfig, train

TINY = UNetConfig(image_shape=(1, 16, 16), channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(), dropout=0.0)
QUIET = dict(progress=False, log=lambda s: None)


@pytest.fixture(scope="module")
def tiny_images() -> torch.Tensor:
    return load_images("fashion32-test", (1, 16, 16), num_images=8).images


@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_a_tiny_flow_run_lowers_the_loss(tmp_path, tiny_images):
    cfg = TrainConfig(steps=150, batch_size=8, lr=2e-3, warmup=10, checkpoint_every=1000)
    model, losses = train(tiny_images, tmp_path, TINY, cfg, torch.device("cpu"), objective="flow", **QUIET)
    assert isinstance(model, FlowModel)
    # at init the output layer is zero, so v_hat = 0 and the loss is E||eps - x0||^2 per pixel = 1 + E[x0^2]
    x0 = tiny_images * 2 - 1
    assert abs(losses[0] - (1 + float(x0.square().mean()))) < 0.15, losses[0]
    assert sum(losses[-20:]) / 20 < 0.6 * losses[0]


def test_a_folder_resumes_only_with_its_own_objective(tmp_path, tiny_images):
    cfg = TrainConfig(steps=2, batch_size=2, warmup=1, checkpoint_every=1)
    train(tiny_images, tmp_path, TINY, cfg, torch.device("cpu"), objective="flow", **QUIET)
    more = TrainConfig(**{**cfg.__dict__, "steps": 3})
    with pytest.raises(UsageError, match="--objective flow"):
        train(tiny_images, tmp_path, TINY, more, torch.device("cpu"), objective="eps", **QUIET)


def test_bench_train_flow_writes_a_flow_checkpoint_that_samples(tmp_path, tiny_images):
    data = tmp_path / "data"
    data.mkdir()
    for i, image in enumerate(tiny_images):
        save_png(image, data / f"{i}.png")
    out = tmp_path / "train"
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(out), "--steps", "2",
                                      "--batch-size", "2", "--channels", "8", "--channel-mult", "1,2",
                                      "--attention", "", "--resolution", "16", "--sample-steps", "3",
                                      "--objective", "flow", "--no-progress", "--checkpoint-every", "1"])
    assert result.exit_code == 0, result.output
    model = load_model(str(out / "model.pt"))
    assert isinstance(model, FlowModel) and model.continuous
    x_t = torch.randn(2, *model.image_shape)
    assert model.eps(x_t, torch.tensor([10, 900])).shape == x_t.shape
    assert (out / "samples.png").stat().st_size > 0
    sample = CliRunner().invoke(cli, ["sample", "--model", str(out / "model.pt"), "-n", "2", "--steps", "3",
                                      "--out", str(tmp_path / "s.png")])
    assert sample.exit_code == 0, sample.output
