"""Every committed run (results/**/run.json, tuning trials included) still has the identity the code computes
for it, and its rows the operator columns a run writes now: a new parameter must not change an old run's
identity, or its resume is refused.

The identity is rebuilt from the recorded config the way `bench run` builds it (RunSpec.config) and compared
with check_same_run, the runner's own resume check, code fingerprints left out: those change whenever a
solver's file is edited, by design (a resume then refuses with its own message), and say nothing about
parameters. New operator parameters (the noise model: noise, rate) are left out at their defaults, so
Gaussian runs keep their identity; the runs under Poisson noise (results/fashion32-nonlinear) record them. The one run that differs differs for a reason older than this test, which
is checked to be exactly that reason.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ipbench.benchmark.spec import RunSpec, SolverEntry, check_same_run, without_code
from ipbench.errors import UsageError
from ipbench.operators import Operator
from ipbench.operators.noise import NOISE_NAMES
from ipbench.results.metric_registry import DEFAULT_METRICS
from ipbench.solvers import SOLVERS

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = sorted((ROOT / "results").glob("**/run.json"))
# Run folder -> (operator label, parameter it lacks): the parameter was added to the operator after the run.
OLDER_THAN_A_PARAMETER = {"results/fashion32-baselines": ("deblur-gauss", "kernel")}


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _spec_of(config: dict[str, Any]) -> RunSpec:
    """The RunSpec that `bench run` would build for a recorded config: each solver with its recorded params,
    each operator's per-operator values as recorded (every field counts as set, so no preset overrides them)."""
    operators = [Operator.create(o["name"], o["params"], o.get("label")) for o in config["operators"]]
    entries = []
    for table in config["solvers"]:
        cls = SOLVERS.get(table["name"])
        own = table.get("per_operator", {})
        entries.append(SolverEntry(cls.create(table["params"]), table["label"], tuple(table.get("operators", ())),
                                   table.get("preset"), {label: t["params"] for label, t in own.items()},
                                   table.get("tuned"), {label: t["tuned"] for label, t in own.items() if "tuned" in t},
                                   frozenset(p.name for p in cls.params())))
    return RunSpec(entries, operators, model=config["model"], images=config["images"],
                   num_images=config["num_images"], seeds=config["seeds"], reference=config.get("reference", []),
                   precision=config.get("precision"), metrics=config.get("metrics", list(DEFAULT_METRICS)),
                   seeding=config.get("seeding", "independent"))


def test_there_are_committed_runs_and_trials() -> None:
    assert len(RUN_FILES) > 100  # the runs and the benchmark's tuning trials
    assert ROOT / "results" / "fashion32-benchmark" / "run.json" in RUN_FILES


@pytest.mark.parametrize("run_file", RUN_FILES, ids=lambda path: str(path.parent.relative_to(ROOT / "results")))
def test_a_committed_run_has_the_identity_the_code_computes(run_file: Path) -> None:
    config = json.loads(run_file.read_text())["config"]
    folder = str(run_file.parent.relative_to(ROOT))
    now = _as_json(_spec_of(config).config())
    for then, table in zip(config["operators"], now["operators"]):
        # The noise parameters are in an identity exactly when the run set them: Gaussian runs have none.
        assert set(table["params"]) & set(NOISE_NAMES) == set(then["params"]) & set(NOISE_NAMES)
    if folder not in OLDER_THAN_A_PARAMETER:
        check_same_run(run_file.parent, without_code(config), without_code(now))
        return
    label, missing = OLDER_THAN_A_PARAMETER[folder]
    with pytest.raises(UsageError, match="holds a different run"):
        check_same_run(run_file.parent, without_code(config), without_code(now))
    for then, table in zip(config["operators"], now["operators"]):
        extra = set(table["params"]) - set(then["params"])
        assert extra == ({missing} if table["label"] == label else set())
        table["params"] = {k: v for k, v in table["params"].items() if k not in extra}
    check_same_run(run_file.parent, without_code(config), without_code(now))


def _first_rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The first row of each operator label in the run's rows files."""
    first: dict[str, dict[str, Any]] = {}
    for rows_file in sorted(run_dir.glob("rows*.jsonl")):
        with rows_file.open() as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    first.setdefault(row["operator"], row)
    return first


@pytest.mark.parametrize("run_file", RUN_FILES, ids=lambda path: str(path.parent.relative_to(ROOT / "results")))
def test_a_committed_runs_rows_have_the_operator_columns_a_run_writes_now(run_file: Path) -> None:
    """The runner writes `operator.NAME` for each of Operator.params: the same columns as the committed rows."""
    config = json.loads(run_file.read_text())["config"]
    folder = str(run_file.parent.relative_to(ROOT))
    rows = _first_rows(run_file.parent)
    for table in config["operators"]:
        label = table.get("label", table["name"])
        if label not in rows:
            continue
        written = {k: v for k, v in rows[label].items() if k.startswith("operator.")}
        params = Operator.create(table["name"], table["params"], label).params
        now = {f"operator.{k}": v for k, v in _as_json(params).items()}
        if OLDER_THAN_A_PARAMETER.get(folder, ("", ""))[0] == label:
            now.pop(f"operator.{OLDER_THAN_A_PARAMETER[folder][1]}")
        assert written == now
