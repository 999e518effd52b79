"""Running on cluster engines: shards from torchrun / SLURM variables, bench submit (submitit), bench status,
and one writer per rows file (benchmark/shard.py, submit.py, status.py, lock.py)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipbench.benchmark.lock import RowsLock, lock_path
from ipbench.benchmark.shard import Shard, shard_from_environment
from ipbench.benchmark.status import run_status
from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.results.rows import RowStore, run_rows
from tests.processes import live_process, wait_for

ROOT = Path(__file__).resolve().parents[1]
# Cheap solvers on a few images: what is tested is where rows go, not what they hold.
RUN = ["--solver", "tweedie", "--solver", "hole-fill", "--op", "denoise", "--op", "inpaint", "--num-images", "5",
       "--no-progress"]


# --- shards from the environment -------------------------------------------------------------------------

def test_torchrun_gives_rank_of_world_size_and_the_local_rank():
    launched = shard_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert launched.shard == Shard(3, 4) and launched.local_rank == 1 and "torchrun" in launched.source


def test_a_slurm_array_counts_from_its_first_task_and_step():
    env = {"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2",
           "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert shard_from_environment(env).shard == Shard(2, 4)
    with pytest.raises(UsageError, match="--array=0-3"):
        shard_from_environment({**env, "SLURM_ARRAY_TASK_ID": "15"})  # not on the step


def test_slurm_tasks_and_an_array_of_multi_task_jobs_nest():
    tasks = {"SLURM_PROCID": "2", "SLURM_NTASKS": "3", "SLURM_LOCALID": "0"}
    assert shard_from_environment(tasks).shard == Shard(2, 3)
    both = {**tasks, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    assert shard_from_environment(both).shard == Shard(1 * 3 + 2, 6)
    # torchrun started by srun: RANK already counts every node's processes, so SLURM_PROCID is not added
    nested = {**tasks, "RANK": "5", "WORLD_SIZE": "8"}
    assert shard_from_environment(nested).shard == Shard(5, 8)


def test_one_process_or_no_launcher_is_no_shard_and_bad_values_are_one_line_errors():
    assert shard_from_environment({}) is None
    assert shard_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # plain sbatch job
    with pytest.raises(UsageError, match=r"RANK='x' is not an integer"):
        shard_from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match=r"0\.\.1"):
        shard_from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_shard_auto_without_a_launcher_and_none_with_one(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(cli, ["run", *RUN, "--shard", "auto", "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "--shard auto: no launcher" in refused.output
    ignored = runner.invoke(cli, ["run", *RUN, "--shard", "none", "--out", str(tmp_path / "b")],
                            env={"RANK": "1", "WORLD_SIZE": "2"})
    assert ignored.exit_code == 0, ignored.output
    assert (tmp_path / "b" / "rows.jsonl").exists() and not list((tmp_path / "b").glob("rows.shard-*"))


def metrics(run_dir: Path) -> dict[tuple, tuple]:
    """Every row's metrics by key: what must not depend on how the run was split (up to float32 round-off:
    a batch of 2 and one of 5 go through different convolution kernels)."""
    return {(r["solver"], r["operator"], r["image"], str(r["seed"])):
            (pytest.approx(r["psnr"], rel=1e-6), pytest.approx(r["ssim"], rel=1e-6), pytest.approx(r["lpips"], rel=1e-5),
             r["status"]) for r in run_rows(run_dir)}


def table_metrics(run_dir: Path) -> list[str]:
    """table.md's rows without the timing column (s / image is wall time, different in every run)."""
    lines = [line for line in (run_dir / "table.md").read_text().splitlines() if line.startswith("| ")]
    return ["|".join(cell for i, cell in enumerate(line.split("|")) if i not in (len(line.split("|")) - 3,))
            for line in lines]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    done = CliRunner().invoke(cli, ["run", *RUN, "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


def test_a_simulated_slurm_array_gives_the_unsharded_table(whole_run, tmp_path):
    runner = CliRunner()
    for task in (12, 10, 11):  # an array --array=10-12, tasks finishing in any order
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "3"}
        done = runner.invoke(cli, ["run", *RUN, "--out", str(tmp_path)], env=env)
        assert done.exit_code == 0, done.output
        assert f"shard {task - 10}/3 from SLURM array" in done.output
    assert sorted(p.name for p in tmp_path.glob("rows*.jsonl")) == [f"rows.shard-{k}-of-3.jsonl" for k in range(3)]
    assert metrics(tmp_path) == metrics(whole_run)
    assert table_metrics(tmp_path) == table_metrics(whole_run)


def python_env() -> dict[str, str]:
    """The environment of a child process: this checkout's ipbench, one thread, no launcher variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1"}


def test_torchrun_on_the_cpu_writes_one_folder_with_the_unsharded_table(whole_run, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "ipbench", "run", *RUN, "--shard", "auto", "--out", str(out)],
                          env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "shard 0/2 from torchrun" in done.stderr and "shard 1/2 from torchrun" in done.stderr
    assert metrics(out) == metrics(whole_run)
    assert table_metrics(out) == table_metrics(whole_run)


def test_bench_submit_with_the_local_executor_and_three_jobs(whole_run, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ipbench", "submit", "--jobs", "3", "--executor", "local", *RUN,
                           "--out", str(out)], env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.startswith("submitted 3 jobs (local): ")
    assert "total: 20/20 rows; tables up to date" in done.stdout
    assert json.loads((out / "submit.json").read_text())["jobs"] == 3
    assert metrics(out) == metrics(whole_run)
    assert table_metrics(out) == table_metrics(whole_run)


def test_submit_checks_the_run_arguments_before_submitting(tmp_path):
    runner = CliRunner()
    wrong = runner.invoke(cli, ["submit", "--jobs", "2", "--executor", "local", "--solver", "nope", "--op", "denoise",
                                "--out", str(tmp_path / "x")])
    assert wrong.exit_code == 2 and "nope" in wrong.output and not (tmp_path / "x").exists()
    sharded = runner.invoke(cli, ["submit", "--jobs", "2", "--executor", "local", *RUN, "--shard", "0/2"])
    assert sharded.exit_code == 2 and "bench submit splits the run itself" in sharded.output


def test_submit_to_slurm_writes_one_array_job(tmp_path, monkeypatch):
    """A stand-in sbatch records the script submitit hands it: one array of 4 with the resources asked for."""
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/script.sh\necho Submitted batch job 4242\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit looks for it; the job script calls it
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["submit", "--jobs", "4", "--partition", "gpu", "--gpus-per-job", "1",
                                    "--time", "90", "--parallel", "2", *RUN, "--out", str(out)])
    assert done.exit_code == 0, done.output
    script = (tmp_path / "script.sh").read_text()
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90"):
        assert line in script
    assert "squeue -j 4242" in done.output and json.loads((out / "submit.json").read_text())["jobs"] == 4


def test_submit_to_slurm_without_slurm_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    done = CliRunner().invoke(cli, ["submit", "--jobs", "2", *RUN, "--out", str(tmp_path / "run")])
    assert done.exit_code == 2 and "--executor slurm: sbatch is not on PATH" in done.output
    assert len(done.output.strip().splitlines()) == 1


# --- one writer per rows file ----------------------------------------------------------------------------

def write_lock(rows_file: Path, pid: int, host: str, age: float = 0.0) -> Path:
    path = lock_path(rows_file)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": "2026-01-01T00:00:00+00:00"}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_live_holder_is_named_and_a_dead_or_silent_one_is_taken_over(tmp_path):
    rows = tmp_path / "rows.jsonl"
    with live_process() as holder:
        write_lock(rows, holder, socket.gethostname())
        with pytest.raises(UsageError, match=f"is being written by pid {holder} on {socket.gethostname()}"):
            with RowsLock(rows, "this run"):
                pass
    with RowsLock(rows, "this run"):  # the same pid, now dead: stale
        assert json.loads(lock_path(rows).read_text())["pid"] == os.getpid()
    assert not lock_path(rows).exists()  # released
    write_lock(rows, 1, "elsewhere", age=5.0)  # another host, fresh heartbeat: refused
    with pytest.raises(UsageError, match="pid 1 on elsewhere"):
        with RowsLock(rows, "this run"):
            pass
    write_lock(rows, 1, "elsewhere", age=3600.0)  # another host, silent for an hour: taken over
    with RowsLock(rows, "this run"):
        pass


def shard_images(rows: list[dict], index: int, count: int) -> set[str]:
    ids = list(dict.fromkeys(r["image"] for r in rows))
    return {ids[i] for i in Shard(index, count).positions(len(ids))}


def test_status_counts_rows_per_shard_and_gives_the_time_left_at_the_holders_rate(whole_run, tmp_path):
    """Shard 0 done; shard 1 held by a live process (another pid) that wrote 3 rows in 100 s, 5 to go."""
    runner = CliRunner()
    assert runner.invoke(cli, ["run", *RUN, "--out", str(tmp_path)], env={"RANK": "0", "WORLD_SIZE": "2"}).exit_code == 0
    shard1 = tmp_path / Shard(1, 2).rows_file
    whole = RowStore(whole_run / "rows.jsonl").read()
    RowStore(shard1).append([r for r in whole if r["image"] in shard_images(whole, 1, 2)][:3])
    with live_process() as holder:
        started = time.time() - 100.0
        lock_path(shard1).write_text(json.dumps({
            "host": socket.gethostname(), "pid": holder, "rows_at_start": 0,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started))}))
        first, second = run_status(tmp_path, now=started + 100.0).parts
        printed = runner.invoke(cli, ["status", str(tmp_path)])
    # shard 0 owns images 0, 2, 4 (12 rows), shard 1 images 1, 3 (8 rows)
    assert (first.done, first.expected, first.state) == (12, 12, "done")
    assert (second.done, second.expected, second.state, second.holder["pid"]) == (3, 8, "running", holder)
    assert second.seconds_left == pytest.approx(5 * 100.0 / 3, rel=0.02)
    assert printed.exit_code == 0, printed.output
    assert "shard 1/2: 3/8 rows, 0 failed" in printed.output and f"running by pid {holder}" in printed.output
    assert "total: 15/20 rows; run in progress: tables are written when it finishes" in printed.output
    assert run_status(tmp_path).parts[1].state == "stopped"  # the holder is gone now


GATED = Path(__file__).parent / "plugins" / "gated_solver.py"



def complete_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_a_second_writer_is_refused_and_a_killed_shard_is_completed_by_resubmitting(tmp_path):
    """Two processes on one shard: the second exits 2 naming the first. Then kill -9 the first mid-run and
    submit the whole run again: every row exactly once, the torn or missing ones redone. The first process
    is held mid-run by a solver that waits for a file the test creates (tests/plugins/gated_solver.py): it
    writes its first row and then holds the lock until killed, however slow the machine."""
    pytest.importorskip("submitit")
    out, gate = tmp_path / "run", tmp_path / "gate"
    gated_run = ["--plugin", str(GATED), "--solver", "gated", "--param", f"gated.gate={gate}", "--op", "denoise",
                 "--num-images", "9", "--batch-size", "1", "--no-progress"]
    first = subprocess.Popen([sys.executable, "-m", "ipbench", "run", *gated_run, "--shard", "1/3", "--out", str(out)],
                             env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows_file = out / Shard(1, 3).rows_file
    try:
        wait_for(lambda: complete_lines(rows_file) >= 1 or first.poll() is not None)  # then it waits at the gate
        assert first.poll() is None and complete_lines(rows_file) == 1 and lock_path(rows_file).exists()
        second = subprocess.run([sys.executable, "-m", "ipbench", "run", *gated_run, "--shard", "1/3",
                                 "--out", str(out)], env=python_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        message = second.stderr.strip().splitlines()[-1]
        assert f"shard 1/3 is being written by pid {first.pid} on {socket.gethostname()}" in message
        assert first.poll() is None  # still held at the gate: killed mid-run, not after it finished
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert lock_path(rows_file).exists()  # left behind by the killed process
    assert complete_lines(rows_file) == 1  # one of the shard's 3 rows
    with rows_file.open("a") as f:
        f.write('{"solver": "gated", "operator": "den')  # what a writer killed mid-line leaves
    gate.touch()  # the resubmitted jobs run through
    again = subprocess.run([sys.executable, "-m", "ipbench", "submit", "--jobs", "3", "--executor", "local", *gated_run,
                            "--out", str(out)], env=python_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    keys = Counter((r["solver"], r["operator"], r["image"], str(r["seed"]))
                   for path in out.glob("rows*.jsonl") for r in RowStore(path).read())
    assert len(keys) == 9 and set(keys.values()) == {1}
    assert all(r["status"] == "ok" for r in run_rows(out)) and (out / "table.md").exists()
