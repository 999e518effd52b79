"""The `bench` command line: run, list, table, grid."""
from __future__ import annotations

import dataclasses
import shlex
import sys
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from ipbench.errors import UsageError, first_line
from ipbench.paths import check_current_folder, expand_user
from ipbench.results.metric_registry import DEFAULT_METRICS, METRICS
from ipbench.tuning.options import DEFAULT_NUM_IMAGES as TUNE_NUM_IMAGES, DEFAULT_RUNGS as TUNE_RUNGS
from ipbench.tuning.options import OBJECTIVES as TUNE_OBJECTIVES, PRUNERS as TUNE_PRUNERS


class BenchError(click.ClickException):
    """A user mistake, shown as one line `Error: ...` with exit code 2."""

    exit_code = 2


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn UsageError, and an OSError from reading or writing a file, into a one-line error (no traceback)
    with exit code 2."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise BenchError(str(exc)) from None
        except OSError as exc:  # a file or folder that cannot be read or written: the user's to fix
            where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
            raise BenchError(f"{where + ': ' if where else ''}{exc.strerror or first_line(exc)}") from None

    return wrapper


def _load_plugins(plugins: tuple[str, ...]) -> None:
    from ipbench.plugins import load_entry_point_plugins, load_plugin_file

    load_entry_point_plugins()
    for path in plugins:
        load_plugin_file(path)


def _retried(result: Any) -> str:
    return f" ({result.retried} of them failed before and were retried)" if result.retried else ""


def _command_line() -> str | None:
    """The command as typed, for the run's records: `bench ...`, or `python -m ipbench ...` (also what torchrun
    -m ipbench starts); None when the CLI is called from other code."""
    if not sys.argv:
        return None
    program = Path(sys.argv[0])
    if program.name == "bench":
        return shlex.join(["bench", *sys.argv[1:]])
    if program.name == "__main__.py" and program.parent.name == "ipbench":
        return shlex.join(["python", "-m", "ipbench", *sys.argv[1:]])
    return None


def _run_folder(path: str) -> Path:
    """A run folder whose run.json is readable; a one-line UsageError otherwise."""
    from ipbench.results.rows import read_run_json

    read_run_json(path)
    return Path(path)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """click's own mistakes (an unknown option or command, a value outside an option's type) as one line
    `Error: bench run: No such option '--solverr'. Did you mean '--solver'? (bench run --help)`, instead of
    click's usage, hint and error on four lines."""
    try:
        yield
    except click.UsageError as exc:
        if exc.ctx is None:  # already one line
            raise
        where = exc.ctx.command_path
        one_line = click.UsageError(f"{where}: {' '.join(exc.format_message().split())} ({where} --help)")
        one_line.exit_code = exc.exit_code
        raise one_line from None


