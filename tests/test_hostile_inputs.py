"""Hostile inputs to `bench run` and the commands that read a run: decompression bombs, deep TOML, values past
float32, files changed under the same name, a run folder that is its own image folder, images at another
size or mode, unusable devices, unknown `~user` paths and a deleted current folder. Each is one line
`Error: ...` with exit code 2 (or, for converted images, a note printed and recorded), never a traceback."""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ipbench.cli import cli
from ipbench.data import save_png
from ipbench.imagefile import MAX_PIXELS
from ipbench.models import GaussianScoreModel, save_checkpoint

RUN = ["run", "--solver", "hole-fill", "--no-progress"]


def invoke(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result: object, *names: str) -> str:
    """The single `Error: ...` line of a refused command (exit 2, no traceback), which names every `names`."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def bomb_png(path: Path, width: int, height: int, color_type: int) -> Path:
    """A tiny PNG whose header declares width x height pixels (gray: 0, RGB: 2), with next to no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


# Just over the limit (PIL would only warn and decode) and far over it (PIL refuses on open), gray and RGB.
BOMBS = [pytest.param(9500, 9500, 0, id="gray-just-over"), pytest.param(12000, 7500, 2, id="rgb-just-over"),
         pytest.param(60000, 60000, 0, id="gray-far-over"), pytest.param(100000, 50000, 2, id="rgb-far-over")]


@pytest.mark.parametrize("width, height, color_type", BOMBS)
def test_a_bomb_among_test_images_is_skipped_unread_and_named(tmp_path, small_model_path, width, height, color_type):
    assert width * height > MAX_PIXELS
    images = tmp_path / "images"
    images.mkdir()
    save_png(torch.rand(3, 32, 32), images / "a-good.png")
    bomb_png(images / "b-bomb.png", width, height, color_type)
    out = tmp_path / "run"
    result = invoke(*RUN, "--op", "denoise", "--model", small_model_path, "--images", images, "--out", out)
    assert result.exit_code == 0, result.output
    assert "skipped image b-bomb.png: ImageTooLarge" in result.output and "too many pixels" in result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["images"]["ids"] == ["a-good"] and meta["images"]["skipped"][0][0] == "b-bomb.png"

    only_bombs = tmp_path / "bombs"
    only_bombs.mkdir()
    bomb_png(only_bombs / "b-bomb.png", width, height, color_type)
    refused = invoke(*RUN, "--op", "denoise", "--model", small_model_path, "--images", only_bombs,
                     "--out", tmp_path / "run2")
    one_line_error(refused, "b-bomb.png", "too many pixels")
    assert not (tmp_path / "run2").exists()


@pytest.mark.parametrize("width, height, color_type", BOMBS)
def test_a_bomb_as_mask_file_is_one_line(tmp_path, small_model_path, width, height, color_type):
    mask = bomb_png(tmp_path / "mask.png", width, height, color_type)
    result = invoke(*RUN, "--op", "inpaint-mask", "--param", f"inpaint-mask.path={mask}", "--model", small_model_path,
                    "--images", "photos", "--num-images", "1", "--out", tmp_path / "run")
    one_line_error(result, "inpaint-mask.path", str(mask), "too many pixels")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, small_model_path) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = invoke(*RUN, "--solver", "gaussian-filter", "--op", "denoise", "--model", small_model_path,
                    "--images", "photos", "--num-images", "2", "--out", out)  # two solvers: the report shows images
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("width, height, color_type", BOMBS[::3])
@pytest.mark.parametrize("command, where", [("grid", "images/truth/00-astronaut.png"),
                                            ("grid", "images/denoise/hole-fill/01-camera-s0.png"),
                                            ("report", "images/truth/01-camera.png")])
def test_a_bomb_in_a_run_folder_is_one_line_for_the_commands_that_read_it(tmp_path, finished_run, command, where,
                                                                          width, height, color_type):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    bomb_png(run / where, width, height, color_type)
    one_line_error(invoke(command, run), where.rsplit("/", 1)[1], "too many pixels")


NESTED = [pytest.param(f"seeds = {'[' * 3000}{']' * 3000}\n", id="arrays"),
          pytest.param(f"title = {'{a = ' * 3000}1{'}' * 3000}\n", id="inline-tables"),
          pytest.param(f"[[solver]]\nname = 'dps'\nzeta = {'[' * 3000}{']' * 3000}\n", id="in-a-table")]


