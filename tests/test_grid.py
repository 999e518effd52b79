"""Figure grids (results/grid.py): unobserved pixels drawn as a checkerboard that no image content looks like,
for grayscale and RGB; `bench grid` with other options never replaces the run's own grids; trace figures
label each strip and number each frame's step."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.cli import cli
from ipbench.data import load_images
from ipbench.models import GaussianScoreModel, save_checkpoint
from ipbench.results.grid import LABEL_H, LABEL_W, LINE_H, PAD, TRACE_STEPS_KEY, _frame_labels, grid_shows
from ipbench.results.unobserved import CHECKER, shown
from ipbench.run_paths import grid_png, measurement_png, trace_figure_png, trace_png

CELL = 96  # a 32 px image enlarged 3x in a grid


def _mask(kind: str) -> torch.Tensor:
    """(32, 32) opacity: 0 where a measurement sees nothing."""
    if kind == "box":
        mask = torch.ones(32, 32)
        mask[8:24, 8:24] = 0
        return mask
    return (torch.rand(32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).float()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["box", "random"])
def test_unobserved_pixels_are_a_checkerboard_and_observed_ones_keep_their_value(channels, kind):
    values = torch.rand(channels, 32, 32, generator=torch.Generator().manual_seed(1))
    values[:, :4] = 0.0  # black content, as on Fashion-MNIST's background
    values[:, 4:8] = 1.0
    mask = _mask(kind)
    pixels = (torch.cat([values, mask[None]]) * 255).round().byte().permute(1, 2, 0).numpy()
    image = shown(Image.fromarray(pixels, "LA" if channels == 1 else "RGBA"))
    assert image.mode == "RGB"
    out = torch.from_numpy(np.asarray(image).astype(np.int64))
    holes = out[mask == 0]
    assert {tuple(p) for p in holes.tolist()} == set(CHECKER)  # both squares, nothing else
    seen = out[mask == 1]
    expected = (values.expand(3, -1, -1).permute(1, 2, 0)[mask == 1] * 255).round().long()
    assert torch.equal(seen, expected)
    if channels == 1:  # gray content is never magenta
        assert not {tuple(p) for p in seen.tolist()} & set(CHECKER)


def test_an_image_without_opacity_is_shown_as_it_is():
    image = Image.fromarray((torch.rand(16, 16) * 255).byte().numpy(), "L")
    assert np.array_equal(np.asarray(shown(image)), np.asarray(image.convert("RGB")))


@pytest.fixture(scope="module", params=[1, 3], ids=["gray", "rgb"])
def model_path(request, tmp_path_factory) -> Path:
    shape = (request.param, 32, 32)
    path = tmp_path_factory.mktemp("models") / f"gaussian-{request.param}.pt"
    save_checkpoint(GaussianScoreModel.fit(load_images("photos", shape).images), path)
    return path


def test_the_measurement_column_marks_the_holes_of_every_inpainting_and_nothing_else(tmp_path, model_path):
    spec = build_spec(["hole-fill"], ["inpaint-box", "inpaint-random", "deblur"], model=str(model_path),
                      images="photos", num_images=2)
    out = run(spec, out=tmp_path / "run", progress=False).out
    from ipbench.results.grid import write_grids

    write_grids(out)
    for operator, holes in (("inpaint-box", True), ("inpaint-random", True), ("deblur-gauss", False)):
        with Image.open(measurement_png(out, operator, "00-astronaut", 0)) as saved:
            assert (saved.mode in ("LA", "RGBA")) == holes, operator
            opacity = np.asarray(saved.getchannel("A")) if holes else None
        with Image.open(grid_png(out, operator)) as figure:
            figure = figure.convert("RGB")
            cells = [figure.crop((LABEL_W + c * (CELL + PAD), LABEL_H, LABEL_W + c * (CELL + PAD) + CELL,
                                  LABEL_H + CELL)) for c in range(3)]
        colours = [{tuple(p) for p in np.asarray(cell).reshape(-1, 3).tolist()} for cell in cells]
        if holes:
            assert set(np.unique(opacity).tolist()) == {0, 255}
            assert set(CHECKER) <= colours[1], operator  # the measurement shows the checkerboard
        else:
            assert not set(CHECKER) & colours[1]
        assert not set(CHECKER) <= colours[0] and not set(CHECKER) <= colours[2]  # truth, reconstruction


@pytest.fixture
def small_run(tmp_path, small_model_path) -> Path:
    """A run of 3 images whose grids `bench run` wrote (its own: 3 images, fewer than the default 8)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", "hole-fill", "--op", "inpaint", "--model",
                                      str(small_model_path), "--images", "photos", "--num-images", "3", "--out",
                                      str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _rows_shown(path: Path) -> int:
    with Image.open(path) as image:
        return (image.height - LABEL_H) // (CELL + PAD)


