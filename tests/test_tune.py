"""bench tune end to end on cheap plugin solvers (tests/plugins/tune_solvers.py) and 4-8 fashion32-val images:
the same seed gives the same trials, a rerun resumes to the budget, failed and pruned trials are recorded
as such, Ctrl-C and a killed worker are tried again, two workers share one study, the suite and the page
it writes, and its one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import load_images
from ipbench.results.rows import run_rows
from tests.processes import wait_for

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).parent / "plugins" / "tune_solvers.py"
BASE = ["tune", "--plugin", str(PLUGIN), "--op", "inpaint", "--images", "fashion32-val", "--device", "cpu"]
SHRINK = [*BASE, "--solver", "tune-shrink", "--num-images", "4", "--rungs", "2"]  # rungs of 2 and 4 images
TIMING = ("seconds", "cpu_seconds", "worker")
# the keys of a per-operator `tuned` table (the suite format shared with the suite parser and evaluated_on.py)
TUNED_KEYS = {"fields", "image_set", "ids", "seeds", "budget", "objective", "best", "best_se", "trials", "pruned",
              "failed", "sampler", "study"}


def bench(*args: Any) -> Any:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def trials(folder: Path, timing: bool = False) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    return records if timing else [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def states(folder: Path) -> list[str]:
    return [r["state"] for r in trials(folder)]


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh tune of tune-shrink on box inpainting, 5 trials on 4 images."""
    out = tmp_path_factory.mktemp("tune") / "five"
    done = bench(*SHRINK, "--budget", 5, "--out", out)
    assert done.exit_code == 0, done.output
    return out