@pytest.mark.parametrize("text", NESTED)
def test_a_deeply_nested_suite_is_one_line(tmp_path, text):
    suite = tmp_path / "deep.toml"
    suite.write_text(text)
    one_line_error(invoke("run", "--config", suite, "--out", tmp_path / "run"), str(suite), "nested too deeply")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("assignment", ["sigma_y=1e39", "sigma_y=3.5e38", "denoise.sigma_y=1e-40",
                                        "tikhonov.lam=-1e39", "tikhonov.lam=1e-300"])
@pytest.mark.parametrize("through", ["--param", "suite"])
def test_a_float_past_float32_is_refused_before_the_run(tmp_path, assignment, through):
    out = tmp_path / "run"
    target, _, value = assignment.rpartition("=")
    if through == "--param":
        result = invoke("run", "--solver", "tikhonov", "--op", "denoise", "--param", assignment, "--out", out)
    else:
        name = target.rpartition(".")[2]
        table = "solver" if target.startswith("tikhonov") else "operator"
        other = "operator" if table == "solver" else "solver"
        other_name = "denoise" if other == "operator" else "tikhonov"
        suite = tmp_path / "suite.toml"
        suite.write_text(f"[[{table}]]\nname = '{'tikhonov' if table == 'solver' else 'denoise'}'\n{name} = {value}\n"
                         f"[[{other}]]\nname = '{other_name}'\n")
        result = invoke("run", "--config", suite, "--out", out)
    one_line_error(result, f"{target.rpartition('.')[2]}=", "outside float32's range")
    assert not out.exists()


def _other_model(path: Path) -> None:
    model = GaussianScoreModel.fit(torch.rand(4, 3, 32, 32))
    save_checkpoint(model, path)


def _other_mask(path: Path) -> None:
    Image.new("L", (32, 32), 255).save(path)


@pytest.mark.parametrize("changed", ["model", "mask"])
def test_a_resume_refuses_a_mask_or_model_file_changed_under_the_same_name(tmp_path, small_model, changed):
    model, mask = tmp_path / "model.pt", tmp_path / "mask.png"
    save_checkpoint(small_model, model)
    Image.fromarray((torch.arange(32 * 32).view(32, 32) % 2 * 255).to(torch.uint8).numpy()).save(mask)
    args = [*RUN, "--op", "inpaint-mask", "--param", f"inpaint-mask.path={mask}", "--model", model,
            "--images", "photos", "--num-images", "1", "--out", tmp_path / "run"]
    assert invoke(*args).exit_code == 0
    inputs = json.loads((tmp_path / "run" / "run.json").read_text())["inputs"]
    assert set(inputs) == {"--model", "operator inpaint-mask.path"}
    again = invoke(*args)
    assert again.exit_code == 0 and "rows: 0 new, 1 already done" in again.output
    file = model if changed == "model" else mask
    (_other_model if changed == "model" else _other_mask)(file)
    one_line_error(invoke(*args), str(file), "changed since these rows were computed")


