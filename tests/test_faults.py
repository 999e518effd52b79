"""Disk faults: a run that cannot write stops with one line and exit 2, keeps what it wrote, and the same
command then resumes to complete, valid files (no partial PNG under its final name)."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_png
from ipbench import files


def _run(out: Path, model: Path) -> object:
    return CliRunner().invoke(cli, ["run", "--solver", "tweedie", "--solver", "blur", "--op", "inpaint", "--model",
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