class BenchGroup(click.Group):
    """The `bench` group: parsing errors of the group and of every command are one line (see above)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@click.group(cls=BenchGroup, help="ipbench: benchmark diffusion-prior solvers of imaging inverse problems.")
@click.version_option(package_name="ipbench", prog_name="bench", message="%(prog)s (ipbench) %(version)s")
def cli() -> None:
    try:  # before any command imports torch, whose libraries fail to load from a deleted folder
        check_current_folder()
    except UsageError as exc:
        raise BenchError(str(exc)) from None


def _user_path(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
    """Click callback of path options (and of names that may be paths): a leading `~` or `~user` expanded,
    an unknown user one line; names and other values unchanged."""
    def expanded(text: Any) -> Any:
        if not isinstance(text, str) or not text.startswith("~"):
            return text
        try:
            return str(expand_user(text, parameter.opts[0] if isinstance(parameter, click.Option) else
                                   parameter.human_readable_name))
        except UsageError as exc:
            raise BenchError(str(exc)) from None

    return tuple(map(expanded, value)) if isinstance(value, tuple) else expanded(value)


plugin_option = click.option("--plugin", "plugins", multiple=True, metavar="FILE.py", callback=_user_path,
                             help="Python file that registers solvers/operators/models (repeatable).")
device_option = click.option("--device", default="auto", show_default=True,
                              help="auto (CUDA if available), cpu, cuda, cuda:1, mps where present; anything "
                                   "else is refused with the choices this machine has.")
EXTRA_METRICS = ", ".join(name for name in METRICS if name not in DEFAULT_METRICS)


@cli.command("run")
@click.option("--solver", "solvers", multiple=True, metavar="NAME", help="Solver to run (repeatable).")
@click.option("--op", "operators", multiple=True, metavar="NAME", help="Operator to measure with (repeatable).")
@click.option("--model", default=None, metavar="NAME|NAME:PATH|FILE", callback=_user_path,
              help="Score model: a registered name, NAME:PATH (ffhq256:, imagenet256:, imagenet256-cond:, diffusers:) "
                   "or an ipbench checkpoint [default: fashion32].")
@click.option("--images", default=None, metavar="SET|DIR", callback=_user_path,
              help="Image set name or folder [default: the model's]. Files of another size or mode than the "
                   "model's are centre-cropped, resized and converted, which the run prints and run.json records.")
@click.option("--num-images", type=click.IntRange(min=1), default=None, help="Use the first N images.")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed (repeatable) [default: 0].")
@click.option("--param", "params", multiple=True, metavar="[TARGET.]NAME=VALUE",
              help="Set a solver/operator parameter, e.g. tweedie.t=100 or sigma_y=0.05 (repeatable).")
@click.option("--preset", default=None, metavar="NAME",
              help="Every solver's published per-task settings for each operator: paper (docs/solvers.md), or none; "
                   "over a suite's presets, under its explicit values and --param.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per solver call (results do not depend on it).")
@device_option
@click.option("--out", default=None, metavar="DIR", callback=_user_path,
              help="Run folder [default: runs/<solvers>_<ops>_<hash>]; not the --images folder.")
@click.option("--config", default=None, metavar="SUITE.toml", callback=_user_path,
              help="Run a TOML suite (solvers, operators, ...).")
@click.option("--max-grid-images", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images (rows) per grid-<op>.png.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help=f"An extra metric beside PSNR, SSIM and LPIPS (AlexNet), repeatable: {EXTRA_METRICS}.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None,
              help="Score-network precision [default: fp32]; bf16 autocasts the network only.")
@click.option("--seeding", type=click.Choice(["independent", "common"]), default=None,
              help="Solver draws [default: independent]: common gives every solver the same noise stream (the same "
                   "x_T) per image, operator and seed, so paired differences between solvers are less noisy.")
@click.option("--samples", type=click.IntRange(1, 64), default=None, metavar="K",
              help="Posterior draws per image, operator and seed [default: 1], the measurement held fixed: rows per "
                   "draw, and per measurement the sample mean's metrics, the spread and a best-of-K oracle "
                   "(deterministic solvers run once).")
@click.option("--condition", type=click.Choice(["true", "wrong", "none"]), default=None,
              help="A class-conditional model's class: each image's own (true), another (wrong: a misspecified prior, "
                   "drawn per image and seed), or none (its unconditional half).")
@click.option("--guidance", type=float, default=None, metavar="W",
              help="With --condition: classifier-free guidance scale [default: 1, the conditional model].")
@click.option("--channels-last", is_flag=True, help="channels_last memory format for the score network.")
@click.option("--tf32", is_flag=True, help="Allow TF32 matmuls/convolutions during the run.")
@click.option("--compile", "compile_network", is_flag=True, help="torch.compile the score network.")
@click.option("--cuda-graphs", is_flag=True,
              help="torch.compile the network in reduce-overhead mode: CUDA graphs replace its kernel launches.")
@click.option("--layout-opt", is_flag=True,
              help="torch.compile with inductor's channels_last layout forced on (experimental; implies --compile).")
@click.option("--fast", is_flag=True,
              help="On CUDA: the fastest measured setting, bf16 + channels_last + CUDA graphs "
                   "(results/gpu_speed.md). No effect on CPU.")
@click.option("--shard", default=None, metavar="K/N|auto|none",
              help="Run only shard K of N (0-based; image i goes to shard i mod N) into the same --out, e.g. one "
                   "process per GPU; `bench table DIR` merges the shards. auto: K/N from torchrun (RANK, "
                   "WORLD_SIZE), a SLURM array or SLURM tasks, which is also the default where they are set; "
                   "none: ignore them.")
@click.option("--trace", type=click.IntRange(min=1), default=None, metavar="K",
              help="Save every K-th x0_hat of the first images' solves as strips (trace-<op>.png).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
@plugin_option
@user_errors
def run_command(solvers: tuple[str, ...], operators: tuple[str, ...], model: str | None, images: str | None,
                num_images: int | None, seeds: tuple[int, ...], params: tuple[str, ...], preset: str | None,
                batch_size: int, device: str,
                out: str | None, config: str | None, max_grid_images: int, precision: str | None, channels_last: bool,
                metrics: tuple[str, ...], seeding: str | None, samples: int | None, condition: str | None,
                guidance: float | None, tf32: bool, compile_network: bool, cuda_graphs: bool,
                layout_opt: bool, fast: bool, shard: str | None, trace: int | None, progress: bool,
                plugins: tuple[str, ...]) -> None:
    """Run solvers x operators x images x seeds; write rows.jsonl, run.json, tables and grids."""
    _load_plugins(plugins)
    from ipbench.benchmark.runner import run
    from ipbench.benchmark.spec import make_spec
    from ipbench.device import resolve_device
    from ipbench.models.acceleration import Acceleration
    from ipbench.results.grid import write_grids
    from ipbench.results.metric_registry import metric_names
    from ipbench.results.table import write_tables

    part, device = _shard_and_device(shard, device)
    spec = make_spec(config, list(solvers), list(operators), list(params), preset, model=model, images=images,
                     num_images=num_images, seeds=list(seeds) or None, precision=precision,
                     metrics=metric_names(metrics, "--metric") if metrics else None, seeding=seeding,
                     samples=samples, condition=condition, guidance=guidance)
    acceleration = Acceleration(channels_last=channels_last, compile=compile_network, tf32=tf32,
                                cuda_graphs=cuda_graphs, layout_opt=layout_opt, fast=fast)
    result = run(spec, out=out, batch_size=batch_size, device=resolve_device(device), acceleration=acceleration,
                 shard=part, command=_command_line(), progress=progress, log=lambda line: click.echo(line, err=True),
                 trace=trace)
    if result.run_missing:  # a shard that finished before the others: the tables wait for the whole run
        click.echo(f"rows: {result.rows_written} new{_retried(result)}, {result.rows_skipped} already done, "
                   f"{result.failed} failed; "
                   f"{result.run_missing} rows of the run are still to come from the other shards")
        click.echo(f"run folder: {result.out}  (when every shard has finished: bench table {result.out}; "
                   f"bench grid {result.out})")
        return
    click.echo(write_tables(result.out, device=result.device))
    grids = write_grids(result.out, max_images=max_grid_images)
    click.echo(f"rows: {result.rows_written} new{_retried(result)}, {result.rows_skipped} already done, "
               f"{result.failed} failed")
    click.echo(f"run folder: {result.out}  ({', '.join(_rows_files(result.out))}, run.json, table.md/.csv/.tex, "
               f"{', '.join(g.name for g in grids)}; bench report {result.out} for one HTML page with plots and "
               "paired statistics)")


def _rows_files(out: Path) -> list[str]:
    """The rows files a run folder has: rows.jsonl, or one rows.shard-K-of-N.jsonl per shard."""
    from ipbench.results.rows import ROW_FILES

    return sorted(path.name for path in out.glob(ROW_FILES))


def _shard_and_device(shard: str | None, device: str) -> tuple[Any, str]:
    """--shard as given, or from the launcher's environment (printed); with --device auto and a launcher
    that numbers the processes on a node (LOCAL_RANK, SLURM_LOCALID), that process's GPU."""
    import os

    from ipbench.benchmark.shard import LAUNCHER_VARIABLES, Shard, shard_from_environment

    if shard is not None and shard.strip().lower() == "none":
        return None, device
    if shard is not None and shard.strip().lower() != "auto":
        return Shard.parse(shard), device
    launched = shard_from_environment(os.environ)
    if launched is None:
        if shard is not None:
            raise UsageError(f"--shard auto: no launcher describes more than one process here (none of "
                             f"{', '.join(LAUNCHER_VARIABLES[:2])}, SLURM_ARRAY_TASK_ID/COUNT, SLURM_PROCID/NTASKS "
                             "gives N > 1); give --shard K/N")
        return None, device
    click.echo(f"shard {launched.shard} from {launched.source}", err=True)
    if device == "auto" and launched.local_rank is not None:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{launched.local_rank % torch.cuda.device_count()}"
    return launched.shard, device


