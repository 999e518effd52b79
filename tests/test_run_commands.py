"""What bench status, bench submit and bench report conclude about a run folder: a run still being written is
in progress (not "up to date"), a folder of another run is refused before any job is submitted, and a run
given twice to a report is counted once."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipbench.benchmark.lock import lock_path
from ipbench.cli import cli
from tests.processes import live_process
from tests.test_side_files import assert_one_line_error, snapshot

SOLVERS = ["--solver", "tweedie", "--solver", "hole-fill", "--op", "denoise", "--no-progress"]


@pytest.fixture(scope="module")
def model_args(small_model_path: Path) -> list[str]:
    return ["--model", str(small_model_path), "--images", "photos", "--num-images", "2"]


@pytest.fixture(scope="module")
def finished(model_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("commands") / "run"
    done = CliRunner().invoke(cli, ["run", *SOLVERS, *model_args, "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def hold_lock(run_dir: Path, pid: int) -> None:
    lock_path(run_dir / "rows.jsonl").write_text(json.dumps({
        "host": socket.gethostname(), "pid": pid, "rows_at_start": 0,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}))


def age(path: Path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


# --- bench status --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows_newer", [False, True], ids=["tables newer", "rows newer"])
def test_status_says_a_run_being_written_is_in_progress_not_up_to_date(run_dir, rows_newer):
    """Every row done and tables on disk, but a live process holds the lock: it may still add rows (a rerun's
    retries) or be rewriting the tables."""
    age(run_dir / ("table.md" if rows_newer else "rows.jsonl"), 60)
    with live_process() as live_pid:
        hold_lock(run_dir, live_pid)
        printed = CliRunner().invoke(cli, ["status", str(run_dir)])
    assert printed.exit_code == 0, printed.output
    assert "run: 4/4 rows, 0 failed" in printed.output and f"running by pid {live_pid}" in printed.output
    assert "total: 4/4 rows; run in progress: tables are written when it finishes" in printed.output
    assert "up to date" not in printed.output


@pytest.mark.parametrize("state, expected", [
    ("finished", "tables up to date"),
    ("rows newer", "tables older than the rows or missing: bench table RUN"),
    ("no tables", "tables older than the rows or missing: bench table RUN"),
    ("rows missing", "tables not written for all rows yet"),
])
def test_status_without_a_writer_says_whether_the_tables_are_current(run_dir, state, expected):
    rows = run_dir / "rows.jsonl"
    if state == "rows newer":
        age(run_dir / "table.md", 60)
    elif state == "no tables":
        (run_dir / "table.md").unlink()
    elif state == "rows missing":
        rows.write_text("".join(rows.read_text().splitlines(keepends=True)[:3]))
    printed = CliRunner().invoke(cli, ["status", str(run_dir)])
    assert printed.exit_code == 0, printed.output
    assert expected in printed.output.strip().splitlines()[-1], printed.output


# --- bench submit --------------------------------------------------------------------------------------------

OTHER_RUNS = {  # bench run arguments that make another run than the folder's
    "another solver": ["--solver", "tweedie", "--op", "denoise"],
    "another seed": [*SOLVERS, "--seed", "1"],
    "another operator": ["--solver", "tweedie", "--solver", "hole-fill", "--op", "inpaint"],
}


@pytest.mark.parametrize("kind", list(OTHER_RUNS))
def test_submit_into_a_folder_of_another_run_refuses_before_submitting(run_dir, model_args, kind):
    pytest.importorskip("submitit")
    before = snapshot(run_dir)
    result = CliRunner().invoke(cli, ["submit", "--jobs", "2", "--executor", "local", *OTHER_RUNS[kind],
                                      "--no-progress", *model_args, "--out", str(run_dir)])
    assert_one_line_error(result, run_dir, "the folder holds a different run (see its run.json)")
    assert snapshot(run_dir) == before  # no submit.json, no submitit/ folder, no job's rows


def test_submit_into_a_folder_with_a_damaged_run_json_refuses_before_submitting(run_dir, model_args):
    pytest.importorskip("submitit")
    meta = run_dir / "run.json"
    meta.write_text(meta.read_text()[:40])
    before = snapshot(run_dir)
    result = CliRunner().invoke(cli, ["submit", "--jobs", "2", "--executor", "local", *SOLVERS, *model_args,
                                      "--out", str(run_dir)])
    assert_one_line_error(result, meta, "not readable JSON")
    assert snapshot(run_dir) == before


# --- bench report --------------------------------------------------------------------------------------------

def summary_line(output: str) -> str:
    return next(line for line in output.splitlines() if "paired differences" in line)


@pytest.mark.parametrize("spelling", ["same", "trailing slash", "dot segments", "symlink"])
def test_a_run_given_twice_to_report_is_counted_once(finished, tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(finished.parent)
    again = {"same": finished, "trailing slash": f"{finished}/",
             "dot segments": f"./{finished.name}/../{finished.name}", "symlink": tmp_path / "link"}[spelling]
    if spelling == "symlink":
        os.symlink(finished, again)
    runner = CliRunner()
    once = runner.invoke(cli, ["report", str(finished), "--out", str(tmp_path / "once.html"), "--resamples", "200"])
    twice = runner.invoke(cli, ["report", str(finished), str(again), "--out", str(tmp_path / "twice.html"),
                                "--resamples", "200"])
    assert once.exit_code == 0 and twice.exit_code == 0, twice.output
    assert summary_line(twice.stdout) == summary_line(once.stdout) == (
        "0 of 3 paired differences are significant (95% interval leaves out 0 and Wilcoxon p < 0.05); 3 with too few "
        "images for the test to reach p < 0.05")
    assert twice.stderr.strip() == f"warning: {Path(again)} is the run {finished} given again; it is counted once"
    page = (tmp_path / "twice.html").read_text()
    assert page.count("hole-fill (") == (tmp_path / "once.html").read_text().count("hole-fill (")  # no second labels
