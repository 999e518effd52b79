"""`bench run --condition true|wrong|none --guidance W` on a class-conditional prior (benchmark/condition.py): the
rows record what the prior was given, the wrong class is never the true one and is the same for every solver,
`none` is the model's unconditional half, the table says so, and the mistakes are one line each."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data.labels import FASHION_MNIST_CLASSES, class_in_name
from ipbench.models.conditional import ConditionalUNetModel
from ipbench.models.registry import save_checkpoint
from ipbench.models.unet import UNetConfig

RUN = ["--solver", "tweedie", "--solver", "ddpm", "--op", "denoise", "--images", "fashion32-test", "--num-images", "3",
       "--no-progress", "--param", "ddpm.steps=3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = UNetConfig(image_shape=(1, 32, 32), channels=16, channel_mult=(1,), num_res_blocks=1,
                     attention_resolutions=(), dropout=0.0, num_classes=len(FASHION_MNIST_CLASSES))
    model = ConditionalUNetModel(cfg, list(FASHION_MNIST_CLASSES))
    with torch.no_grad():  # a network whose classes differ, so that the condition shows in the results
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("cond") / "cond.pt"
    save_checkpoint(model, path)
    return path


def _run(checkpoint: Path, out: Path, *extra: str):
    result = CliRunner().invoke(cli, ["run", "--model", str(checkpoint), *RUN, "--out", str(out), *extra])
    rows = [json.loads(line) for f in sorted(out.glob("rows*.jsonl")) for line in f.read_text().splitlines()] \
        if out.exists() else []
    return result, rows


def test_true_and_wrong_classes_are_recorded_and_paired(checkpoint, tmp_path):
    result, rows = _run(checkpoint, tmp_path / "true", "--condition", "true", "--guidance", "2")
    assert result.exit_code == 0, result.output
    assert rows and all(r["model.condition"] == "true" and r["model.guidance"] == 2.0 for r in rows)
    assert all(r["model.class"] == class_in_name(r["image"], FASHION_MNIST_CLASSES) for r in rows)
    assert "each image's own class, classifier-free guidance w = 2" in (tmp_path / "true" / "table.md").read_text()
    result, wrong = _run(checkpoint, tmp_path / "wrong", "--condition", "wrong", "--guidance", "2")
    assert result.exit_code == 0, result.output
    assert all(r["model.class"] in FASHION_MNIST_CLASSES for r in wrong)
    assert all(r["model.class"] != class_in_name(r["image"], FASHION_MNIST_CLASSES) for r in wrong)
    by_image = {}
    for r in wrong:  # the same wrong class for every solver of the run
        assert by_image.setdefault(r["image"], r["model.class"]) == r["model.class"]
    psnr = {(r["solver"], r["image"]): r["psnr"] for r in rows}
    assert any(abs(psnr[(r["solver"], r["image"])] - r["psnr"]) > 1e-6 for r in wrong)  # the class mattered


def test_condition_none_is_the_unconditional_half(checkpoint, tmp_path):
    result, none = _run(checkpoint, tmp_path / "none", "--condition", "none", "--guidance", "3")
    assert result.exit_code == 0, result.output
    result, plain = _run(checkpoint, tmp_path / "plain")
    assert result.exit_code == 0, result.output
    assert all(r["model.class"] is None for r in none) and "model.condition" not in plain[0]
    key = lambda r: (r["solver"], r["image"])  # noqa: E731
    assert {key(r): r["psnr"] for r in none} == {key(r): r["psnr"] for r in plain}
    config = json.loads((tmp_path / "plain" / "run.json").read_text())["config"]
    assert "condition" not in config and "guidance" not in config  # a run without a class keeps its identity


@pytest.mark.parametrize("extra, fragment", [
    (["--model", "gaussian-fashion32", "--condition", "true"], "is not class-conditional"),
    (["--guidance", "2"], "--guidance: needs --condition"),
])
def test_condition_mistakes_are_one_line(tmp_path, extra, fragment):
    result = CliRunner().invoke(cli, ["run", *RUN, "--out", str(tmp_path / "x"), *extra])
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_images_without_a_class_in_their_name_are_refused(checkpoint, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--model", str(checkpoint), "--solver", "tweedie", "--op", "denoise",
                                      "--images", "photos", "--num-images", "1", "--condition", "true",
                                      "--out", str(tmp_path / "p"), "--no-progress"])
    assert result.exit_code == 2 and "names none of the model's classes" in result.output, result.output
