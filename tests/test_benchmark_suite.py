"""The held-out comparisons' protocol, checked on the committed files: every suite in configs/ loads; each
tuned comparison's (the linear benchmark's and the nonlinear one's) tuned entries are its tune's tuned.toml verbatim, tuned on fashion32-val and evaluated on
fashion32-test, one budget for every pair; its paper rows cost what its tuned rows cost; and the committed
run evaluates on no image any of its parameters was tuned on."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from ipbench.benchmark.spec import load_suite
from ipbench.results.evaluated_on import evaluation_warnings
from ipbench.solvers import SOLVERS
from ipbench.solvers.presets import PAPER

ROOT = Path(__file__).resolve().parents[1]

class Comparison(NamedTuple):
    suite: Path  # the evaluation suite, whose tuned block is the tune's tuned.toml
    tune_suite: Path  # the suite `bench tune` ran
    run: Path  # the committed evaluation run
    papers: frozenset[str]  # the labels of its paper-preset rows


COMPARISONS = [
    Comparison(ROOT / "configs" / "benchmark-fashion32.toml", ROOT / "configs" / "benchmark-fashion32-tune.toml",
               ROOT / "results" / "fashion32-benchmark",
               frozenset({"dps-paper", "diffpir-paper", "reddiff-paper", "daps-paper"})),
    Comparison(ROOT / "configs" / "nonlinear-fashion32.toml", ROOT / "configs" / "nonlinear-fashion32-tune.toml",
               ROOT / "results" / "fashion32-nonlinear", frozenset({"dps-paper", "reddiff-paper", "daps-paper"})),
]
by_suite = pytest.mark.parametrize("comparison", COMPARISONS, ids=lambda c: c.suite.stem)
COST_FIELDS = {"steps", "jump_n_sample"}  # what a step budget fixes: steps, and RePaint's resampling passes
BEGIN, END = "# --- tuned: ", "# --- end of tuned ---"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.toml")), ids=lambda p: p.name)
def test_every_committed_suite_loads(path: Path) -> None:
    assert load_suite(path).solvers


def _tuned_tables(text: str) -> list[dict]:
    return tomllib.loads(text).get("solver", [])


@by_suite
def test_the_suites_tuned_entries_are_its_tunes_tuned_toml_verbatim(comparison: Comparison) -> None:
    text = comparison.suite.read_text()
    between = text[text.index(BEGIN):text.index(END)].split("\n", 1)[1]
    tuned = (comparison.run / "tuning" / "tuned.toml").read_text()
    assert between.strip() == tuned[tuned.index("[[solver]]"):].strip()
    tune_suite = {(s["name"], s.get("label", s["name"])) for s in _tuned_tables(
        comparison.tune_suite.read_text())}
    assert {(s["name"], s.get("label", s["name"])) for s in _tuned_tables(between)} == tune_suite


@by_suite
def test_every_tuned_pair_had_the_same_budget_on_the_validation_split(comparison: Comparison) -> None:
    spec = load_suite(comparison.suite)
    assert spec.images == "fashion32-test" and spec.num_images >= 100 and len(spec.seeds) >= 2
    tables = [t["tuned"] for s in _tuned_tables(comparison.suite.read_text()) for t in s.get("per_operator", {}).values()]
    assert tables, "no tuned pair in the suite"
    assert {t["image_set"] for t in tables} == {"fashion32-val"}
    assert len({t["budget"] for t in tables}) == 1 and all(t["trials"] == t["budget"] for t in tables)
    assert len({json.dumps(t["ids"]) for t in tables}) == 1  # every pair tuned on the same images


@by_suite
def test_paper_rows_run_the_step_counts_of_the_tuned_rows(comparison: Comparison) -> None:
    spec = load_suite(comparison.suite)
    by_label = {e.label: e for e in spec.solvers}
    papers = [e for e in spec.solvers if e.preset == PAPER]
    assert {e.label for e in papers} == comparison.papers
    for paper in papers:
        tuned = by_label[paper.name]
        for operator in (o for o in spec.operators if paper.runs_on(o.label)):
            mine, theirs = paper.solver_for(operator), tuned.solver_for(operator)
            steps = [p.name for p in mine.params() if p.name.endswith("steps")]
            assert {s: getattr(mine, s) for s in steps} == {s: getattr(theirs, s) for s in steps}, paper.label


def test_presets_left_out_are_the_defaults_at_the_step_budget() -> None:
    """ddrm, pigdm, ddnm and repaint have no paper row: their presets differ from their defaults in step
    counts only (the suite's header says so)."""
    for name in ("ddrm", "pigdm", "ddnm", "repaint"):
        cls = SOLVERS.get(name)
        defaults = cls().hyperparameters()
        for family, settings in cls.presets[PAPER].operators.items():
            differ = {k for k, s in settings.items() if defaults.get(k) != s.value}
            assert differ <= COST_FIELDS, (name, family, differ)


@by_suite
def test_the_committed_run_evaluates_on_no_image_it_was_tuned_on(comparison: Comparison) -> None:
    meta = json.loads((comparison.run / "run.json").read_text())
    assert evaluation_warnings(meta) == []
    evaluated = set(meta["images"]["ids"])
    for solver in meta["config"]["solvers"]:
        for table in solver.get("per_operator", {}).values():
            assert not evaluated & set(table.get("tuned", {}).get("ids", [])), solver.get("label")
