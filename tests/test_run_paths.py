"""Labels and image ids become file names (ipbench/run_paths.py): whatever they hold, a run writes only inside
its folder, two names never share a file, and a name that cannot be one is refused in one line before anything
is written. Readers (grids) find what the runner wrote."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import save_png
from ipbench.errors import UsageError
from ipbench.results import grid
from ipbench.run_paths import MAX_NAME_BYTES, file_name, reconstruction_png, solver_dir, truth_png

HOSTILE = ["../../../x", "..", ".", "./t", "t", "/abs/x", "a/b", "a\\b", "C:x", "con", "nul.txt", "a%2Fb",
           "a%b", " lead", "trail ", "trail.", "é", "e\u0301", "DPS (zeta 0.5)", "dps/residual", "x" * MAX_NAME_BYTES]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_becomes_one_portable_file_name_that_decodes_back(name):
    mapped = file_name(name)
    assert mapped not in (".", "..") and not {"/", "\\", ":", "\0"} & set(mapped)
    assert mapped.isascii() and mapped[0] not in ". " and mapped[-1] not in ". "
    assert unquote(mapped) == name  # decodable, hence distinct names never share a file name


def test_distinct_names_get_distinct_file_names():
    assert len({file_name(n) for n in HOSTILE}) == len(HOSTILE)
    assert file_name("DPS (zeta 0.5)") == "DPS (zeta 0.5)" and file_name("dps") == "dps"  # plain labels unchanged


@pytest.mark.parametrize("name, fragment", [
    ("", "empty"), ("   ", "empty"), ("a\x00b", "U+0000"), ("a\nb", "U+000A"), ("a\tb", "U+0009"),
    ("a\x7fb", "U+007F"), ("\u202eevil", "U+202E"), ("x" * (MAX_NAME_BYTES + 1), f"at most {MAX_NAME_BYTES}"),
    ("é" * 30, f"at most {MAX_NAME_BYTES}"),  # 180 characters once encoded
])
def test_a_name_that_cannot_be_a_file_name_is_refused_in_one_line(name, fragment):
    with pytest.raises(UsageError) as error:
        file_name(name, "solver label")
    message = str(error.value)
    assert message.startswith("solver label ") and fragment in message and "\n" not in message


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _run(tmp_path: Path, model: Path, suite: str, *extra: str):
    """`bench run --config` of `suite` into tmp_path/a/b/run (deep enough that `..` escapes stay under
    tmp_path, where the test sees them); returns (result, run folder, files written under tmp_path)."""
    config = tmp_path / "suite.toml"
    config.write_text(suite)
    before = _files(tmp_path)
    out = tmp_path / "a" / "b" / "run"
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--model", str(model), "--out", str(out),
                                      "--no-progress", *extra])
    return result, out, _files(tmp_path) - before


def _suite(solver_labels: tuple[str, str], operator_label: str, images: str = "photos", num_images: int = 2) -> str:
    """Two solvers (hole-fill, tweedie) and box inpainting under these labels (JSON strings are TOML strings)."""
    solvers = "".join(f'[[solver]]\nname = "{name}"\nlabel = {json.dumps(label)}\n'
                      for name, label in zip(("hole-fill", "tweedie"), solver_labels))
    return (f"images = {json.dumps(images)}\nnum_images = {num_images}\n"
            f'[[operator]]\nname = "inpaint-box"\nlabel = {json.dumps(operator_label)}\n{solvers}')


def _read_paths(monkeypatch, out: Path) -> list[Path]:
    """Every image path `write_grids` reads for the run (it draws a missing one as 'failed')."""
    read: list[Path] = []
    original = grid._open_cell
    monkeypatch.setattr(grid, "_open_cell", lambda path, size: read.append(path) or original(path, size))
    grid.write_grids(out)
    return read


@pytest.mark.parametrize("solvers, operator", [
    (("../../../x", "../x"), "inpaint"),
    (("/ABS", "t"), "../../op"),  # replaced by an absolute path inside tmp_path below
    (("t", "./t"), "op"),
    (("..", "."), "."),
    (("DPS (zeta 0.5)", "dps/residual"), "box/centre"),
    (("con", "a%2Fb"), "nul"),
    (("truth", "trace"), "measurement"),  # not the folder's own names at their places
    (("x" * MAX_NAME_BYTES, "y" * MAX_NAME_BYTES), "o" * MAX_NAME_BYTES),  # the longest names still write
])
def test_hostile_labels_write_only_inside_the_run_folder_and_never_share_a_file(tmp_path, small_model_path,
                                                                                 monkeypatch, solvers, operator):
    solvers = tuple(str(tmp_path / "abs") if s == "/ABS" else s for s in solvers)
    result, out, written = _run(tmp_path, small_model_path, _suite(solvers, operator))
    assert result.exit_code == 0, result.output
    assert written and all(out in p.parents for p in written), sorted(written)
    dirs = {solver_dir(out, operator, s) for s in solvers}
    assert len(dirs) == 2 and all(out / "images" in d.parents for d in dirs)
    ids = json.loads((out / "run.json").read_text())["images"]["ids"]
    for solver in solvers:
        assert sorted(p.name for p in solver_dir(out, operator, solver).glob("*.png")) == \
               sorted(reconstruction_png(out, operator, solver, i, 0).name for i in ids)
    read = _read_paths(monkeypatch, out)
    assert len(read) == 4 * len(ids) and all(p.is_file() for p in read)  # truth, measurement, both solvers


@pytest.mark.parametrize("solvers, operator, fragment", [
    (("measurement", "t"), "inpaint", "solver label 'measurement': the run folder's own name"),
    (("Measurement", "t"), "inpaint", "solver label 'Measurement': the run folder's own name"),
    (("s", "t"), "truth", "operator label 'truth': the run folder's own name"),
    (("t", "T"), "inpaint", "solver labels 't' and 'T' would share one file"),
    (("a\x00b", "t"), "inpaint", "solver label 'a\\x00b': has the control character U+0000"),
    (("a\nb", "t"), "inpaint", "solver label 'a\\nb': has the control character U+000A"),
    (("s", "t"), "op\r", "operator label 'op\\r': has the control character U+000D"),
    (("", "t"), "inpaint", "[[solver]] number 1: label = ''; expected a non-empty string"),
    (("s", "t"), "", "[[operator]] number 1: label = ''; expected a non-empty string"),
    (("s", "t"), "op\tx", "operator label 'op\\tx': has the control character U+0009"),
    (("x" * 200, "t"), "inpaint", f"at most {MAX_NAME_BYTES}"),
])
def test_labels_that_cannot_be_file_names_are_refused_before_anything_is_written(tmp_path, small_model_path,
                                                                                   solvers, operator, fragment):
    result, out, written = _run(tmp_path, small_model_path, _suite(solvers, operator))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: --config "), result.output
    assert fragment in lines[0] and not written and not out.exists()


def _image_folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "images in"
    folder.mkdir()
    for k, name in enumerate(names):
        save_png(torch.full((3, 32, 32), k / len(names)), folder / name)
    return folder


def test_odd_image_file_names_write_only_inside_the_run_folder_one_file_each(tmp_path, small_model_path):
    names = ["a b.png", "%41.png", "A.png", ".hidden.png", "..png", "x..png", "con.png", "é.png", "e\u0301.png",
             "semi;colon.png", "quote'\".png"]
    folder = _image_folder(tmp_path, names)
    result, out, written = _run(tmp_path, small_model_path, _suite(("s", "t"), "op", str(folder), len(names)))
    assert result.exit_code == 0, result.output
    assert all(out in p.parents for p in written)
    ids = json.loads((out / "run.json").read_text())["images"]["ids"]
    assert sorted(ids) == sorted(Path(n).stem for n in names)
    truths = {truth_png(out, i) for i in ids}
    assert len(truths) == len(ids) and all(p.is_file() for p in truths)
    assert sorted((out / "images" / "truth").iterdir()) == sorted(truths)  # one file per id, nothing else
    assert all(reconstruction_png(out, "op", s, i, 0).is_file() for s in ("s", "t") for i in ids)


@pytest.mark.parametrize("names, fragment", [
    (["a.png", "A.png"], "image ids 'A' and 'a' would share one file"),
    (["ok.png", "a\nb.png"], "image id 'a\\nb': has the control character U+000A"),
    (["ok.png", "a\x7fb.png"], "image id 'a\\x7fb': has the control character U+007F"),
    (["ok.png", "x" * 200 + ".png"], f"at most {MAX_NAME_BYTES}"),
])
def test_image_file_names_that_cannot_be_ids_are_refused_before_anything_is_written(tmp_path, small_model_path,
                                                                                     names, fragment):
    folder = _image_folder(tmp_path, names)
    result, out, written = _run(tmp_path, small_model_path, _suite(("s", "t"), "op", str(folder), 1))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: image set "), result.output
    assert str(folder) in lines[0] and fragment in lines[0] and not written and not out.exists()


def test_the_default_run_folder_is_one_short_name_under_runs(tmp_path):
    from ipbench.benchmark.spec import load_suite

    config = tmp_path / "suite.toml"
    config.write_text(_suite(("../../../x", "/etc/" + "y" * 140), "../" + "o" * 140))
    folder = load_suite(config).default_out()
    assert folder.parent == Path("runs") and len(folder.name) <= MAX_NAME_BYTES + 10 and "/" not in folder.name
