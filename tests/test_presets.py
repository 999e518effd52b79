"""Paper presets: every value is a valid value of its field and cites its source; a preset applies by operator
family whatever the suite's label; families it lacks keep the defaults and run.json says so; `--preset paper`
end to end from the CLI and from a suite; docs/solvers.md's tables are the presets'; the comparison suites
put the DPS code's residual rule beside `dps`, and the committed baselines' settings are unchanged."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipbench.benchmark.spec import build_spec, load_suite, without_code
from ipbench.cli import cli
from ipbench.operators import OPERATORS
from ipbench.params import coerce
from ipbench.results.rows import run_rows
from ipbench.solvers import SOLVERS
from ipbench.solvers.presets import PAPER, markdown_table

ROOT = Path(__file__).resolve().parents[1]
PRESETS = [(name, preset_name, preset) for name in SOLVERS
           for preset_name, preset in SOLVERS.get(name).presets.items()]
SOURCE = re.compile(r"^[\w./*-]+\.(py|yaml|yml|sh|md):\d+(-\d+)?(, (\d+(-\d+)?|[\w./*-]+:\d+(-\d+)?))*$")


def test_the_solvers_with_published_per_task_settings_carry_a_paper_preset() -> None:
    assert {name for name, preset_name, _ in PRESETS if preset_name == PAPER} == {
        "dps", "diffpir", "ddrm", "daps", "latent-daps", "reddiff", "pigdm", "ddnm", "repaint", "flowdps", "d-flow",
        "pnp-flow", "ot-ode"}


@pytest.mark.parametrize("name, preset_name, preset", PRESETS, ids=[f"{n}-{p}" for n, p, _ in PRESETS])
def test_each_preset_value_is_valid_for_its_field_and_cites_its_source(name: str, preset_name: str, preset) -> None:
    cls = SOLVERS.get(name)
    fields = {p.name: p for p in cls.params()}
    assert re.fullmatch(r"github\.com/[\w.-]+/[\w.-]+ at [0-9a-f]{7}", preset.repository), preset.repository
    assert preset.operators
    for family, settings in preset.operators.items():
        assert family in OPERATORS and OPERATORS.canonical(family) == family, family  # a registry name
        assert settings, family
        for field, setting in settings.items():
            assert field in fields, (family, field)
            value = coerce(fields[field], setting.value, f"{name} preset {preset_name} {family}")
            assert value == setting.value and type(value) is type(setting.value), (family, field)
            assert SOURCE.fullmatch(setting.source), (family, field, setting.source)
            for other, needed in setting.assumes.items():
                assert coerce(fields[other], needed, name) == needed
        values = {f: s.value for f, s in settings.items()}
        cls.create(values)  # the family's values together build the solver
        for field, setting in settings.items():  # what a value assumes is what the preset sets beside it
            for other, needed in setting.assumes.items():
                assert values.get(other) == needed, (family, field, other)


@pytest.mark.parametrize("name, preset_name, preset", PRESETS, ids=[f"{n}-{p}" for n, p, _ in PRESETS])
def test_docs_solvers_md_shows_each_preset_as_the_code_has_it(name: str, preset_name: str, preset) -> None:
    assert markdown_table(name, preset_name, preset) in (ROOT / "docs" / "solvers.md").read_text()


def test_a_preset_applies_by_family_under_any_label_and_records_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "suite.toml"
    path.write_text('[[operator]]\nname = "inpaint-box"\nlabel = "hole"\n[[operator]]\nname = "deblur-motion"\n'
                    '[[operator]]\nname = "denoise"\nlabel = "noisy"\n'
                    '[[solver]]\nname = "daps"\npreset = "paper"\nsteps = 3\n'
                    '[[solver]]\nname = "diffpir"\npreset = "paper"\n'
                    '[[solver]]\nname = "tweedie"\npreset = "paper"\n')
    spec = load_suite(path)
    daps, diffpir, tweedie = spec.solvers
    hole, motion, noisy = spec.operators
    assert (daps.solver_for(hole).lr, daps.solver_for(motion).lr) == (1.0, 1.0)  # the code's 5e-5 for both
    assert daps.solver_for(hole).steps == 3 and daps.solver_for(hole).langevin_steps == 100
    assert daps.solver_for(noisy) is daps.solver  # no denoising task config: the entry's own values
    assert (diffpir.solver_for(hole).lambda_, diffpir.solver_for(hole).zeta, diffpir.solver_for(hole).steps) == (
        1.0, 1.0, 20)
    assert (diffpir.solver_for(motion).lambda_, diffpir.solver_for(motion).zeta) == (7.0, 0.3)
    tables = spec.config()["solvers"]
    assert tables[0]["preset"] == "paper" and tables[0]["preset_missing"] == ["noisy"]
    assert tables[0]["per_operator"]["hole"]["params"]["langevin_steps"] == 100  # only what differs: lr 1 is the default
    assert tables[2]["preset_missing"] == ["hole", "deblur-motion", "noisy"] and "per_operator" not in tables[2]
    assert tables[2]["params"] == SOLVERS.get("tweedie").create().hyperparameters()


def test_without_a_preset_every_solver_keeps_its_defaults() -> None:
    spec = build_spec(list(SOLVERS), ["inpaint-box", "sr"])
    for entry, table in zip(spec.solvers, spec.config()["solvers"]):
        assert table["params"] == type(entry.solver)().hyperparameters()
        assert set(table) - {"operators"} == {"name", "label", "params", "code"}
        assert all(entry.solver_for(o) is entry.solver for o in spec.operators)


def test_bench_run_preset_paper_end_to_end(tmp_path: Path, small_model_path: Path) -> None:
    """--preset paper with a CPU step budget: the paper's per-task DPS scale and rule, 3 steps."""
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["run", "--solver", "dps", "--solver", "hole-fill", "--op", "inpaint-box", "--op",
                                    "sr", "--op", "denoise", "--preset", "paper", "--param", "dps.steps=3",
                                    "--model", str(small_model_path), "--images", "photos", "--num-images", "2",
                                    "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "    on inpaint-box: zeta=0.5, normalize=residual" in done.stderr
    assert "preset paper has no setting for denoise" in done.stderr
    used = {(r["solver"], r["operator"]): (r["solver.zeta"], r["solver.normalize"], r["solver.steps"], r["nfe"])
            for r in run_rows(out) if r["solver"] == "dps"}
    assert used == {("dps", "inpaint-box"): (0.5, "residual", 3, 3), ("dps", "sr"): (0.3, "residual", 3, 3),
                    ("dps", "denoise"): (1.0, "grad", 3, 3)}
    tables = json.loads((out / "run.json").read_text())["config"]["solvers"]
    assert [t.get("preset") for t in tables] == ["paper", "paper"]
    assert tables[0]["preset_missing"] == ["denoise"]
    assert tables[1]["preset_missing"] == ["inpaint-box", "sr", "denoise"]  # hole-fill has no paper


def test_a_suites_preset_end_to_end(tmp_path: Path, small_model_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text('preset = "paper"\n[[operator]]\nname = "inpaint-box"\n[[operator]]\nname = "deblur-gauss"\n'
                     '[[solver]]\nname = "diffpir"\nsteps = 3\n[[solver]]\nname = "ddrm"\npreset = "none"\n'
                     'steps = 4\n')
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["run", "--config", str(suite), "--model", str(small_model_path), "--images",
                                    "photos", "--num-images", "2", "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    used = {(r["solver"], r["operator"]): (r.get("solver.lambda_"), r.get("solver.zeta"), r["solver.steps"])
            for r in run_rows(out)}
    assert used == {("diffpir", "inpaint-box"): (1.0, 1.0, 3), ("diffpir", "deblur-gauss"): (7.0, 0.3, 3),
                    ("ddrm", "inpaint-box"): (None, None, 4), ("ddrm", "deblur-gauss"): (None, None, 4)}
    tables = json.loads((out / "run.json").read_text())["config"]["solvers"]
    assert tables[0]["preset"] == "paper" and "preset" not in tables[1]


@pytest.mark.parametrize("suite, dps_label", [("baselines.toml", "dps"), ("seed-table.toml", "DPS")])
def test_the_comparison_suites_put_the_residual_rule_beside_dps(suite: str, dps_label: str) -> None:
    spec = load_suite(ROOT / "configs" / suite)
    by_label = {e.label: e for e in spec.solvers}
    dps, residual = by_label[dps_label], by_label[f"{dps_label}-residual"]
    assert dps.solver.normalize == "grad" and dps.preset is None  # the default rule, unchanged
    assert residual.preset == PAPER and residual.operators == dps.operators
    for operator in (o for o in spec.operators if dps.runs_on(o.label)):
        solver, plain = residual.solver_for(operator), dps.solver_for(operator)
        paper = SOLVERS.get("dps").presets[PAPER].settings(operator.name)
        assert solver.normalize == "residual" and solver.steps == plain.steps  # the same step budget
        assert solver.zeta == paper["zeta"].value, operator.label


def test_the_committed_baselines_ran_the_settings_configs_baselines_still_gives_them() -> None:
    """Adding dps-residual changed no other entry: each is what results/fashion32-baselines ran."""
    committed = json.loads((ROOT / "results" / "fashion32-baselines" / "run.json").read_text())["config"]
    now = without_code(json.loads(json.dumps(load_suite(ROOT / "configs" / "baselines.toml").config())))
    assert [s for s in now["solvers"] if s["label"] != "dps-residual"] == without_code(committed)["solvers"]