@cli.command("tune")
@click.option("--solver", "solvers", multiple=True, metavar="NAME", help="Solver to tune (repeatable).")
@click.option("--op", "operators", multiple=True, metavar="NAME",
              help="Operator to tune on (repeatable); one study per (solver, operator).")
@click.option("--config", default=None, metavar="SUITE.toml", callback=_user_path,
              help="Tune every (solver, operator) pair of a suite (its labels and fixed parameters kept).")
@click.option("--images", default=None, metavar="SET|DIR", callback=_user_path,
              help="Tuning images [default: the validation split of the model's default set, e.g. fashion32-val]; "
                   "tuned.toml evaluates on the test split of the same origin.")
@click.option("--num-images", type=click.IntRange(min=1), default=TUNE_NUM_IMAGES, show_default=True,
              help="Tune on the first N images.")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed of measurements and solver draws (repeatable) "
                                                              "[default: 0].")
@click.option("--budget", type=click.IntRange(min=1), required=True,
              help="Trials per (solver, operator), the same for every pair; a rerun goes on to it.")
@click.option("--objective", type=click.Choice(TUNE_OBJECTIVES), default="psnr", show_default=True,
              help="Metric to optimise: the mean over images of each image's mean over seeds.")
@click.option("--space", "space", multiple=True, metavar="[SOLVER.]FIELD=LOW:HIGH[:log]",
              help="Search FIELD in [LOW, HIGH] (log scale with :log) instead of its declared range, or FIELD=A,B for "
                   "choices (repeatable); bench list shows each solver's declared space.")
@click.option("--param", "params", multiple=True, metavar="[TARGET.]NAME=VALUE",
              help="Fix a solver or operator parameter, as in bench run (a fixed field is not tuned).")
@click.option("--sampler-seed", type=int, default=0, show_default=True, help="Seed of the TPE sampler.")
@click.option("--pruner", type=click.Choice(TUNE_PRUNERS), default="median", show_default=True,
              help="Stop weak trials after a rung of images: the median rule, successive halving, or none.")
@click.option("--rungs", type=click.IntRange(min=1), default=TUNE_RUNGS, show_default=True,
              help="Rungs of images per trial (about M/4, M/2, M for 3); 1: no pruning.")
@click.option("--model", default=None, metavar="NAME|NAME:PATH|FILE", callback=_user_path,
              help="Score model [default: fashion32].")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per solver call (results do not depend on it).")
@device_option
@click.option("--out", default=None, metavar="DIR", callback=_user_path,
              help="Tune folder [default: runs/tune_<solvers>_<ops>_<hash>]; rerun to resume, or start more "
                   "workers on it: they share its studies.")
@click.option("--shard", default=None, metavar="K/N|auto|none",
              help="This worker's place among several on one --out (under torchrun or SLURM taken from the "
                   "launcher, which also picks its GPU); workers share trials, not images.")
@plugin_option
@user_errors
def tune_command(solvers: tuple[str, ...], operators: tuple[str, ...], config: str | None, images: str | None,
                 num_images: int, seeds: tuple[int, ...], budget: int, objective: str, space: tuple[str, ...],
                 params: tuple[str, ...], sampler_seed: int, pruner: str, rungs: int, model: str | None,
                 batch_size: int, device: str, out: str | None, shard: str | None, plugins: tuple[str, ...]) -> None:
    """Tune solvers' parameters per operator with the same budget for each (Optuna TPE, seeded, with pruning);
    writes DIR/tuned.toml (a suite for bench run --config), summary.md and trials.jsonl."""
    from ipbench.tuning.study import require_optuna

    require_optuna()
    _load_plugins(plugins)
    from ipbench.device import resolve_device
    from ipbench.tuning.engine import tune
    from ipbench.tuning.options import TuneOptions
    from ipbench.tuning.summary import SUMMARY_FILE

    worker, device = _shard_and_device(shard, device)
    options = TuneOptions(budget=budget, solvers=list(solvers), operators=list(operators), params=list(params),
                          config=config, images=images, num_images=num_images, seeds=list(seeds) or None,
                          objective=objective, space=list(space), out=out, model=model, batch_size=batch_size,
                          sampler_seed=sampler_seed, pruner=pruner, rungs=rungs, command=_command_line())
    if worker is not None:
        click.echo(f"worker {worker}: sharing the studies of --out with the other workers", err=True)
    result = tune(options, resolve_device(device), log=lambda line: click.echo(line, err=True))
    click.echo((result.out / SUMMARY_FILE).read_text())
    if result.complete:
        click.echo(f"tune folder: {result.out}  (tuned.toml, summary.md, trials.jsonl, study.sqlite3, trials/); "
                   f"next: bench run --config {result.out / 'tuned.toml'}; bench report {result.out}")
    else:
        click.echo(f"tune folder: {result.out}: {result.waiting_for} trials are still running in other workers; "
                   "the last worker to finish writes tuned.toml")


@cli.command("submit", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--jobs", type=click.IntRange(min=1), required=True, help="Number of shards, one job each.")
@click.option("--executor", type=click.Choice(["slurm", "local"]), default="slurm", show_default=True,
              help="slurm: one sbatch job array; local: processes on this machine (same code path).")
@click.option("--partition", default=None, help="SLURM partition.")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=0, show_default=True, help="GPUs per job.")
@click.option("--cpus-per-job", type=click.IntRange(min=1), default=None,
              help="CPU cores per job [default: the executor's].")
