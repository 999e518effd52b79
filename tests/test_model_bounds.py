"""A UNet that cannot be built as asked is one line before any work: `bench train` options (a resolution its
levels cannot halve, attention at a resolution that never occurs, empty, zero, negative or non-integer channel
multipliers, widths the group norms cannot split) before the data is read or a model built, and a checkpoint
file declaring a huge image, absurd architecture numbers or a broken schedule before anything is allocated."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.unet import UNetConfig, UNetScoreModel
from ipbench.weights import CHECKPOINT_FORMAT

TRAIN_OPTIONS = [  # (options, the one line's fragment)
    (["--resolution", "33"], "--resolution 33: has side 33, not divisible by 2^(levels - 1) = 4"),
    (["--resolution", "36", "--channel-mult", "1,2,2,2"], "--resolution 36: has side 36, not divisible by "
                                                          "2^(levels - 1) = 8 (the 4 levels of channel_mult halve it "
                                                          "3 times); e.g. 32 or 40"),
    (["--attention", "16,64"], "--attention '16,64': has 64, a resolution that never occurs; "
                               "the levels are 32, 16, 8 px"),
    (["--attention", "3"], "--attention '3': has 3, a resolution that never occurs"),
    (["--attention", "8,x"], "--attention '8,x': expected comma-separated integers"),
    (["--channel-mult", ""], "--channel-mult '': is empty; give one positive integer per level"),
    (["--channel-mult", " , "], "--channel-mult ' , ': expected comma-separated integers"),
    (["--channel-mult", "1,,2"], "--channel-mult '1,,2': expected comma-separated integers"),
    (["--channel-mult", "1,0,2"], "--channel-mult '1,0,2': has 0; each must be in 1..2048"),
    (["--channel-mult", "1,-2"], "--channel-mult '1,-2': has -2; each must be in 1..2048"),
    (["--channel-mult", "1,2.5"], "--channel-mult '1,2.5': expected comma-separated integers"),
    (["--channel-mult", "1,1,1,1,1,1,1,1,1", "--resolution", "256", "--attention", ""],
     "--channel-mult '1,1,1,1,1,1,1,1,1': has 9 levels; at most 8"),
    (["--channel-mult", "1,200"], "--channel-mult '1,200': gives a level 6400 channels wide"),
    (["--channels", "12"], "--channels 12: is not a multiple of 8"),
    (["--channels", "4096"], "--channels 4096: must be an integer in 1..2048"),
    (["--channels", "1024", "--channel-mult", "1,2", "--num-res-blocks", "8", "--attention", ""],
     "--channel-mult '1,2': gives 2,563,241,985 weights (with channels 1024, num_res_blocks 8); "
     "at most 500,000,000"),  # counted on the meta device, nothing allocated
    (["--num-res-blocks", "100"], "--num-res-blocks 100: must be an integer in 1..8"),
]


@pytest.mark.parametrize("options, fragment", TRAIN_OPTIONS, ids=[" ".join(o) for o, _ in TRAIN_OPTIONS])
def test_train_options_its_unet_cannot_use_stop_before_any_work(tmp_path, monkeypatch, options, fragment):
    def no_work(*args, **kwargs):
        raise AssertionError("bench train read data or trained before checking its options")

    monkeypatch.setattr("ipbench.training.export.load_training_images", no_work)
    monkeypatch.setattr("ipbench.training.loop.train", no_work)
    monkeypatch.setattr(UNetScoreModel, "__init__", no_work)
    out = tmp_path / "train"
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "images"), "--out", str(out), *options])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.output
    assert not out.exists()


def _unet_file(tmp_path: Path, **config) -> Path:
    """An ipbench checkpoint of a tiny UNet whose config declares `config` over the tiny one's fields."""
    tiny = UNetConfig(image_shape=(1, 8, 8), channels=8, channel_mult=(1,), num_res_blocks=1,
                      attention_resolutions=(), dropout=0.0)
    state = UNetScoreModel(tiny).state_dict()
    path = tmp_path / "declared.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": "unet", "config": {**asdict(tiny), **config},
                "state_dict": state}, path)
    return path