def test_a_grid_with_other_options_goes_elsewhere_and_the_runs_own_grids_stay(small_run):
    own = grid_png(small_run, "inpaint-box")
    assert grid_shows(own) == "first 3 images, seed 0"
    before = _snapshot(small_run)
    result = CliRunner().invoke(cli, ["grid", str(small_run), "--max-images", "2"])
    assert result.exit_code == 0, result.output
    elsewhere = grid_png(small_run / "grids-2-images", "inpaint-box")
    assert str(elsewhere) in result.output and "kept" in result.output
    assert {p: b for p, b in _snapshot(small_run).items() if p in before} == before  # nothing replaced
    assert _rows_shown(elsewhere) == 2 and grid_shows(elsewhere) == "first 2 images, seed 0"


@pytest.mark.parametrize("max_images", ["3", "8"])  # both show the run's 3 images
def test_a_grid_with_the_runs_options_is_remade_in_place(small_run, max_images):
    own = grid_png(small_run, "inpaint-box")
    own.unlink()
    result = CliRunner().invoke(cli, ["grid", str(small_run), "--max-images", max_images])
    assert result.exit_code == 0 and own.is_file() and "kept" not in result.output, result.output
    assert not list(small_run.glob("grids-*"))


def test_a_grid_from_before_the_record_counts_as_the_default_eight(small_run):
    own = grid_png(small_run, "inpaint-box")
    with Image.open(own) as image:
        image.convert("RGB").save(own)  # no text chunk, as grids were written before
    assert grid_shows(own) == ""
    assert CliRunner().invoke(cli, ["grid", str(small_run)]).exit_code == 0
    assert not list(small_run.glob("grids-*")) and grid_shows(own) == "first 3 images, seed 0"


def test_out_writes_only_there(small_run, tmp_path):
    before = _snapshot(small_run)
    target = tmp_path / "figures"
    result = CliRunner().invoke(cli, ["grid", str(small_run), "--max-images", "1", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert _snapshot(small_run) == before
    assert sorted(p.name for p in target.iterdir()) == ["grid-inpaint-box.png"]
    assert _rows_shown(target / "grid-inpaint-box.png") == 1


def test_out_that_is_a_file_is_one_line(small_run, tmp_path):
    target = tmp_path / "figures.png"
    target.write_bytes(b"")
    result = CliRunner().invoke(cli, ["grid", str(small_run), "--out", str(target)])
    assert result.exit_code == 2 and result.output.strip() == f"Error: --out {target}: is a file; give a folder " \
                                                              "for the grid PNGs"


def test_trace_strips_record_their_steps_and_the_figure_numbers_each_frame(tmp_path, small_model_path):
    spec = build_spec(["dps", "ddnm"], ["denoise"], ["steps=7"], model=str(small_model_path), images="photos",
                      num_images=2)
    out = run(spec, out=tmp_path / "run", progress=False, trace=3).out
    from ipbench.results.grid import write_grids

    assert trace_figure_png(out, "denoise") in write_grids(out)
    for solver in ("dps", "ddnm"):
        strip = trace_png(out, "denoise", solver, "00-astronaut", 0)
        with Image.open(strip) as image:
            times = json.loads(image.text[TRACE_STEPS_KEY])
        assert [step for step, _ in times] == [0, 3, 6]  # every 3rd of steps 0..6, the last once
        assert [t for _, t in times] == sorted((t for _, t in times), reverse=True)  # diffusion time runs down
        assert _frame_labels(strip, 3) == [[f"step {s}", f"t={t}"] for s, t in times]
        assert _frame_labels(strip, 4) == [[], [], [], []]  # a strip that does not match is left unnumbered
    with Image.open(trace_figure_png(out, "denoise")) as figure:
        assert figure.height == LABEL_H + 4 * (CELL + 2 * LINE_H + PAD)  # 2 solvers x 2 images, a label row each
        assert figure.width == LABEL_W + 3 * (CELL + PAD)  # three frames apart