@click.option("--mem-gb", type=click.FloatRange(min=0, min_open=True), default=None, help="Memory per job, GB.")
@click.option("--time", "time_min", type=click.IntRange(min=1), default=240, show_default=True,
              help="Time limit per job, minutes.")
@click.option("--parallel", type=click.IntRange(min=1), default=None,
              help="At most this many jobs of the array at once [default: all].")
@click.option("--wait/--no-wait", default=None,
              help="Wait for the jobs and report [default: wait for local, return for slurm].")
@click.argument("run_arguments", nargs=-1, type=click.UNPROCESSED)
@user_errors
def submit_command(jobs: int, executor: str, partition: str | None, gpus_per_job: int, cpus_per_job: int | None,
                   mem_gb: float | None, time_min: int, parallel: int | None, wait: bool | None,
                   run_arguments: tuple[str, ...]) -> None:
    """Submit `bench run RUN_ARGUMENTS` as JOBS shards (submitit: pip install -e ".[slurm]").

    Every argument that is not one of the options above goes to `bench run`, e.g.
    bench submit --jobs 8 --partition gpu --gpus-per-job 1 --config configs/dps-ffhq.toml --out runs/dps-ffhq
    """
    from ipbench.benchmark.submit import SubmitOptions, submit_shards, wait as wait_for

    arguments, out = _checked_run_arguments(list(run_arguments))
    options = SubmitOptions(executor, jobs, time_min, partition, gpus_per_job, cpus_per_job, mem_gb, parallel)
    submitted = submit_shards(_run_submitted_shard, arguments, out, options)
    click.echo(f"submitted {jobs} job{'s' if jobs > 1 else ''} ({executor}): {', '.join(submitted.job_ids)}")
    click.echo(f"run folder: {out}; follow with: bench status {out}" +
               (f"; squeue -j {submitted.job_ids[0].split('_')[0]}" if executor == "slurm" else "") +
               f"; logs in {submitted.folder}")
    if wait if wait is not None else executor == "local":
        problems = wait_for(submitted)
        for line in problems:
            click.echo(line, err=True)
        from ipbench.benchmark.status import format_status, run_status

        click.echo(format_status(out, run_status(out)))
        if problems:
            raise SystemExit(1)


def _checked_run_arguments(arguments: list[str]) -> tuple[list[str], Path]:
    """`bench run` arguments checked as `bench run` would check them (before anything is submitted), with
    --shard refused (submit splits the run), a run folder that holds another run refused, and the run folder
    made absolute (the default one if none)."""
    from ipbench.benchmark.spec import make_spec
    from ipbench.results.metric_registry import metric_names

    try:
        context = run_command.make_context("bench run", list(arguments))
    except click.ClickException as exc:
        raise UsageError(f"bench run arguments: {exc.format_message()}") from None
    params = context.params
    if params["shard"] is not None:
        raise UsageError("--shard: bench submit splits the run itself (--jobs N); leave --shard out")
    _load_plugins(params["plugins"])
    spec = make_spec(params["config"], list(params["solvers"]), list(params["operators"]), list(params["params"]),
                     params["preset"], model=params["model"], images=params["images"], num_images=params["num_images"],
                     seeds=list(params["seeds"]) or None, precision=params["precision"],
                     metrics=metric_names(params["metrics"], "--metric") if params["metrics"] else None,
                     seeding=params["seeding"], condition=params["condition"], guidance=params["guidance"])
    out = Path(params["out"]) if params["out"] is not None else spec.default_out()
    if (out / "run.json").exists():  # a folder of another run: refused here, not by each job after submission
        from ipbench.benchmark.spec import check_same_run
        from ipbench.results.rows import read_run_json

        check_same_run(out, read_run_json(out)["config"], spec.config())
    rest, skip = [], False
    for i, argument in enumerate(arguments):  # drop --out (given again, absolute, per job)
        if skip:
            skip = False
        elif argument == "--out":
            skip = True
        elif not argument.startswith("--out="):
            rest.append(argument)
    return rest, out.resolve()


def _run_submitted_shard(cwd: str, arguments: list[str]) -> None:
    """The body of a submitted job: `bench run ARGUMENTS` in the folder `bench submit` ran in."""
    import os

    os.chdir(cwd)
    try:
        cli.main(["run", *arguments], prog_name="bench", standalone_mode=False)
    except click.ClickException as exc:
        raise RuntimeError(exc.format_message()) from None


@cli.command("status")
@click.argument("run_dir", metavar="RUN", callback=_user_path)
@user_errors
def status_command(run_dir: str) -> None:
    """Per shard of RUN: rows done of expected, failed, last write, who is writing, time left."""
    from ipbench.benchmark.status import format_status, run_status

    click.echo(format_status(run_dir, run_status(_run_folder(run_dir))))


@cli.command("list")
@plugin_option
@user_errors
def list_command(plugins: tuple[str, ...]) -> None:
    """List solvers, operators, models and image sets with their parameters."""
    _load_plugins(plugins)
    from ipbench.data import IMAGE_SETS, set_split
    from ipbench.models import MODELS
    from ipbench.operators import OPERATORS
    from ipbench.solvers import SOLVERS

    def aliases(registry: Any, name: str) -> str:
        found = registry.aliases_of(name)
        return f" (alias {', '.join(found)})" if found else ""

    click.echo("Solvers (--solver NAME, --param NAME.FIELD=VALUE, --preset paper; a suite sets one operator's values "
               "in [solver.per_operator.\"OPERATOR LABEL\"], docs/solvers.md):")
    for name in SOLVERS:
        cls = SOLVERS.get(name)
        click.echo(f"  {name}{aliases(SOLVERS, name)}: {_summary(cls)}")
        try:
            params = cls.params()
        except Exception as exc:  # a plugin's unresolvable annotation: say so, and list the rest
            params = []
            click.echo(f"      its fields cannot be read: {first_line(exc)}")
        for p in params:
            click.echo(f"      {p.describe()}")
        for preset, table in getattr(cls, "presets", {}).items():  # --preset NAME, a suite's preset = "NAME"
            click.echo(f"      preset {preset}: {', '.join(table.operators)} ({table.repository})")
        click.echo(f"      runs on: {PRIOR_KINDS.get(getattr(cls, 'prior', 'pixel'), 'pixel-space priors')}")
        click.echo(f"      {_support(cls)}")
    click.echo("Operators (--op NAME):")
    for name in OPERATORS:
        factory = OPERATORS.get(name)
        click.echo(f"  {name}{aliases(OPERATORS, name)}: {factory.summary}")
        for p in factory.params:
            click.echo(f"      {p.describe()}")
    click.echo("Models (--model NAME, NAME:PATH, or a checkpoint file):")
    for name in MODELS:
        click.echo(f"  {name}: {_summary(MODELS.get(name))}")
    click.echo("Image sets (--images NAME, or a folder of PNG/JPEG files, which declares no split):")
    for name in IMAGE_SETS:
        split = set_split(name).split
        click.echo(f"  {name}{aliases(IMAGE_SETS, name)} (split {split or 'not declared'}): "
                   f"{_summary(IMAGE_SETS.get(name))}")
    from ipbench.results.metric_registry import METRIC_SUMMARY

    click.echo("Metrics (every row has psnr, ssim and lpips; --metric NAME adds another):")
    for name, summary in METRIC_SUMMARY.items():
        click.echo(f"  {name}: {summary}")


