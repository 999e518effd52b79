"""`bench submit`: a run's N shards as jobs, through submitit (the optional extra: pip install -e ".[slurm]").

Job K runs `bench run ARGS --shard K/N --out OUT` in the submitting folder: the same run as `bench run ARGS`,
split as `--shard` splits it (shard.py), so the rows and tables do not depend on N or on the executor.
`slurm` submits one job array (sbatch); `local` starts the jobs as processes on this machine through
submitit's LocalExecutor, the same code path, which is what the tests use. submitit keeps each job's
script, logs and pickled result in OUT/submitit/; submit.json records what was submitted, so that
`bench status OUT` knows N. Resubmitting the same command after a crash completes the run: ok rows are
kept, and a shard still running elsewhere refuses to start twice (lock.py).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from ipbench.errors import UsageError, first_line
from ipbench.files import atomic_write_text
from ipbench.json_files import STRING, check_fields, integer, list_of, read_json

EXECUTORS = ("slurm", "local")
SUBMIT_FIELDS = {"jobs": integer(1)}  # what `bench status` reads
SUBMIT_OPTIONAL = {"job_ids": list_of(STRING), "arguments": list_of(STRING), "executor": STRING, "cwd": STRING}
SUBMIT_REMEDY = "it is written by `bench submit`; submit again, or delete it to count the shards from the rows files"


def submitted_jobs(run_dir: Path) -> int | None:
    """N of the shards `bench submit` split the run into (OUT/submit.json), or None if it was not submitted."""
    path = run_dir / "submit.json"
    try:
        record = read_json(path, SUBMIT_REMEDY)
    except FileNotFoundError:
        return None
    check_fields(record, path, SUBMIT_FIELDS, SUBMIT_REMEDY, SUBMIT_OPTIONAL)
    return int(record["jobs"])


@dataclass(frozen=True)
class SubmitOptions:
    """Where and how the jobs run; the resources are per job (one shard each)."""

    executor: str
    jobs: int
    time_min: int = 240
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    parallel: int | None = None  # at most this many array jobs at once (SLURM's %P); None: all


@dataclass(frozen=True)
class Submitted:
    job_ids: list[str]
    folder: Path  # submitit's logs and results
    jobs: list[Any]  # submitit Job objects, to wait on


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UsageError("bench submit needs submitit: pip install -e '.[slurm]' in the ipbench folder "
                         "(or pip install submitit)") from None
    return submitit


def _executor(folder: Path, options: SubmitOptions, gpu: int | None = None) -> Any:
    """A submitit executor for `options`; for local jobs `gpu` pins the job to one visible GPU."""
    submitit = _submitit()
    if options.executor == "local":
        executor = submitit.LocalExecutor(folder=folder)
        extra = {"gpus_per_node": 1, "visible_gpus": [gpu]} if gpu is not None else {}
        executor.update_parameters(timeout_min=options.time_min, **extra)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"timeout_min": options.time_min, "nodes": 1, "tasks_per_node": 1, "name": "ipbench",
                              "slurm_array_parallelism": options.parallel or options.jobs}
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.gpus_per_job:
        params["gpus_per_node"] = options.gpus_per_job
    if options.cpus_per_job:
        params["cpus_per_task"] = options.cpus_per_job
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    executor.update_parameters(**params)
    return executor


def submit_shards(job: Callable[[str, list[str]], Any], run_arguments: Sequence[str], out: Path,
                  options: SubmitOptions) -> Submitted:
    """Submit `job(cwd, run_arguments + ['--shard', 'K/N', '--out', OUT])` for K = 0..N-1 and record it in
    OUT/submit.json. `job` must be importable by name (submitit pickles it by reference)."""
    if options.executor not in EXECUTORS:
        raise UsageError(f"--executor {options.executor}: choose one of {', '.join(EXECUTORS)}")
    if options.jobs < 1:
        raise UsageError(f"--jobs {options.jobs}: must be >= 1")
    missing = [tool for tool in ("sbatch", "srun") if options.executor == "slurm" and shutil.which(tool) is None]
    if missing:
        raise UsageError(f"--executor slurm: {missing[0]} is not on PATH (run bench submit on a SLURM login node, "
                         "or use --executor local)")
    _submitit()  # a missing extra is named before anything is written
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "submitit"
    cwd = os.getcwd()
    arguments = [[*run_arguments, "--shard", f"{k}/{options.jobs}", "--out", str(out), "--no-progress"]
                 for k in range(options.jobs)]
    try:
        if options.executor == "slurm":
            jobs = _executor(folder, options).map_array(job, [cwd] * options.jobs, arguments)
        else:
            gpus = _local_gpus() if options.gpus_per_job else 0
            jobs = [_executor(folder, options, k % gpus if gpus else None).submit(job, cwd, a)
                    for k, a in enumerate(arguments)]
    except Exception as exc:  # submitit's FailedJobError and the like: sbatch refused the job
        if type(exc).__module__.startswith("submitit"):
            raise UsageError(f"--executor {options.executor}: submission refused: {first_line(exc)}") from None
        raise
    ids = [str(j.job_id) for j in jobs]
    record = {"submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"), **asdict(options),
              "job_ids": ids, "arguments": list(run_arguments), "cwd": cwd}
    atomic_write_text(out / "submit.json", json.dumps(record, indent=2) + "\n")
    return Submitted(ids, folder, jobs)


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def wait(submitted: Submitted) -> list[str]:
    """Wait for every job; one line per failed job (its error and where its log is)."""
    problems = []
    for job in submitted.jobs:
        try:
            job.result()
        except Exception as exc:  # submitit's error holds the job's traceback, then where its logs are
            trace = str(exc).split("You can check full logs", 1)[0]
            lines = [line.strip() for line in trace.splitlines() if line.strip().strip("-")]
            problems.append(f"job {job.job_id} failed: {lines[-1] if lines else type(exc).__name__} "
                            f"(log: {job.paths.stderr})")
    return problems