@pytest.mark.slow
def test_the_same_seed_on_a_fresh_folder_gives_the_same_trials(five: Path, tmp_path: Path) -> None:
    again = bench(*SHRINK, "--budget", 5, "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert trials(tmp_path / "again") == trials(five)
    assert [r["number"] for r in trials(five)] == [0, 1, 2, 3, 4]
    assert len({r["params"]["weight"] for r in trials(five)}) == 5  # five different settings, not one repeated
    other = bench(*SHRINK, "--budget", 2, "--sampler-seed", 1, "--out", tmp_path / "other")
    assert other.exit_code == 0, other.output
    assert [r["params"] for r in trials(tmp_path / "other")] != [r["params"] for r in trials(five)[:2]]


@pytest.mark.slow
def test_a_rerun_resumes_to_the_budget_and_asks_what_an_uninterrupted_tune_would(five: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    assert bench(*SHRINK, "--budget", 2, "--out", out).exit_code == 0
    assert states(out) == ["complete", "complete"] and (out / "tuned.toml").exists()
    resumed = bench(*SHRINK, "--budget", 5, "--out", out)  # the budget raised: three more trials
    assert resumed.exit_code == 0, resumed.output
    assert trials(out) == trials(five)  # trial n's sampler is seeded from (seed, n)
    before = trials(out, timing=True)
    done = bench(*SHRINK, "--budget", 5, "--out", out)  # nothing left to do
    assert done.exit_code == 0 and "\n  trial " not in done.output
    assert trials(out, timing=True) == before
    lowered = bench(*SHRINK, "--budget", 3, "--out", out)
    assert lowered.exit_code == 2 and "a budget only grows" in lowered.output
    assert json.loads((out / "tune.json").read_text())["budget"] == 5  # left as it was


@pytest.mark.slow
def test_every_trial_is_an_ordinary_run_folder(five: Path) -> None:
    ids = load_images("fashion32-val", (1, 32, 32), 4).ids
    for record in trials(five):
        folder = five / record["folder"]
        meta = json.loads((folder / "run.json").read_text())
        assert meta["images"]["source"] == "fashion32-val" and meta["images"]["ids"] == ids
        assert meta["config"]["solvers"][0]["params"]["weight"] == record["params"]["weight"]
        rows = run_rows(folder)
        assert {r["solver.weight"] for r in rows} == {record["params"]["weight"]}
        if record["state"] == "complete":
            assert sorted(r["image"] for r in rows) == sorted(ids)
            mean = sum(r["psnr"] for r in rows) / len(rows)  # one seed: the mean over images
            assert record["value"] == pytest.approx(mean, rel=1e-12)
            table = bench("table", folder)
            assert table.exit_code == 0 and "| tune-shrink |" in table.output


@pytest.mark.slow
def test_the_suite_holds_the_best_parameters_per_operator_with_their_provenance(five: Path) -> None:
    suite = tomllib.loads((five / "tuned.toml").read_text())
    assert suite["images"] == "fashion32-test"  # the test split of fashion32-val's origin
    assert suite["model"] == "fashion32" and suite["seeds"] == [0]
    assert [o["name"] for o in suite["operator"]] == ["inpaint-box"]
    (solver,) = suite["solver"]
    assert solver["name"] == "tune-shrink" and set(solver) == {"name", "per_operator"}
    table = solver["per_operator"]["inpaint-box"]
    records = trials(five)
    best = max((r for r in records if r["state"] == "complete"), key=lambda r: r["value"])
    assert table["weight"] == best["params"]["weight"]
    tuned = table["tuned"]
    assert set(tuned) == TUNED_KEYS
    assert tuned["fields"] == ["weight"] and tuned["image_set"] == "fashion32-val"
    assert tuned["ids"] == load_images("fashion32-val", (1, 32, 32), 4).ids
    assert tuned["budget"] == 5 and tuned["trials"] == 5 and tuned["objective"] == "psnr"
    assert tuned["best"] == best["value"] and tuned["best_se"] == best["se"]
    assert tuned["pruned"] == states(five).count("pruned") and tuned["failed"] == 0
    assert (five / tuned["study"]).is_file()
    summary = (five / "summary.md").read_text()
    assert "Budget: 5 trials per (solver, operator), the same for every pair" in summary
    assert "CPU-hours" in summary and "| tune-shrink | inpaint-box | 5 of 5 |" in summary


@pytest.mark.slow
def test_a_diverging_trial_is_a_failed_trial_and_the_tune_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "nan"
    done = bench(*SHRINK, "--budget", 4, "--param", "tune-shrink.nan_above=0.5", "--out", out)
    assert done.exit_code == 0, done.output
    records = trials(out)
    failed = [r for r in records if r["state"] == "failed"]
    assert failed and all(r["params"]["weight"] > 0.5 for r in failed)
    assert all("non-finite" in r["error"] for r in failed)
    assert all(r["params"]["weight"] <= 0.5 for r in records if r["state"] != "failed")
    assert len(records) == 4  # the failures counted towards the budget
    tuned = tomllib.loads((out / "tuned.toml").read_text())["solver"][0]["per_operator"]["inpaint-box"]["tuned"]
    assert tuned["failed"] == len(failed) and tuned["trials"] == 4
    assert "failed: 2 of 2 rows failed, e.g. image 5000-pullover: solver returned non-finite values" in done.output


@pytest.mark.slow
def test_a_pair_without_a_complete_trial_keeps_its_parameters(tmp_path: Path) -> None:
    out = tmp_path / "all-nan"
    done = bench(*SHRINK, "--budget", 2, "--param", "tune-shrink.nan_above=0", "--space", "weight=0.1:1",
                 "--out", out)
    assert done.exit_code == 0, done.output
    assert states(out) == ["failed", "failed"]
    text = (out / "tuned.toml").read_text()
    assert "no complete trial of 2" in text
    assert "per_operator" not in tomllib.loads(text)["solver"][0]


@pytest.mark.slow
def test_weak_trials_are_pruned_after_a_rung_of_images(tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    done = bench(*BASE, "--solver", "tune-shrink", "--num-images", 8, "--budget", 8, "--out", out)
    assert done.exit_code == 0, done.output
    assert "median rule" in done.output and "rungs of 2, 4, 8 images" in done.output
    records = trials(out)
    pruned = [r for r in records if r["state"] == "pruned"]
    complete = [r for r in records if r["state"] == "complete"]
    assert pruned and complete
    for r in complete:
        assert [rung["images"] for rung in r["rungs"]] == [2, 4, 8]
    for r in pruned:
        steps = [rung["images"] for rung in r["rungs"]]
        assert steps in ([2], [2, 4]) and r["value"] == r["rungs"][-1]["value"]
        assert len(run_rows(out / r["folder"])) == steps[-1]  # the later shards never ran
        assert not (out / r["folder"] / "rows.shard-3-of-4.jsonl").exists()
    none = bench(*BASE, "--solver", "tune-shrink", "--num-images", 8, "--budget", 3, "--pruner", "none",
                 "--out", tmp_path / "unpruned")
    assert none.exit_code == 0 and "pruned" not in states(tmp_path / "unpruned")


def test_without_optuna_bench_tune_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = CliRunner().invoke(cli, [*SHRINK, "--budget", 2])
    assert result.exit_code == 2
    assert result.output == 'Error: bench tune needs optuna: pip install "ipbench[tune]"\n'


@pytest.mark.parametrize("extra, message", [
    (["--space", "weight=0.5:2"], "--space 'weight=0.5:2': solver.weight=2.0: must be in [0, 1]"),
    (["--space", "tune-shrink.nope=0:1"], "tune-shrink has no field 'nope'"),
    (["--space", "dps.zeta=0.1:1"], "'dps' is not a selected solver (tune-shrink)"),
    (["--space", "weight=0.1:0.2", "--param", "tune-shrink.weight=0.3"], "tune-shrink.weight is set by --param"),
    (["--param", "tune-shrink.weight=0.3"], "tune-shrink: no field to tune (all its tunable fields are set)"),
])
def test_bad_tune_options_are_one_line_errors(extra: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*SHRINK, "--budget", 2, *extra, "--out", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "t").exists()  # refused before anything is written


def test_a_solver_that_declares_nothing_needs_a_space(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*BASE, "--solver", "tweedie", "--budget", 2, "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "tweedie: no field to tune (it declares none)" in result.output


def test_a_space_the_model_cannot_run_is_refused_before_any_trial(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*BASE, "--solver", "sdedit", "--space", "t0=10:900", "--budget", 2,
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert "--space 't0=10:900' (sdedit.t0 in [10, 900] (int)): at t0=10" in result.output
    assert "narrow it with --space" in result.output and result.output.count("\n") == 1


@pytest.mark.slow
def test_a_folder_of_another_tune_is_refused_naming_what_differs(five: Path) -> None:
    result = bench(*SHRINK, "--budget", 5, "--objective", "ssim", "--out", five)
    assert result.exit_code == 2 and "holds a tune of other settings (objective differs" in result.output
    result = bench(*SHRINK, "--budget", 5, "--seed", 1, "--out", five)
    assert result.exit_code == 2 and "(seeds[0] differs" in result.output


@pytest.mark.slow
def test_ctrl_c_mid_trial_marks_it_interrupted_and_a_rerun_tries_it_again(tmp_path: Path) -> None:
    from ipbench.plugins import load_plugin_file

    load_plugin_file(PLUGIN)
    module = next(m for m in sys.modules.values() if getattr(m, "__file__", None) == str(PLUGIN.resolve()))
    args = [*BASE, "--solver", "tune-interrupt", "--num-images", 4, "--rungs", 2, "--budget", 3, "--pruner", "none",
            "--out", tmp_path / "t"]
    module.INTERRUPT_AT.update(call=3, calls=0)  # trial 1's second rung: a call per rung, trial 0 made two
    stopped = bench(*args)
    assert stopped.exit_code == 1  # click's "Aborted!" for Ctrl-C
    module.INTERRUPT_AT.update(call=None)
    resumed = bench(*args)
    assert resumed.exit_code == 0, resumed.output
    records = trials(tmp_path / "t")
    assert [r["state"] for r in records] == ["complete", "interrupted", "complete", "complete"]
    retry = next(r for r in records if r.get("retry_of") == 1)
    assert retry["params"] == records[1]["params"] and retry["folder"] == records[1]["folder"]
    assert len(run_rows(tmp_path / "t" / retry["folder"])) == 4  # its first rung's rows kept, not redone
    tuned = tomllib.loads((tmp_path / "t" / "tuned.toml").read_text())["solver"][0]["per_operator"]
    assert tuned["inpaint-box"]["tuned"]["trials"] == 3



def python_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow
def test_two_workers_on_one_folder_share_the_study_and_its_budget(tmp_path: Path) -> None:
    """Each worker's trials wait until the other has started one (tests/plugins/tune_solvers.py), so both
    are certain to work on the study at once, however the machine schedules them."""
    peers = tmp_path / "peers"
    peers.mkdir()
    command = [sys.executable, "-m", "ipbench", *BASE, "--solver", "tune-peer", "--num-images", 2, "--budget", 5,
               "--out", tmp_path / "t"]
    workers = [subprocess.Popen([str(c) for c in command], env=python_env(IPBENCH_TUNE_PEERS=str(peers)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    records = trials(tmp_path / "t", timing=True)
    assert sorted(r["number"] for r in records) == [0, 1, 2, 3, 4]  # the budget, not 5 per worker
    assert all(r["state"] in ("complete", "pruned") for r in records)
    assert {r["worker"].rsplit(":", 1)[1] for r in records} == {str(w.pid) for w in workers}
    assert len({r["folder"] for r in records}) == 5 and len({r["params"]["weight"] for r in records}) == 5
    assert (tmp_path / "t" / "tuned.toml").exists()


@pytest.mark.slow
def test_a_killed_worker_s_trial_is_tried_again_by_the_next_run(tmp_path: Path) -> None:
    """kill -9 in the middle of a trial (the worker is held there by a gate file): a rerun finds its trial
    running under a pid that is gone, marks it interrupted and tries it again into the same folder."""
    gate, out = tmp_path / "gate", tmp_path / "t"
    command = [str(c) for c in [sys.executable, "-m", "ipbench", *BASE, "--solver", "tune-gated", "--num-images", 4,
                                "--rungs", 2, "--budget", 2, "--param", f"tune-gated.gate={gate}", "--out", out]]
    first = subprocess.Popen(command, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = out / "trials" / "tune-gated" / "inpaint-box" / "0000" / "rows.shard-0-of-2.jsonl"
    try:
        wait_for(lambda: (rows.exists() and rows.read_text().count("\n") >= 1) or first.poll() is not None)
        assert first.poll() is None
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    gate.touch()
    again = subprocess.run(command, env=python_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "was left running by a worker that is gone: tried again" in again.stderr
    records = trials(out)
    assert [r["state"] for r in records] == ["interrupted", "complete", "complete"]
    assert records[1]["retry_of"] == 0 and records[1]["folder"] == records[0]["folder"]


@pytest.mark.slow
def test_bench_report_on_a_tune_folder_shows_the_curves(five: Path, tmp_path: Path, chromium: str) -> None:
    from ipbench.checks.browser import open_page

    out = tmp_path / "tune.html"
    result = bench("report", five, "--out", out)
    assert result.exit_code == 0 and result.output == f"wrote {out}\n"
    html = out.read_text()
    assert "tune-shrink on inpaint-box" in html and html.count("data:image/png") == 2
    assert "5 trials per (solver, operator), the same for every pair" in html
    page = open_page(out)
    assert page.problems() == [] and len(page.images) == 2


@pytest.fixture(scope="module")
def dps_tune(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's command: DPS on box inpainting, 8 trials on 8 fashion32-val images (5 DPS steps, to be quick)."""
    out = tmp_path_factory.mktemp("tune") / "dps"
    done = bench("tune", "--solver", "dps", "--op", "inpaint", "--budget", 8, "--num-images", 8, "--images",
                 "fashion32-val", "--param", "dps.steps=5", "--device", "cpu", "--out", out)
    assert done.exit_code == 0, done.output
    return out


@pytest.mark.slow
def test_the_tuned_suite_runs_on_the_test_split_and_nothing_warns(dps_tune: Path, tmp_path: Path) -> None:
    from ipbench.results.evaluated_on import evaluation_warnings
    from ipbench.results.rows import read_run_json

    records = trials(dps_tune)
    assert len(records) == 8 and {r["state"] for r in records} <= {"complete", "pruned", "failed"}
    best = max((r for r in records if r["state"] == "complete"), key=lambda r: r["value"])
    out = tmp_path / "run"
    done = bench("run", "--config", dps_tune / "tuned.toml", "--num-images", 4, "--device", "cpu", "--out", out,
                 "--no-progress")
    assert done.exit_code == 0, done.output
    assert "warning:" not in done.output
    meta = read_run_json(out)
    assert meta["images"]["source"] == "fashion32-test" and meta["images"]["split"] == "test"
    solver = meta["config"]["solvers"][0]
    assert solver["params"]["steps"] == 5
    assert solver["per_operator"]["inpaint-box"]["params"]["zeta"] == best["params"]["zeta"]
    assert solver["per_operator"]["inpaint-box"]["tuned"]["image_set"] == "fashion32-val"
    assert evaluation_warnings(meta) == []
    assert {r["solver.zeta"] for r in run_rows(out)} == {best["params"]["zeta"]}  # the rows ran the tuned value


@pytest.mark.slow
def test_a_tune_on_the_test_split_then_a_run_on_it_warns(tmp_path: Path) -> None:
    tuned = tmp_path / "tune"
    done = bench("tune", "--solver", "dps", "--op", "inpaint", "--budget", 2, "--num-images", 4, "--images",
                 "fashion32-test", "--param", "dps.steps=5", "--device", "cpu", "--out", tuned)
    assert done.exit_code == 0, done.output
    assert "note: fashion32-test is a test split" in done.output
    assert tomllib.loads((tuned / "tuned.toml").read_text())["images"] == "fashion32-test"
    run = bench("run", "--config", tuned / "tuned.toml", "--num-images", 4, "--device", "cpu",
                "--out", tmp_path / "run", "--no-progress")
    assert run.exit_code == 0, run.output
    assert ("warning: dps on inpaint-box: zeta tuned on 4 of the 4 images this run evaluates on (fashion32-test)"
            in run.output)


@pytest.mark.slow
def test_a_suite_is_tuned_pair_by_pair_keeping_its_labels_and_values(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('model = "fashion32"\nseeds = [3]\n'
                     '[[operator]]\nname = "inpaint-box"\n[[operator]]\nname = "denoise"\nlabel = "noisy"\nsigma_y = 0.1\n'
                     '[[solver]]\nname = "tune-shrink"\nlabel = "free"\n'
                     '[[solver]]\nname = "tune-shrink"\nlabel = "capped"\nnan_above = 0.9\noperators = ["noisy"]\n')
    out = tmp_path / "t"
    done = bench("tune", "--plugin", PLUGIN, "--config", suite, "--images", "fashion32-val", "--num-images", 2,
                 "--budget", 2, "--objective", "lpips", "--device", "cpu", "--out", out)
    assert done.exit_code == 0, done.output
    records = trials(out)
    assert sorted({(r["solver"], r["operator"]) for r in records}) == [("capped", "noisy"), ("free", "inpaint-box"),
                                                                        ("free", "noisy")]
    written = tomllib.loads((out / "tuned.toml").read_text())
    assert written["seeds"] == [3] and written["images"] == "fashion32-test"
    assert [(o["name"], o.get("label"), o.get("sigma_y")) for o in written["operator"]] == [
        ("inpaint-box", None, None), ("denoise", "noisy", 0.1)]
    free, capped = written["solver"]
    assert (free["label"], capped["label"], capped["nan_above"], capped["operators"]) == ("free", "capped", 0.9,
                                                                                          ["noisy"])
    assert set(free["per_operator"]) == {"inpaint-box", "noisy"} and set(capped["per_operator"]) == {"noisy"}
    for entry in written["solver"]:
        for label, table in entry["per_operator"].items():
            mine = [r for r in records if (r["solver"], r["operator"]) == (entry["label"], label)]
            lowest = min((r for r in mine if r["state"] == "complete"), key=lambda r: r["value"])  # lpips: lower
            assert table["weight"] == lowest["params"]["weight"] and table["tuned"]["objective"] == "lpips"
            assert table["tuned"]["seeds"] == [3]


@pytest.mark.slow
def test_successive_halving_prunes_too(tmp_path: Path) -> None:
    out = tmp_path / "halving"
    done = bench(*BASE, "--solver", "tune-shrink", "--num-images", 4, "--budget", 6, "--pruner", "halving",
                 "--out", out)
    assert done.exit_code == 0, done.output
    assert "successive halving" in done.output and "pruned" in states(out)


def test_bench_list_shows_each_field_s_declared_space() -> None:
    zeta = next(p for p in __import__("ipbench.solvers", fromlist=["SOLVERS"]).SOLVERS.get("dps").params()
                if p.name == "zeta")
    assert zeta.describe() == "zeta: float = 1.0  (>= 0)  [tuned in [0.01, 10] log]"
