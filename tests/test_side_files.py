"""Damaged side files of a run folder (run.json, a rows file's lock, submit.json): every command that reads one
stops with one line naming the file and what is wrong (exit 2, no traceback, nothing written), and a damaged
lock follows the heartbeat rule (refused while fresh, taken over once stale)."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

from ipbench.benchmark.lock import STALE_SECONDS, lock_path
from ipbench.cli import cli

Damage = Callable[[bytes], bytes]


def whole(value: Any) -> Damage:
    """The file replaced by another JSON value."""
    return lambda _: json.dumps(value).encode()


def edit(change: Callable[[dict], None]) -> Damage:
    """One field of the file's JSON object changed (or removed)."""
    def damage(raw: bytes) -> bytes:
        data = json.loads(raw)
        change(data)
        return json.dumps(data).encode()
    return damage


def put(key: str, value: Any) -> Damage:
    """`key` (dotted) set to `value`; `...` removes it."""
    def change(data: dict) -> None:
        *parents, last = key.split(".")
        for part in parents:
            data = data[part]
        if value is ...:
            del data[last]
        else:
            data[last] = value
    return edit(change)


# Damage that any JSON side file can get: the wrong top-level type, a torn copy, bytes that are not UTF-8.
ANY_FILE = {
    "a list": (whole([1, 2]), "not a JSON object"),
    "a string": (whole("run"), "not a JSON object"),
    "null": (whole(None), "not a JSON object"),
    "a number": (whole(3), "not a JSON object"),
    "truncated": (lambda raw: raw[: len(raw) // 2], "not readable JSON"),
    "empty": (lambda raw: b"", "not readable JSON"),
    "not utf-8": (lambda raw: b"\xff\xfe" + raw, "not UTF-8"),
}
RUN_JSON = {
    **ANY_FILE,
    "no config": (put("config", ...), "has no config"),
    "config a list": (put("config", []), "config = []"),
    "seeds empty": (put("config.seeds", []), "config.seeds = []"),
    "seeds strings": (put("config.seeds", ["0"]), "config.seeds"),
    "seeds a number": (put("config.seeds", 0), "config.seeds = 0"),
    "solvers null": (put("config.solvers", None), "config.solvers = null"),
    "solver label a number": (edit(lambda d: d["config"]["solvers"][0].update(label=7)), "config.solvers"),
    "operators not tables": (put("config.operators", ["denoise"]), "config.operators"),
    "solver params a list": (edit(lambda d: d["config"]["solvers"][0].update(params=[])), "config.solvers"),
    "solver without params": (edit(lambda d: d["config"]["solvers"][0].pop("params")), "config.solvers"),
    "operator params a string": (edit(lambda d: d["config"]["operators"][0].update(params="x")), "config.operators"),
    "model a string": (put("config.model", 3), "config.model = 3"),
    "image ids numbers": (put("images.ids", [1, 2]), "images.ids = [1, 2]"),
    "no image ids": (put("images.ids", ...), "has no images.ids"),
    "image shape short": (put("model.image_shape", [3, 32]), "model.image_shape"),
    "image shape a bool": (put("model.image_shape", [3, True, 32]), "model.image_shape"),
    "hashes a list": (put("images.sha256", ["x"]), "images.sha256"),
    "conventions a list": (put("conventions", []), "conventions = []"),
    "metric summary numbers": (put("conventions.metric_summary", {"psnr": 1}), "conventions.metric_summary"),
    "versions a string": (put("versions", "torch"), "versions"),
}
LOCK = {
    **ANY_FILE,
    "pid a list": (put("pid", [1]), "pid = [1]"),
    "pid a string": (put("pid", "123"), "pid = \"123\""),
    "pid null": (put("pid", None), "pid = null"),
    "pid too large for a C long": (put("pid", 2**70), f"pid = {2**70}"),
    "pid negative": (put("pid", -5), "pid = -5"),
    "pid zero": (put("pid", 0), "pid = 0"),
    "pid a bool": (put("pid", True), "pid = true"),
    "pid a float": (put("pid", 12.5), "pid = 12.5"),
    "no pid": (put("pid", ...), "has no pid"),
    "host a number": (put("host", 4), "host = 4"),
    "rows at start a string": (put("rows_at_start", "3"), "rows_at_start"),
    "rows at start negative": (put("rows_at_start", -1), "rows_at_start = -1"),
}
SUBMIT_JSON = {
    **ANY_FILE,
    "jobs a string": (put("jobs", "3"), "jobs = \"3\""),
    "jobs zero": (put("jobs", 0), "jobs = 0"),
    "jobs negative": (put("jobs", -2), "jobs = -2"),
    "jobs a float": (put("jobs", 2.5), "jobs = 2.5"),
    "jobs a bool": (put("jobs", True), "jobs = true"),
    "jobs null": (put("jobs", None), "jobs = null"),
    "no jobs": (put("jobs", ...), "has no jobs"),
    "job ids a string": (put("job_ids", "1 2"), "job_ids"),
}
READERS = ["table", "grid", "report", "status", "run"]  # every command that reads run.json


@pytest.fixture(scope="module")
def run_args(small_model_path: Path) -> list[str]:
    return ["--solver", "tweedie", "--op", "denoise", "--model", str(small_model_path), "--images", "photos",
            "--num-images", "2", "--no-progress"]


@pytest.fixture(scope="module")
def finished(run_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("side-files") / "run"
    done = CliRunner().invoke(cli, ["run", *run_args, "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    """A fresh copy of the finished run, to damage."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def invoke(command: str, run_dir: Path, run_args: list[str]) -> Result:
    args = ["run", *run_args, "--out", str(run_dir)] if command == "run" else [command, str(run_dir)]
    return CliRunner().invoke(cli, args)


def assert_one_line_error(result: Result, path: Path, fragment: str, notes_allowed: bool = False) -> None:
    """Exit 2, no traceback, and one `Error:` line, the last, naming `path` and saying `fragment`; `bench run`
    prints what it runs first (notes_allowed), every other command nothing else."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert sum(line.startswith("Error:") for line in lines) == 1 and lines[-1].startswith("Error: "), result.output
    assert notes_allowed or len(lines) == 1, result.output
    assert str(path) in lines[-1] and fragment in lines[-1], lines[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("kind", list(RUN_JSON))
def test_a_damaged_run_json_is_one_line_naming_it_in_every_command(run_dir, run_args, command, kind):
    damage, fragment = RUN_JSON[kind]
    meta = run_dir / "run.json"
    meta.write_bytes(damage(meta.read_bytes()))
    before = snapshot(run_dir)
    result = invoke(command, run_dir, run_args)
    assert_one_line_error(result, meta, fragment, notes_allowed=command == "run")
    assert snapshot(run_dir) == before  # nothing written: no rows, tables, grids or page


def write_damaged_lock(run_dir: Path, damage: Damage, age: float) -> Path:
    path = lock_path(run_dir / "rows.jsonl")
    good = {"host": "elsewhere", "pid": 4242, "started": "2026-01-01T00:00:00+00:00", "rows_at_start": 0}
    path.write_bytes(damage(json.dumps(good).encode()))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


@pytest.mark.parametrize("command", ["status", "run"])
@pytest.mark.parametrize("kind", list(LOCK))
def test_a_fresh_damaged_lock_is_one_line_naming_it(run_dir, run_args, command, kind):
    """A lock ipbench did not write, with a fresh heartbeat: nobody can tell whether its writer is alive."""
    damage, fragment = LOCK[kind]
    lock = write_damaged_lock(run_dir, damage, age=5.0)
    before = snapshot(run_dir)
    result = invoke(command, run_dir, run_args)
    assert_one_line_error(result, lock, fragment, notes_allowed=command == "run")
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("command", ["status", "run"])
@pytest.mark.parametrize("kind", list(LOCK))
def test_a_stale_damaged_lock_is_taken_over_by_the_heartbeat_rule(run_dir, run_args, command, kind):
    lock = write_damaged_lock(run_dir, LOCK[kind][0], age=STALE_SECONDS + 60)
    result = invoke(command, run_dir, run_args)
    assert result.exit_code == 0, result.output
    if command == "status":
        assert "run: 2/2 rows, 0 failed" in result.output and "; done" in result.output
        assert "in progress" not in result.output
    else:
        assert "rows: 0 new, 2 already done" in result.output
        assert not lock.exists()  # taken over, then released


@pytest.mark.parametrize("kind", list(SUBMIT_JSON))
def test_a_damaged_submit_json_is_one_line_naming_it_in_status(run_dir, kind):
    damage, fragment = SUBMIT_JSON[kind]
    record = {"submitted": "2026-01-01T00:00:00+00:00", "executor": "local", "jobs": 2, "job_ids": ["1", "2"],
              "arguments": ["--solver", "tweedie"], "cwd": str(run_dir)}
    submitted = run_dir / "submit.json"
    submitted.write_bytes(damage(json.dumps(record).encode()))
    assert_one_line_error(CliRunner().invoke(cli, ["status", str(run_dir)]), submitted, fragment)


def test_the_undamaged_files_still_read(run_dir, run_args):
    """The schemas accept what `bench run` and `bench submit` write (the damage above is all that fails)."""
    record = {"submitted": "2026-01-01T00:00:00+00:00", "executor": "local", "jobs": 1, "job_ids": ["1"],
              "arguments": ["--solver", "tweedie"], "cwd": str(run_dir)}
    (run_dir / "submit.json").write_text(json.dumps(record))
    for command in READERS:
        result = invoke(command, run_dir, run_args)
        assert result.exit_code == 0, (command, result.output)


@pytest.mark.parametrize("command", READERS)
def test_a_rows_file_that_is_not_utf8_is_one_line_naming_it(run_dir, run_args, command):
    rows = run_dir / "rows.jsonl"
    rows.write_bytes(rows.read_bytes() + b'{"solver": "\xff"}\n')
    before = snapshot(run_dir)
    assert_one_line_error(invoke(command, run_dir, run_args), rows, "not UTF-8", notes_allowed=command == "run")
    assert snapshot(run_dir) == before
