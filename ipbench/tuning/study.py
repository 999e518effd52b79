"""Optuna for `bench tune`: one SQLite storage per tune folder, one study per (solver, operator) pair, the
budget shared by every worker, and trials that were interrupted tried again.

- Storage: DIR/study.sqlite3. Several processes (`bench tune` twice on one DIR, torchrun, a SLURM array on
  a file system where SQLite's locking works) share it. Asking for a trial happens under an exclusive lock
  on DIR/study.lock, so that of two workers that both see N - 1 trials only one starts the N-th.
- Budget: the trials that count are the complete, pruned and failed ones; running ones are reserved. A
  worker stops asking once those reach N, so the budget is N for every pair however many workers share it.
- Sampler: TPE (Bergstra et al. 2011, optuna's TPESampler, multivariate, with constant liar so that workers
  do not pile onto one point), the first `n_startup_trials` drawn at random. Trial n's sampler is seeded
  from (seed, n): the same seed on a fresh folder gives the same trials, a resumed tune asks what an
  uninterrupted one would have, and two workers never draw the same random start.
- Interrupted trials (Ctrl-C; a worker killed: its pid gone on this host, or no heartbeat for
  STALE_SECONDS) are marked failed without an error, count for nothing and are asked again with the same
  parameters, into the same run folder, whose rows the engine resumes.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ipbench.errors import UsageError

STUDY_FILE = "study.sqlite3"
LOCK_FILE = "study.lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0  # twenty missed heartbeats: the worker is dead or hung (as benchmark/lock.py)
INSTALL = 'bench tune needs optuna: pip install "ipbench[tune]"'


def require_optuna() -> Any:
    """The optuna module, or a one-line UsageError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError(INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the tune prints its own line per trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def startup_trials(budget: int) -> int:
    """Random trials before TPE models the rest: a quarter of the budget, 2 to 10 (optuna's default is 10,
    which would leave a budget of 8 a random search)."""
    return max(2, min(10, budget // 4))


def sampler_text(seed: int, budget: int) -> str:
    return f"TPESampler(seed={seed}, n_startup_trials={startup_trials(budget)}, multivariate=True, constant_liar=True)"


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial `number`: a hash of (seed, number), as 32 bits."""
    return int.from_bytes(hashlib.sha256(f"bench tune {seed} {number}".encode()).digest()[:4], "big")


def make_sampler(seed: int, budget: int, number: int) -> Any:
    optuna = require_optuna()
    return optuna.samplers.TPESampler(seed=trial_seed(seed, number), n_startup_trials=startup_trials(budget),
                                      multivariate=True, constant_liar=True)


def make_pruner(name: str, budget: int, first_rung_images: int) -> Any:
    """The median rule (a trial stops after a rung where its mean is worse than the median of the complete
    trials' at that rung, once `startup_trials` have completed), successive halving (ASHA: it goes on only
    while among the best half at each rung), or none."""
    optuna = require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials(budget), n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung_images, reduction_factor=2,
                                                      min_early_stopping_rate=0)
    return optuna.pruners.NopPruner()


def pruner_text(name: str, budget: int) -> str:
    if name == "median":
        return f"median rule (MedianPruner, after {startup_trials(budget)} complete trials)"
    if name == "halving":
        return "successive halving (SuccessiveHalvingPruner, reduction factor 2)"
    return "none"


def storage(folder: Path) -> Any:
    """The folder's shared Optuna storage, opened under the study lock: opening creates the schema of a new
    file, and two workers creating it at once collide (the second fails on alembic_version's UNIQUE key)."""
    optuna = require_optuna()
    url = f"sqlite:///{(folder / STUDY_FILE).resolve()}"
    with exclusive(folder):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 300}})


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """An exclusive lock on DIR/study.lock across processes (POSIX file locks; where there are none, as on
    Windows, one worker per folder)."""
    try:
        import fcntl
    except ImportError:  # no fcntl: nothing to share with
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def counts(trial: Any) -> bool:
    """Whether a finished trial counts towards the budget: complete, pruned, or failed with an error."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "error" in trial.user_attrs)


def interrupted(trial: Any) -> bool:
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or not ours to ask: assume alive
    return True


def _stale(trial: Any, now: float) -> bool:
    attrs = trial.user_attrs
    if attrs.get("host") == socket.gethostname() and isinstance(attrs.get("pid"), int):
        if attrs["pid"] != os.getpid() and not _pid_alive(attrs["pid"]):
            return True
    beat = attrs.get("heartbeat")
    return isinstance(beat, (int, float)) and now - beat > STALE_SECONDS


def recover(study: Any) -> list[str]:
    """Mark the running trials of dead workers as interrupted, and enqueue each interrupted trial once more
    with its parameters and run folder; the notes to print. Call under `exclusive`."""
    from optuna.trial import TrialState

    notes = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _stale(trial, now):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            notes.append(f"trial {trial.number} of {trial.user_attrs.get('worker', 'a worker')} was left running "
                         "by a worker that is gone: tried again")
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if interrupted(trial) and trial.number not in retried:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                          "folder": trial.user_attrs.get("folder", trial.number)})
    return notes


def ask(study: Any, distributions: dict[str, Any], seed: int, budget: int) -> Any | None:
    """A new trial of `study` (an enqueued retry first), or None when the budget is reached or reserved by
    running trials. Call under `exclusive`."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    taken = sum(counts(t) for t in trials) + sum(t.state == TrialState.RUNNING for t in trials)
    if taken >= budget:
        return None
    if not any(t.state == TrialState.WAITING for t in trials):
        study.sampler = make_sampler(seed, budget, len(trials))  # the number the new trial gets
    trial = study.ask(fixed_distributions=distributions)
    trial.set_user_attr("worker", worker_name())
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("heartbeat", time.time())
    if "folder" not in trial.user_attrs:
        trial.set_user_attr("folder", trial.number)
    return trial


@contextmanager
def heartbeat(trial: Any) -> Iterator[None]:
    """Refresh the trial's heartbeat every HEARTBEAT_SECONDS while it runs (so others see it alive)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                trial.set_user_attr("heartbeat", time.time())
            except Exception:  # a busy or closed database: the next beat tries again
                pass

    thread = threading.Thread(target=beat, name="bench-tune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