PRIOR_KINDS = {"pixel": "pixel-space priors", "latent": "latent priors (through the decoder)",
               "any": "any prior (it does not use it)"}


def _summary(obj: Any) -> str:
    """The first line of a registered thing's docstring; a plugin's may be missing, empty or blank."""
    doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    return lines[0] if lines and lines[0] else "(no description)"


def _support(solver_class: Any) -> str:
    """Which built-in operators a solver applies to at its defaults (Solver.unsupported on 3 x 32 x 32 images)."""
    import torch

    from ipbench.operators import OPERATORS, Operator
    from ipbench.solvers.base import SOLVER_FAILURES

    like = torch.zeros(2, 3, 32, 32)
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    try:
        solver, not_on = solver_class.create(), []
    except SOLVER_FAILURES as exc:  # a plugin whose defaults do not build (a field without default, a failing check)
        return f"its defaults do not build: {first_line(exc)}"
    for name in OPERATORS:
        try:
            physics = Operator.create(name).build(like.shape[1:], generators, like.device)
        except UsageError:  # needs a parameter (a mask file): not decidable here
            continue
        try:
            reason = solver.unsupported(physics, like)
        except SOLVER_FAILURES as exc:  # a plugin's broken check: say so, and list the rest
            reason = f"its check raised {first_line(exc)}"
        if reason is not None:
            not_on.append(f"{name} ({reason})")
    return "applies to: every operator" if not not_on else "does not apply to: " + "; ".join(not_on)


@cli.command("check")
@click.option("--solver", required=True, metavar="NAME", help="The solver to check (a registered name).")
@click.option("--op", "operators", multiple=True, metavar="NAME",
              help="Operators to check it on (repeatable) [default: every built-in one that needs no file].")
@click.option("--param", "params", multiple=True, metavar="[TARGET.]NAME=VALUE",
              help="Set a field of the solver or a parameter of the operators, as in bench run (repeatable).")