def test_an_out_that_is_or_holds_the_images_folder_is_refused(tmp_path, small_model_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        save_png(torch.rand(3, 32, 32), images / f"{i}.png")
    before = sorted(images.iterdir())
    for out, images_arg in ((images, images), (tmp_path, images)):
        result = invoke(*RUN, "--op", "denoise", "--model", small_model_path, "--images", images_arg, "--out", out)
        one_line_error(result, "--out", "--images folder")
        assert sorted(images.iterdir()) == before


def test_an_out_inside_the_images_folder_never_reads_its_own_pngs(tmp_path, small_model_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        save_png(torch.rand(3, 32, 32), images / f"{i}.png")
    args = [*RUN, "--op", "denoise", "--model", small_model_path, "--images", images, "--out", images / "run"]
    assert invoke(*args).exit_code == 0
    assert any((images / "run").glob("grid-*.png"))
    again = invoke(*args)
    assert again.exit_code == 0 and "rows: 0 new, 2 already done" in again.output
    assert json.loads((images / "run" / "run.json").read_text())["images"]["ids"] == ["0", "1"]


def test_images_at_another_size_or_mode_are_converted_printed_and_recorded(tmp_path, small_model_path):
    images = tmp_path / "images"
    images.mkdir()
    save_png(torch.rand(3, 32, 32), images / "a-same.png")
    Image.new("RGB", (48, 40)).save(images / "b-larger.png")
    Image.new("L", (32, 32)).save(images / "c-gray.png")
    Image.new("RGBA", (32, 32)).save(images / "d-alpha.png")
    out = tmp_path / "run"
    result = invoke(*RUN, "--op", "denoise", "--model", small_model_path, "--images", images, "--out", out)
    assert result.exit_code == 0, result.output
    assert "converted 3 of 4 images to the model's 32x32 RGB" in result.output
    assert "first: b-larger, 48x40 RGB" in result.output
    recorded = json.loads((out / "run.json").read_text())["images"]
    assert recorded["converted"] == {"b-larger": "48x40 RGB", "c-gray": "32x32 L", "d-alpha": "32x32 RGBA"}
    assert recorded["converted_to"] == "32x32 RGB"


UNAVAILABLE = ["meta", "xla", "tpu", "cuda:99", "cpu:1", "hpu", "not-a-device"]
UNAVAILABLE += [] if torch.cuda.is_available() else ["cuda", "cuda:0"]
UNAVAILABLE += [] if torch.backends.mps.is_available() else ["mps"]


@pytest.mark.parametrize("device", UNAVAILABLE)
@pytest.mark.parametrize("command", [[*RUN, "--op", "denoise"], ["sample", "-n", "1", "--steps", "1"],
                                     ["train", "--data", "x", "--out", "y"]])
def test_an_unavailable_device_is_one_line_with_the_valid_choices(tmp_path, device, command):
    args = [*command, "--device", device] + (["--out", tmp_path / "run"] if command[0] == "run" else [])
    one_line_error(invoke(*args), f"--device {device}", "valid here: auto, cpu")
    assert not (tmp_path / "run").exists()


UNKNOWN_HOME = "~no-such-user-ipbench"


@pytest.mark.parametrize("args", [
    ["run", "--solver", "hole-fill", "--op", "denoise", "--out", f"{UNKNOWN_HOME}/run"],
    ["run", "--solver", "hole-fill", "--op", "denoise", "--images", f"{UNKNOWN_HOME}/images"],
    ["run", "--config", f"{UNKNOWN_HOME}/suite.toml"],
    ["run", "--solver", "hole-fill", "--op", "denoise", "--model", f"{UNKNOWN_HOME}/model.pt"],
    ["run", "--solver", "hole-fill", "--op", "denoise", "--model", f"ffhq256:{UNKNOWN_HOME}/ffhq_10m.pt"],
    ["run", "--solver", "hole-fill", "--op", "denoise", "--plugin", f"{UNKNOWN_HOME}/plugin.py"],
    ["list", "--plugin", f"{UNKNOWN_HOME}/plugin.py"],
    ["sample", "--out", f"{UNKNOWN_HOME}/samples.png"],
    ["table", f"{UNKNOWN_HOME}/run"],
    ["report", f"{UNKNOWN_HOME}/run"],
    ["train", "--data", f"{UNKNOWN_HOME}/data", "--out", "x"],
], ids=lambda a: " ".join(a[:1] + [x for x in a if x.startswith("--") and x not in ("--solver", "--op")][:1]))
def test_a_path_under_an_unknown_users_home_is_one_line(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    option = next((a for a in args if a.startswith("--") and a not in ("--solver", "--op")), args[0])
    line = one_line_error(invoke(*args), UNKNOWN_HOME, "no such user")
    assert line.startswith(f"Error: {option}") or args[0] in ("table", "report"), line
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_users_home_in_a_suite_or_a_mask_path_is_one_line(tmp_path, small_model_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(f"images = '{UNKNOWN_HOME}/images'\n[[solver]]\nname = 'hole-fill'\n"
                     "[[operator]]\nname = 'denoise'\n")
    one_line_error(invoke("run", "--config", suite, "--model", small_model_path, "--out", tmp_path / "a"), UNKNOWN_HOME)
    mask = invoke(*RUN, "--op", "inpaint-mask", "--param", f"inpaint-mask.path={UNKNOWN_HOME}/m.png",
                  "--model", small_model_path, "--images", "photos", "--out", tmp_path / "b")
    one_line_error(mask, UNKNOWN_HOME, "inpaint-mask.path")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_in_a_deleted_current_folder_is_one_line(tmp_path, command):
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        result = invoke(command)
    finally:
        os.chdir(here)
    one_line_error(result, "current folder was deleted")