DECLARED = [  # (config fields the file declares, the one line's fragment)
    ({"image_shape": [1, 100_000, 100_000]}, "declares image_shape=(1, 100000, 100000), which is 100000 x 100000 px"),
    ({"image_shape": [10_000, 8, 8]}, "which has 10000 image channels; must be in 1..4"),
    ({"image_shape": [1, 8]}, "which must be 3 integers"),
    ({"channels": 10**9}, "declares channels=1000000000, which must be an integer in 1..2048"),
    ({"channels": "8"}, "declares channels='8', which must be an integer"),
    ({"channel_mult": []}, "declares channel_mult=(), which is empty"),
    ({"channel_mult": [1, -4]}, "declares channel_mult=(1, -4), which has -4"),
    ({"channel_mult": [1] * 50}, "which has 50 levels; at most 8"),
    ({"num_res_blocks": 10**6}, "declares num_res_blocks=1000000, which must be an integer in 1..8"),
    ({"attention_resolutions": [5]}, "declares attention_resolutions=(5,), which has 5, a resolution that "
                                     "never occurs"),
    ({"num_timesteps": 10**12}, "declares num_timesteps=1000000000000, which must be an integer in 1..100000"),
    ({"beta_start": 0.5, "beta_end": 0.1}, "declares beta_start=0.5, which must be in (0, beta_end]"),
    ({"channels": 2048, "channel_mult": [1, 1], "num_res_blocks": 8}, "which gives 4,329,224,193 weights"),
    ({"channels": 16}, "weights do not fit the UNet it declares"),  # within bounds, but not these weights
]


@pytest.mark.parametrize("config, fragment", DECLARED, ids=[",".join(c) + str(i) for i, (c, _) in enumerate(DECLARED)])
def test_a_checkpoint_declaring_what_cannot_be_built_is_one_line(tmp_path, monkeypatch, config, fragment):
    path = _unet_file(tmp_path, **config)
    if "weights do not fit" not in fragment:  # nothing may be built from a declaration out of bounds
        monkeypatch.setattr(UNetScoreModel, "__init__", lambda *a, **k: pytest.fail("built before the check"))
    with pytest.raises(UsageError) as info:
        load_model(str(path))
    message = str(info.value)
    assert message.startswith(f"model file {path}: ") and fragment in message and "\n" not in message, message
    result = CliRunner().invoke(cli, ["sample", "--model", str(path), "-n", "1", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [f"Error: {message}"], result.output
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("change, fragment", [
    (lambda blob: blob["config"].update(alphas_cumprod=[0.5, 0.9]), "alphas_cumprod of 2 values"),
    (lambda blob: blob["config"].update(alphas_cumprod=[2.0]), "alphas_cumprod of 1 values"),
    (lambda blob: blob["config"].update(alphas_cumprod=[]), "alphas_cumprod of 0 values"),
    (lambda blob: blob["state_dict"].update(spectrum=torch.ones(1, 3000, 1)), "a spectrum of shape (1, 3000, 1)"),
    (lambda blob: blob["state_dict"].update(spectrum=torch.ones(8, 8)), "a spectrum of shape (8, 8)"),
    (lambda blob: blob["state_dict"].update(mean=torch.zeros(5)), "declares mean (5,) and colour_basis (3, 3)"),
    (lambda blob: blob["state_dict"]["spectrum"].fill_(float("nan")), "non-finite"),
], ids=["increasing", "above-one", "empty", "huge-side", "no-channels", "mean-size", "nan"])
def test_a_gaussian_checkpoint_with_broken_shapes_or_schedule_is_one_line(tmp_path, small_model_path, change, fragment):
    blob = torch.load(small_model_path, weights_only=True)
    change(blob)
    path = tmp_path / "gaussian.pt"
    torch.save(blob, path)
    with pytest.raises(UsageError) as info:
        load_model(str(path))
    message = str(info.value)
    assert message.startswith(f"model file {path}: declares ") and fragment in message and "\n" not in message