@plugin_option
@user_errors
def check_command(solver: str, operators: tuple[str, ...], params: tuple[str, ...], plugins: tuple[str, ...]) -> None:
    """Run the project's solver checks on one solver: the contract on every operator, and the ground truth
    of the analytic Gaussian prior (its error against the exact posterior mean's). Exit 1 on a failure."""
    _load_plugins(plugins)
    from ipbench.benchmark.spec import build_spec
    from ipbench.checks.solver_check import CONTRACT_OPERATORS, check_solver

    spec = build_spec([solver], list(operators or CONTRACT_OPERATORS), list(params))
    entry = spec.solvers[0]
    click.echo(f"checking {entry.label} ({', '.join(f'{k}={v}' for k, v in entry.solver.hyperparameters().items())})")
    for operator in spec.operators:
        click.echo(f"  on {operator.label} ({', '.join(f'{k}={v}' for k, v in operator.params.items())})")
    checks = check_solver(entry.solver, entry.label, spec.operators, log=click.echo)
    failed = [c for c in checks if not c.passed]
    click.echo(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise SystemExit(1)


@cli.command("table")
@click.argument("run_dir", metavar="RUN", callback=_user_path)
@click.option("--baseline", default=None, metavar="SOLVER",
              help="Also give each other solver's paired difference to this one, with its 95% bootstrap interval.")
@device_option
@user_errors
def table_command(run_dir: str, baseline: str | None, device: str) -> None:
    """Print the comparison table of RUN and write table.md/.csv/.tex there (--device: where FID runs)."""
    from ipbench.results.evaluated_on import evaluation_warnings
    from ipbench.results.rows import read_run_json
    from ipbench.results.table import write_tables

    if device != "auto":  # checked now, not only if the run has FID; auto is resolved where FID needs it (torch)
        from ipbench.device import resolve_device

        resolve_device(device)
    folder = _run_folder(run_dir)
    click.echo(write_tables(folder, device=device, baseline=baseline))
    for warning in evaluation_warnings(read_run_json(folder)):
        click.echo(f"warning: {warning}", err=True)


@cli.command("report")
@click.argument("run_dirs", metavar="RUN [RUN ...]", nargs=-1, required=True, callback=_user_path)
@click.option("--out", default=None, metavar="FILE.html", callback=_user_path,
              help="Where to write the page [default: RUN/report.html for one run, report.html for several].")
@click.option("--baseline", default=None, metavar="SOLVER",
              help="Compare every solver to this one [default: every pair of solvers].")
@click.option("--resamples", type=int, default=10_000, show_default=True,  # range checked in one line below
              help="Bootstrap resamples of the images per paired interval (100 to 100,000).")
@user_errors
def report_command(run_dirs: tuple[str, ...], out: str | None, baseline: str | None, resamples: int) -> None:
    """Write one self-contained HTML page (opens offline) over RUN folders: provenance, tables, per-image
    distributions, quality against cost, paired comparisons with bootstrap intervals, grids."""
    from ipbench.results.html_report import write_report
    from ipbench.results.paired_stats import check_resamples
    from ipbench.results.report_runs import distinct_runs
    from ipbench.results.tune_log import is_tune_folder

    if len(run_dirs) == 1 and is_tune_folder(run_dirs[0]):  # a bench tune folder: its own page
        from ipbench.results.tune_report import write_tune_report

        click.echo(f"wrote {write_tune_report(Path(run_dirs[0]), Path(out) if out is not None else None)}")
        return
    check_resamples(resamples)  # before the folders are read
    folders, repeated = distinct_runs([_run_folder(path) for path in run_dirs])
    for warning in repeated:
        click.echo(f"warning: {warning}", err=True)
    target = Path(out) if out is not None else folders[0] / "report.html" if len(folders) == 1 else Path("report.html")
    summary = write_report(folders, target, baseline=baseline, resamples=resamples)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    too_few = f"; {summary.too_few} with too few images for the test to reach p < 0.05" if summary.too_few else ""
    click.echo(f"{summary.significant} of {summary.comparisons} paired differences are significant (95% interval "
               f"leaves out 0 and Wilcoxon p < 0.05){too_few}")
    click.echo(f"wrote {summary.path}")


@cli.command("grid")
@click.argument("run_dir", metavar="RUN", callback=_user_path)
@click.option("--max-images", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images (rows) per grid.")
@click.option("--out", default=None, metavar="DIR",
              help="Write the figures here [default: RUN when its own grids show as many images, else "
                   "RUN/grids-<N>-images, keeping the grids that bench report embeds].")
@user_errors
def grid_command(run_dir: str, max_images: int, out: str | None) -> None:
    """Write grid-<operator>.png figures for RUN (and trace-<operator>.png where it saved traces)."""
    from ipbench.results.grid import grid_folder, own_grid_images, write_grids

    folder = _run_folder(run_dir)
    target = Path(out) if out is not None else grid_folder(folder, max_images)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the grid PNGs")
    for path in write_grids(folder, max_images=max_images, out=target):
        click.echo(str(path))
    if out is None and target != folder:
        click.echo(f"the run's own grids (first {own_grid_images(folder)} images), which bench report embeds, are "
                   f"kept; these went to {target}")


@cli.command("sample")
@click.option("--model", default="fashion32", show_default=True, metavar="NAME|NAME:PATH|FILE", callback=_user_path,
              help="Score model: a registered name, NAME:PATH or an ipbench checkpoint.")
@click.option("-n", "num", type=click.IntRange(min=1), default=16, show_default=True, help="Number of samples.")
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="Strided reverse steps.")
@click.option("--eta", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="1 = DDPM, 0 = DDIM (a flow model samples its ODE, whatever eta).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the starting noise.")
@click.option("--class", "class_name", default=None, metavar="NAME",
              help="A class-conditional model's class (its names: the model card); default unconditional.")
@click.option("--guidance", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="With --class: classifier-free guidance scale w (0 = unconditional, 1 = conditional).")
@click.option("--out", default=None, metavar="FILE.png", callback=_user_path,
              help="Where to write the grid [default: runs/samples-<model>-n<N>-steps<S>-eta<E>-seed<K>.png, "
                   "so that samples of other settings do not overwrite each other].")
@device_option
@plugin_option
@user_errors
def sample_command(model: str, num: int, steps: int, eta: float, seed: int, class_name: str | None,
                   guidance: float, out: str | None, device: str, plugins: tuple[str, ...]) -> None:
    """Unconditional samples of a model (the reverse process from pure noise, or a flow model's ODE) as a PNG grid."""
    _load_plugins(plugins)
    from ipbench.device import resolve_device
    from ipbench.models import load_model
    from ipbench.training.export import sample_grid

    out = out if out is not None else str(_samples_file(model, num, steps, eta, seed, class_name, guidance))
    if Path(out).is_dir():
        raise UsageError(f"--out {out}: is a folder; give a .png file name, e.g. {Path(out) / 'samples.png'}")
    score_model = load_model(model, resolve_device(device))
    labels = None
    if class_name is not None:
        from ipbench.models.conditional import ClassConditional

        if not isinstance(score_model, ClassConditional):
            raise UsageError(f"--class {class_name}: model {model} is not class-conditional")
        labels = [score_model.label_of(class_name)] * num
    sample_grid(score_model, num, steps, seed, Path(out), eta=eta, labels=labels, guidance=guidance)
    of = "" if class_name is None else f", class {class_name}, guidance {guidance:g}"
    click.echo(f"wrote {num} samples of {model} ({steps} steps, eta {eta}, seed {seed}{of}) to {out}")


def _samples_file(model: str, num: int, steps: int, eta: float, seed: int, class_name: str | None = None,
                  guidance: float = 1.0) -> Path:
    """bench sample's default file: runs/samples-<model>-n<N>-steps<S>-eta<E>-seed<K>[-class<C>-w<W>].png, the
    model named by its file's stem when it is a path, made a file name as run folders make labels
    (run_paths.file_name)."""
    from ipbench.run_paths import file_name

    name = Path(model.partition(":")[2] or model).stem if ("/" in model or ":" in model) else model
    of = "" if class_name is None else f"-class{file_name(class_name, '--class')}-w{guidance:g}"
    return Path("runs") / f"samples-{file_name(name, '--model')}-n{num}-steps{steps}-eta{eta:g}-seed{seed}{of}.png"


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    """Comma-separated integers; an empty text is none, an empty item ("1,,2") is refused, not skipped."""
    if not text.strip():
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected comma-separated integers, e.g. 1,2,2") from None


@cli.command("train")
@click.option("--data", required=True, metavar="fashion-mnist|DIR|FILE.idx[.gz]", callback=_user_path,
              help="Training images: the Debian Fashion-MNIST training set, a folder, or an IDX file.")
@click.option("--out", required=True, metavar="DIR", callback=_user_path,
              help="Training folder (checkpoints, log, samples); resumes.")
@click.option("--autoencoder", is_flag=True, default=False,
              help="Train a latent prior's KL autoencoder instead (writes autoencoder.pt, reconstructions.png).")
@click.option("--latent-of", default=None, metavar="AE.pt", callback=_user_path,
              help="Train a latent DDPM on the latents this autoencoder gives the training images; writes the whole "
                   "latent prior (autoencoder + latent UNet) as model.pt.")
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True, help="Optimiser steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Training images per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True,
              help="Adam learning rate.")
