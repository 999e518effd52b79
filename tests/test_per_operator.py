"""Per-operator solver values in a suite: the precedence of defaults, preset, table keys, per_operator tables
and --param; rows and run.json that record the values each operator ran with; the run's identity; and a
one-line error for each bad per_operator, preset or tuned input."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import check_same_run, load_suite, make_spec
from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.results.rows import run_rows

OPERATORS = """
[[operator]]
name = "inpaint-box"
label = "box"
[[operator]]
name = "sr"
[[operator]]
name = "denoise"
"""


def _suite(tmp_path: Path, solver: str, head: str = "") -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(head + OPERATORS + solver)
    return path


def _values(path: Path, params: tuple[str, ...] = (), preset: str | None = None) -> dict[str, dict[str, Any]]:
    """{operator label: the values the first solver runs with there}."""
    spec = make_spec(path, [], [], list(params), preset)
    entry = spec.solvers[0]
    return {o.label: entry.solver_for(o).hyperparameters() for o in spec.operators}


# Each layer over the one below: field defaults < preset (by family) < table keys < per_operator < --param.
@pytest.mark.parametrize("solver, params, expected", [
    ('name = "dps"\n', (), {"box": (1.0, 100, "grad"), "sr": (1.0, 100, "grad"), "denoise": (1.0, 100, "grad")}),
    ('name = "dps"\npreset = "paper"\n', (),  # the DPS configs' scales; no denoising config: defaults there
     {"box": (0.5, 1000, "residual"), "sr": (0.3, 1000, "residual"), "denoise": (1.0, 100, "grad")}),
    ('name = "dps"\npreset = "paper"\nsteps = 100\n', (),  # a table key beats the preset: CPU steps, paper zeta
     {"box": (0.5, 100, "residual"), "sr": (0.3, 100, "residual"), "denoise": (1.0, 100, "grad")}),
    ('name = "dps"\npreset = "paper"\nsteps = 100\n[solver.per_operator."box"]\nzeta = 2.0\n', (),
     {"box": (2.0, 100, "residual"), "sr": (0.3, 100, "residual"), "denoise": (1.0, 100, "grad")}),
    ('name = "dps"\nzeta = 3.0\n[solver.per_operator."sr"]\nzeta = 0.7\nsteps = 7\n', (),
     {"box": (3.0, 100, "grad"), "sr": (0.7, 7, "grad"), "denoise": (3.0, 100, "grad")}),
    ('name = "dps"\npreset = "paper"\n[solver.per_operator."box"]\nzeta = 2.0\n', ("dps.zeta=4", "steps=9"),
     {"box": (4.0, 9, "residual"), "sr": (4.0, 9, "residual"), "denoise": (4.0, 9, "grad")}),  # --param: last word
], ids=["defaults", "preset", "table-over-preset", "per-operator-over-table", "per-operator-without-preset",
        "param-over-everything"])
def test_each_layer_overrides_the_one_below(tmp_path: Path, solver: str, params: tuple[str, ...],
                                            expected: dict[str, tuple[float, int, str]]) -> None:
    values = _values(_suite(tmp_path, "[[solver]]\n" + solver), params)
    assert {label: (v["zeta"], v["steps"], v["normalize"]) for label, v in values.items()} == expected


def test_the_cli_preset_replaces_the_suites_and_none_removes_it(tmp_path: Path) -> None:
    path = _suite(tmp_path, '[[solver]]\nname = "dps"\n', head='preset = "paper"\n')
    assert _values(path)["sr"]["zeta"] == 0.3  # the suite-wide preset
    assert _values(path, preset="none")["sr"]["zeta"] == 1.0
    plain = _suite(tmp_path, '[[solver]]\nname = "dps"\n')
    assert _values(plain, preset="paper")["box"]["zeta"] == 0.5


def test_a_preset_value_that_assumes_another_setting_is_refused_under_it(tmp_path: Path) -> None:
    """DPS's paper zeta is the code's scale of the residual rule: with normalize = grad it would be another step."""
    path = _suite(tmp_path, '[[solver]]\nname = "dps"\npreset = "paper"\nnormalize = "grad"\n')
    with pytest.raises(UsageError, match=r"solver dps on operator box: preset paper sets zeta = 0\.5, which "
                                         r"assumes normalize = 'residual', but normalize = 'grad' here") as caught:
        load_suite(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    explicit = _suite(tmp_path, '[[solver]]\nname = "dps"\npreset = "paper"\nnormalize = "grad"\nzeta = 1.0\n')
    assert _values(explicit)["box"]["steps"] == 1000  # zeta set too: only the step count comes from the preset


def _run(path: Path, small_model_path: Path, out: Path) -> list[dict[str, Any]]:
    spec = make_spec(path, [], [], [], model=str(small_model_path), images="photos", num_images=2)
    run(spec, out=out, progress=False)
    return run_rows(out)


def test_rows_and_run_json_record_what_each_operator_ran_with(tmp_path: Path, small_model_path: Path) -> None:
    tuned = {"fields": ["sigma"], "image_set": "photos", "ids": ["x"], "seeds": [0], "budget": 4}
    path = _suite(tmp_path, '[[solver]]\nname = "hole-fill"\nsigma = 1.5\n[solver.per_operator."denoise"]\n'
                            'sigma = 3.0\n[solver.per_operator."denoise".tuned]\nfields = ["sigma"]\n'
                            'image_set = "photos"\nids = ["x"]\nseeds = [0]\nbudget = 4\n')
    rows = _run(path, small_model_path, tmp_path / "run")
    assert {(r["operator"], r["solver.sigma"]) for r in rows} == {("box", 1.5), ("sr", 1.5), ("denoise", 3.0)}
    table = json.loads((tmp_path / "run" / "run.json").read_text())["config"]["solvers"][0]
    assert table["params"] == {"sigma": 1.5}  # the all-operator values, as before
    assert table["per_operator"] == {"denoise": {"params": {"sigma": 3.0}, "tuned": tuned}}
    assert "preset" not in table and "tuned" not in table

    # ... and the rows are those of the values recorded: the same as a run with sigma 3 everywhere, on denoise
    everywhere = _suite(tmp_path, '[[solver]]\nname = "hole-fill"\nsigma = 3.0\n')
    same = {(r["image"], r["psnr"]) for r in _run(everywhere, small_model_path, tmp_path / "s3")
            if r["operator"] == "denoise"}
    assert {(r["image"], r["psnr"]) for r in rows if r["operator"] == "denoise"} == same
    assert {r["psnr"] for r in rows if r["operator"] == "denoise"} != {
        r["psnr"] for r in run_rows(tmp_path / "s3") if r["operator"] == "box"}


def test_check_model_and_as_run_use_the_instance_each_operator_runs(tmp_path: Path, small_model_path: Path) -> None:
    path = _suite(tmp_path, '[[solver]]\nname = "tweedie"\n[solver.per_operator."denoise"]\nt = 30\n')
    rows = _run(path, small_model_path, tmp_path / "run")
    ran = {r["operator"]: (r["solver.t"], r["ran.t"]) for r in rows}
    assert ran["denoise"] == (30, 30) and ran["box"][0] is None and ran["box"][1] != 30  # the matched time there
    too_late = _suite(tmp_path, '[[solver]]\nname = "tweedie"\n[solver.per_operator."sr"]\nt = 5000\n')
    with pytest.raises(UsageError, match=r"^solver tweedie on operator sr: solver tweedie\.t=5000: must be a "
                                         r"diffusion time of the model, 0\.\.999$"):
        _run(too_late, small_model_path, tmp_path / "late")
    assert not (tmp_path / "late").exists()  # refused before anything was written


def test_only_the_operators_of_a_preset_or_per_operator_table_change_and_plain_configs_stay_as_they_were(
        tmp_path: Path) -> None:
    plain = make_spec(_suite(tmp_path, '[[solver]]\nname = "dps"\nzeta = 0.5\n'), [], [], []).config()
    assert set(plain["solvers"][0]) == {"name", "label", "params", "code"}  # no new keys: old runs still resume
    same_values = make_spec(_suite(tmp_path, '[[solver]]\nname = "dps"\nzeta = 0.5\n'
                                             '[solver.per_operator."sr"]\nzeta = 0.5\n'), [], [], []).config()
    assert same_values == plain  # a per_operator value equal to the table's changes no row, nor the identity


@pytest.mark.parametrize("change", [
    '[solver.per_operator."sr"]\nzeta = 0.6\n',
    'preset = "paper"\n',
    '[solver.tuned]\nfields = ["zeta"]\nimage_set = "fashion32-val"\n',
    '[solver.per_operator."sr"]\nzeta = 0.5\n[solver.per_operator."sr".tuned]\nfields = ["zeta"]\nimage_set = "x"\n',
], ids=["per-operator-value", "preset", "tuned", "per-operator-tuned"])
def test_a_changed_per_operator_value_preset_or_provenance_is_another_run(tmp_path: Path, change: str) -> None:
    base = make_spec(_suite(tmp_path, '[[solver]]\nname = "dps"\nzeta = 0.5\n'), [], [], [])
    changed = make_spec(_suite(tmp_path, '[[solver]]\nname = "dps"\nzeta = 0.5\n' + change), [], [], [])
    assert changed.default_out() != base.default_out()
    with pytest.raises(UsageError, match="the folder holds a different run"):
        check_same_run(tmp_path / "run", json.loads(json.dumps(base.config())), changed.config())


def test_a_resume_with_another_per_operator_value_is_refused(tmp_path: Path, small_model_path: Path) -> None:
    first = _suite(tmp_path, '[[solver]]\nname = "hole-fill"\n[solver.per_operator."sr"]\nsigma = 2.0\n')
    _run(first, small_model_path, tmp_path / "run")
    again = CliRunner().invoke(cli, ["run", "--config", str(first), "--model", str(small_model_path), "--images",
                                     "photos", "--num-images", "2", "--out", str(tmp_path / "run"), "--no-progress"])
    assert again.exit_code == 0 and "rows: 0 new, 6 already done" in again.output
    other = _suite(tmp_path, '[[solver]]\nname = "hole-fill"\n[solver.per_operator."sr"]\nsigma = 2.5\n')
    refused = CliRunner().invoke(cli, ["run", "--config", str(other), "--model", str(small_model_path), "--images",
                                       "photos", "--num-images", "2", "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and "the folder holds a different run" in refused.output


AT = "[[solver]] number 1 (dps)"
TUNED = '[solver.tuned]\nfields = ["zeta"]\nimage_set = "fashion32-val"\n'


@pytest.mark.parametrize("solver, message", [
    ('[solver.per_operator."deblur"]\nzeta = 1.0\n',
     f'{AT}: per_operator."deblur": not an operator label of this suite; its labels: box, sr, denoise'),
    ('[solver.per_operator."inpaint-box"]\nzeta = 1.0\n',  # the registry name, not the suite's label
     f'{AT}: per_operator."inpaint-box": not an operator label of this suite'),
    ('operators = ["box"]\n[solver.per_operator."sr"]\nzeta = 1.0\n',
     f"{AT}: per_operator.\"sr\": the solver does not run on it (operators = ['box'])"),
    ('[solver.per_operator."sr"]\nzetta = 1.0\n', f'{AT} per_operator."sr" has no parameter \'zetta\'; valid: steps'),
    ('[solver.per_operator."sr"]\nzeta = -1.0\n', f'{AT} per_operator."sr".zeta=-1.0: must be >= 0'),
    ('[solver.per_operator."sr"]\nnormalize = "res"\n', f'{AT} per_operator."sr".normalize=\'res\': valid values are'),
    ('[solver.per_operator."sr"]\nname = "ddrm"\n', f'{AT}: per_operator."sr".name: not a per-operator key'),
    ('per_operator = 3\n', f"{AT}: per_operator must hold one table per operator label"),
    ('preset = "papr"\n', f"{AT}: preset 'papr' is unknown; valid: paper, none"),
    ('preset = 1\n', f"{AT}: preset = 1; expected a preset name"),
    ('tuned = 3\n', f"{AT}: tuned = 3; expected a table of tuning provenance"),
    ('[solver.tuned]\nimage_set = "fashion32-val"\n', f"{AT}: tuned has no 'fields'; a tuned table needs fields, "
                                                      "image_set"),
    ('zeta = 0.5\n' + TUNED + 'ids = [5000, 5001]\n', f"{AT}: tuned.ids = [5000, 5001]; expected a list of image ids "
                                                      "as strings"),
    ('zeta = 0.5\n' + TUNED + 'budget = 0\n', f"{AT}: tuned.budget = 0; expected an integer >= 1"),
    ('zeta = 0.5\n' + TUNED + 'best = nan\n', f"{AT}: tuned.best = nan; expected a finite number"),
    ('zeta = 0.5\n' + TUNED + 'bset = 1.0\n', f"{AT}: tuned: unknown key 'bset'; valid: fields, image_set"),
    ('zeta = 0.5\n' + TUNED.replace('["zeta"]', '[]'), f"{AT}: tuned.fields = []; expected a non-empty list"),
    (TUNED, f"{AT}: tuned.fields lists 'zeta', which this table does not set (it sets nothing)"),
    ('[solver.per_operator."sr"]\nsteps = 5\n[solver.per_operator."sr".tuned]\nfields = ["zeta"]\nimage_set = "v"\n',
     f"{AT}: per_operator.\"sr\".tuned.fields lists 'zeta', which this table does not set (it sets steps)"),
], ids=["unknown-label", "registry-name", "not-run-there", "unknown-field", "bad-value", "bad-choice",
        "not-a-field-key", "not-a-table", "unknown-preset", "preset-not-a-string", "tuned-not-a-table",
        "tuned-without-fields", "tuned-int-ids", "tuned-budget", "tuned-nan", "tuned-unknown-key",
        "tuned-no-fields", "tuned-field-not-set", "per-operator-tuned-field-not-set"])
def test_bad_per_operator_preset_and_tuned_inputs_are_one_line_errors(tmp_path: Path, solver: str,
                                                                       message: str) -> None:
    path = _suite(tmp_path, '[[solver]]\nname = "dps"\n' + solver)
    with pytest.raises(UsageError) as caught:
        load_suite(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"--config {path}: ") and message in text, text
    done = CliRunner().invoke(cli, ["run", "--config", str(path)])
    assert done.exit_code == 2 and done.output.strip().splitlines() == [f"Error: {text}"]


def test_an_unknown_cli_preset_is_one_line(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["run", "--solver", "dps", "--op", "inpaint", "--preset", "papers"])
    assert done.exit_code == 2
    assert done.output.strip() == "Error: --preset: preset 'papers' is unknown; valid: paper, none"


def test_a_suite_wide_preset_that_is_unknown_is_one_line(tmp_path: Path) -> None:
    path = _suite(tmp_path, '[[solver]]\nname = "dps"\n', head='preset = "official"\n')
    with pytest.raises(UsageError, match=rf"^--config {path}: preset 'official' is unknown; valid: paper, none$"):
        load_suite(path)


def test_the_readmes_suite_example_runs_its_per_operator_value(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index('    model = "fashion32"\n    seeds = [0, 1, 2]')
    path = tmp_path / "readme.toml"
    path.write_text("\n".join(line[4:] for line in text[start:text.index("\n\n", start)].splitlines()))
    table = load_suite(path).config()["solvers"][0]
    assert table["params"]["zeta"] == 0.5 and table["per_operator"] == {"inpaint-random": {"params": {"zeta": 0.3}}}
