"""Disk faults: a run that cannot write stops with one line and exit 2, keeps what it wrote, and the same
command then resumes to complete, valid files (no partial PNG under its final name)."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_png
from ipbench import files


def _run(out: Path, model: Path) -> object:
    return CliRunner().invoke(cli, ["run", "--solver", "tweedie", "--solver", "hole-fill", "--op", "inpaint", "--model",
                                    str(model), "--images", "photos", "--num-images", "4", "--batch-size", "2",
                                    "--out", str(out), "--no-progress"])


def test_a_full_disk_stops_the_run_cleanly_and_the_rerun_completes_it(tmp_path, small_model_path, monkeypatch):
    out = tmp_path / "run"
    real_replace, calls = os.replace, {"n": 0}

    def full_after_ten(src, dst):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", full_after_ten)
    broken = _run(out, small_model_path)
    assert broken.exit_code == 2, broken.output
    assert "writing failed (OSError: [Errno 28] No space left on device)" in broken.output
    lines = broken.output.strip().splitlines()  # the run's notes on what it runs, then the error
    assert "Traceback" not in broken.output and lines[-1].startswith("Error: ") and sum("Error" in x for x in lines) == 1
    assert not list(out.rglob("*.partial")), "a partial file was left behind"
    monkeypatch.setattr(files.os, "replace", real_replace)

    resumed = _run(out, small_model_path)
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == len({(r["solver"], r["image"]) for r in rows}) == 8
    assert all(r["status"] == "ok" for r in rows)
    for png in out.joinpath("images").rglob("*.png"):
        assert load_png(png).numel() > 0, png  # every image on disk is whole
    assert len(list(out.joinpath("images").rglob("*.png"))) == 4 + 4 + 8  # truth, measurement, 2 solvers


def test_out_naming_a_file_is_a_one_line_error(tmp_path, small_model_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    result = _run(target, small_model_path)
    assert result.exit_code == 2 and "is a file, not a folder" in result.output, result.output
    assert target.read_text() == "not a folder"


def test_an_unwritable_folder_is_a_one_line_error(tmp_path, small_model_path, monkeypatch):
    """Root ignores permission bits, so a refused mkdir is injected the way a read-only folder refuses it."""
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = _run(tmp_path / "run", small_model_path)
    assert result.exit_code == 2 and "writing failed (PermissionError" in result.output, result.output


def _finished_run(tmp_path: Path, model: Path) -> Path:
    out = tmp_path / "run"
    assert _run(out, model).exit_code == 0
    return out


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert fragment in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_table_and_grid_on_damaged_folders_are_one_line_errors(tmp_path, small_model_path):
    out = _finished_run(tmp_path, small_model_path)
    meta = (out / "run.json").read_text()
    (out / "run.json").write_text(meta[: len(meta) // 2])
    for command in ("table", "grid"):
        _one_line_error(CliRunner().invoke(cli, [command, str(out)]), "run.json: damaged, not readable JSON")
    (out / "run.json").write_text('{"something": "else"}')
    _one_line_error(CliRunner().invoke(cli, ["table", str(out)]), "run.json: has no config;")
    (out / "run.json").write_text(meta)
    (out / "rows.jsonl").write_text('{"epoch": 1, "loss": 0.3}\n')
    _one_line_error(CliRunner().invoke(cli, ["table", str(out)]), "rows.jsonl, line 1: not an ipbench row")
    _one_line_error(CliRunner().invoke(cli, ["table", str(tmp_path / "nowhere")]), "not a run folder (no run.json)")


def test_grid_without_images_says_so(tmp_path, small_model_path):
    out = _finished_run(tmp_path, small_model_path)
    import shutil

    shutil.rmtree(out / "images")
    _one_line_error(CliRunner().invoke(cli, ["grid", str(out)]), "no images to show")


def test_table_of_a_run_without_rows_says_so(tmp_path, small_model_path):
    out = _finished_run(tmp_path, small_model_path)
    (out / "rows.jsonl").unlink()
    result = CliRunner().invoke(cli, ["table", str(out)])
    assert result.exit_code == 0 and "(no rows yet)" in result.output


def test_a_changed_image_is_refused_and_a_new_one_joins_run_json(tmp_path, small_model_path):
    from ipbench.data import save_png

    images = tmp_path / "images"
    for i in range(2):
        save_png(torch.full((3, 32, 32), 0.2 + 0.3 * i), images / f"{i}.png")
    args = ["run", "--solver", "hole-fill", "--op", "denoise", "--model", str(small_model_path), "--images", str(images),
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    save_png(torch.full((3, 32, 32), 0.9), images / "2.png")  # a new image: computed, and listed in run.json
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "rows: 1 new, 2 already done" in again.output, again.output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["images"]["ids"] == ["0", "1", "2"] and set(meta["images"]["sha256"]) == {"0", "1", "2"}
    save_png(torch.full((3, 32, 32), 0.7), images / "1.png")  # same name, other content: refused
    changed = CliRunner().invoke(cli, args)
    assert changed.exit_code == 2 and "image '1' differs from the one its rows were computed on" in changed.output


def test_failed_rows_are_retried_by_a_rerun(tmp_path, small_model_path):
    from tests.plugins import flaky_solvers

    args = ["run", "--solver", "interruptible", "--op", "denoise", "--model", str(small_model_path), "--images",
            "photos", "--num-images", "2", "--out", str(tmp_path / "run"), "--no-progress"]
    rows_file = tmp_path / "run" / "rows.jsonl"
    assert CliRunner().invoke(cli, args).exit_code == 0
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    rows[0].update(status="failed", error="RuntimeError: out of memory", psnr=float("nan"))
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))  # as if the first image had failed
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "rows: 1 new (1 of them failed before and were retried)" in again.output
    table = CliRunner().invoke(cli, ["table", str(tmp_path / "run")])
    assert "n (failed)" not in table.output  # the retry's ok row supersedes the failed one
    assert flaky_solvers.INTERRUPT_AFTER["calls"] is None