@click.option("--ema-decay", type=click.FloatRange(0, 1), default=0.999, show_default=True,
              help="Decay of the weights' exponential moving average (the exported model).")
@click.option("--channels", type=click.IntRange(min=8), default=32, show_default=True,
              help="UNet (or autoencoder) base channel count.")
@click.option("--channel-mult", default="1,2,2", show_default=True,
              help="Channel multiplier per resolution level (comma list); the autoencoder's latent side is the "
                   "image's / 2^(levels - 1).")
@click.option("--num-res-blocks", type=click.IntRange(min=1), default=1, show_default=True,
              help="Residual blocks per level.")
@click.option("--attention", default="8", show_default=True, help="Resolutions with self-attention (comma list).")
@click.option("--dropout", type=click.FloatRange(0, 1), default=0.1, show_default=True, help="Dropout rate.")
@click.option("--resolution", type=click.IntRange(min=8), default=32, show_default=True,
              help="Image side in pixels (images are resized to it).")
@click.option("--grayscale/--rgb", default=True, show_default=True, help="One channel or three.")
@click.option("--latent-channels", type=click.IntRange(min=1), default=4, show_default=True,
              help="With --autoencoder: channels of the latent.")
@click.option("--kl-weight", type=click.FloatRange(0, 1), default=1e-6, show_default=True,
              help="With --autoencoder: weight of the KL term against the L1 reconstruction (LDM's 1e-6).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Steps between checkpoints (a stopped training resumes from the last).")
@click.option("--sample-steps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Reverse steps of the final samples.png.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation and batches.")
@click.option("--objective", type=click.Choice(["eps", "flow"]), default="eps", show_default=True,
              help="eps: a VP-DDPM noise-prediction model; flow: a flow-matching velocity model (linear path).")
@click.option("--conditional", is_flag=True, default=False,
              help="A class-conditional eps model (labels: Fashion-MNIST's label file, or <index>-<class>.png names).")
@click.option("--label-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="With --conditional: the rate at which a label is replaced by the null label (for guidance).")
@device_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@user_errors
def train_command(data: str, out: str, autoencoder: bool, latent_of: str | None, steps: int, batch_size: int,
                  lr: float, ema_decay: float, channels: int, channel_mult: str, num_res_blocks: int, attention: str,
                  dropout: float, resolution: int, grayscale: bool, latent_channels: int, kl_weight: float,
                  checkpoint_every: int, sample_steps: int, seed: int, objective: str, conditional: bool,
                  label_dropout: float, device: str, progress: bool) -> None:
    """Train a UNet prior (VP-DDPM eps or flow matching) on an image set; writes model.pt (EMA), model-fp16.pt,
    samples.png, train_log.json. A latent prior trains in two steps: --autoencoder, then --latent-of
    OUT/autoencoder.pt."""
    from ipbench.device import resolve_device
    from ipbench.training.loop import TrainConfig

    dev = resolve_device(device)  # before the data: a wrong device is the first thing to hear about
    if autoencoder and latent_of is not None:
        raise UsageError("--autoencoder with --latent-of: give one; train the autoencoder first (--autoencoder), "
                         "then the latent DDPM on it (--latent-of OUT/autoencoder.pt)")
    mode = "--autoencoder" if autoencoder else "--latent-of" if latent_of is not None else None
    given = _given_options(click.get_current_context())
    unused = {"--autoencoder": ("objective", "conditional", "label_dropout", "dropout", "attention", "sample_steps"),
              "--latent-of": ("resolution", "grayscale", "latent_channels", "kl_weight", "conditional",
                              "label_dropout"),
              None: ("latent_channels", "kl_weight")}[mode]
    refused = [given[name] for name in unused if name in given]
    if refused or (mode == "--latent-of" and objective != "eps"):
        why = {"--autoencoder": "not an option of the autoencoder (it trains with its own loss, L1 + KL, and has no "
                                "dropout, labels, attention levels or samples); leave it out",
               "--latent-of": "the latent shape and the KL weight are the autoencoder's, and a latent prior trains an "
                              "unconditional eps DDPM (--objective eps); leave it out",
               None: "an option of --autoencoder only"}[mode]
        shown = ", ".join(refused or [f"--objective {objective}"])
        raise UsageError(f"{shown} with {mode}: {why}" if mode else f"{shown}: {why}")
    train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, ema_decay=ema_decay,
                            checkpoint_every=checkpoint_every, seed=seed, label_dropout=label_dropout)
    shape = (1 if grayscale else 3, resolution, resolution)
    mult = _parse_ints(channel_mult, "--channel-mult")
    if autoencoder:
        _train_autoencoder(data, Path(out), shape, channels, mult, num_res_blocks, latent_channels, kl_weight,
                           train_cfg, dev, progress)
        return
    from ipbench.models.unet import UNetConfig

    model_cfg = UNetConfig(image_shape=shape, channels=channels, channel_mult=mult, num_res_blocks=num_res_blocks,
                           attention_resolutions=_parse_ints(attention, "--attention"), dropout=dropout)
    if latent_of is not None:
        _train_latent(data, Path(out), Path(latent_of), model_cfg, train_cfg, dev, sample_steps, progress)
        return
    _train_unet(data, Path(out), model_cfg, train_cfg, dev, sample_steps, objective, conditional, progress,
                {"image_shape": ("--resolution", resolution), "channels": ("--channels", channels),
                 "channel_mult": ("--channel-mult", repr(channel_mult)), "attention_resolutions":
                 ("--attention", repr(attention)), "num_res_blocks": ("--num-res-blocks", num_res_blocks)})


def _given_options(context: click.Context) -> dict[str, str]:
    """{parameter name: its option as typed} for the options given on the command line (not left at default)."""
    from click.core import ParameterSource

    given = {}
    for parameter in context.command.params:
        if context.get_parameter_source(parameter.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[parameter.name] = "/".join(parameter.opts + parameter.secondary_opts)
    return given


def _config_error(problem: tuple[str, str] | None, config: Any, options: dict[str, tuple[str, Any]]) -> None:
    """A config's bounds problem as a one-line UsageError naming the option that set the field."""
    if problem is not None:
        name, what = problem
        option, value = options.get(name, (name, getattr(config, name)))
        raise UsageError(f"{option} {value}: {what}")


def _train_unet(data: str, out: Path, model_cfg: Any, train_cfg: Any, dev: Any, sample_steps: int, objective: str,
                conditional: bool, progress: bool, options: dict[str, tuple[str, Any]]) -> None:
    """A UNet prior on images: eps or flow, unconditional or class-conditional."""
    from ipbench.models.unet import config_problem
    from ipbench.training.export import finish_training, load_training_images, load_training_labels
    from ipbench.training.loop import train

    _config_error(config_problem(model_cfg), model_cfg, options)  # before the data is read or the model built
    if conditional and objective != "eps":
        raise UsageError(f"--conditional with --objective {objective}: conditional models train with --objective eps")
    images, ids = load_training_images(data, model_cfg.image_shape)
    labels, class_names = load_training_labels(data, ids, images.shape[0]) if conditional else (None, None)
    if class_names is not None:
        model_cfg = dataclasses.replace(model_cfg, num_classes=len(class_names))
    command = _command_line()
    ema, _ = train(images, out, model_cfg, train_cfg, dev, progress=progress, log=click.echo,
                   objective=objective, labels=labels, class_names=class_names)
    for line in finish_training(ema, out, data, images.shape[0], train_cfg, dev, sample_steps, command):
        click.echo(line)


def _train_autoencoder(data: str, out: Path, shape: tuple[int, int, int], channels: int, mult: tuple[int, ...],
                       num_res_blocks: int, latent_channels: int, kl_weight: float, train_cfg: Any, dev: Any,
                       progress: bool) -> None:
    """A latent prior's first stage: its KL autoencoder on the training images."""
    from ipbench.models.kl_autoencoder import KLAutoencoderConfig, config_problem
    from ipbench.training.export import load_training_images
    from ipbench.training.latent_prior import finish_autoencoder
    from ipbench.training.loop import train

    cfg = KLAutoencoderConfig(image_shape=shape, latent_channels=latent_channels, channels=channels,
                              channel_mult=mult, num_res_blocks=num_res_blocks, kl_weight=kl_weight)
    _config_error(config_problem(cfg), cfg, {
        "image_shape": ("--resolution", shape[1]), "latent_channels": ("--latent-channels", latent_channels),
        "channels": ("--channels", channels), "channel_mult": ("--channel-mult", ",".join(map(str, mult))),
        "num_res_blocks": ("--num-res-blocks", num_res_blocks), "kl_weight": ("--kl-weight", kl_weight)})
    images, _ = load_training_images(data, shape)
    command = _command_line()
    ema, _ = train(images, out, cfg, train_cfg, dev, progress=progress, log=click.echo, objective="autoencoder")
    for line in finish_autoencoder(ema, images, out, data, train_cfg, dev, command):  # type: ignore[arg-type]
        click.echo(line)


def _train_latent(data: str, out: Path, autoencoder_file: Path, unet_cfg: Any, train_cfg: Any, dev: Any,
                  sample_steps: int, progress: bool) -> None:
    """A latent prior's second stage: a latent DDPM on the scaled latents the autoencoder gives the training images,
    exported with the autoencoder as one latent prior."""
    from ipbench.models.unet import config_problem
    from ipbench.training.export import load_training_images
    from ipbench.training.latent_prior import encode_all, finish_latent_prior, load_autoencoder
    from ipbench.training.loop import train

    autoencoder, sha = load_autoencoder(autoencoder_file)
    latent = autoencoder.latent_shape
    # the latent UNet's "image" is the latent; the autoencoder that made its data is part of its identity on resume
    unet_cfg = dataclasses.replace(unet_cfg, image_shape=latent, extra={"autoencoder": sha})
    problem = config_problem(unet_cfg)
    if problem is not None and problem[0] == "image_shape":
        sides = latent[1:]
        fit = max(n for n in range(1, 9) if all(s % 2 ** (n - 1) == 0 for s in sides))
        raise UsageError(f"--channel-mult {','.join(map(str, unet_cfg.channel_mult))}: its "
                         f"{len(unet_cfg.channel_mult)} levels halve the {' x '.join(map(str, latent))} latents of "
                         f"--latent-of {autoencoder_file} {len(unet_cfg.channel_mult) - 1} times; a latent side of "
                         f"{min(sides)} allows at most {fit} levels (e.g. --channel-mult {','.join(['1'] + ['2'] * (min(fit, 3) - 1))})")
    _config_error(problem, unet_cfg, {
        "channels": ("--channels", unet_cfg.channels),
        "channel_mult": ("--channel-mult", ",".join(map(str, unet_cfg.channel_mult))),
        "attention_resolutions": ("--attention", ",".join(map(str, unet_cfg.attention_resolutions)) or "''"),
        "num_res_blocks": ("--num-res-blocks", unet_cfg.num_res_blocks)})
    images, _ = load_training_images(data, autoencoder.image_shape)
    latents = encode_all(autoencoder.to(dev), images, dev)
    click.echo(f"encoded {images.shape[0]} training images to {' x '.join(map(str, latent))} latents (std "
               f"{float(latents.std()):.3f}) with {autoencoder_file}")
    command = _command_line()
    ema, _ = train(latents, out, unet_cfg, train_cfg, dev, progress=progress, log=click.echo, latents=True)
    for line in finish_latent_prior(ema, autoencoder, autoencoder_file, out, data, images.shape[0], train_cfg, dev,  # type: ignore[arg-type]
                                    sample_steps, command):
        click.echo(line)


def main() -> None:
    cli(prog_name="bench")
