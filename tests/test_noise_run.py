"""`bench run` with Poisson noise and sigma_y = 0 (issue 23's "done when"): it runs, the rows, run.json and the
table say which noise each operator had, the same command resumes, and bad noise values are one line."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.results.rows import run_rows
from ipbench.solvers.dps import CODE_POISSON


def _run(tmp_path: Path, model: Path, *extra: str):
    return CliRunner().invoke(cli, ["run", "--solver", "dps", "--solver", "tweedie", "--op", "denoise", "--op",
                                    "inpaint-box", "--param", "dps.steps=3", "--model", str(model), "--images",
                                    "photos", "--num-images", "2", "--out", str(tmp_path / "run"), "--no-progress",
                                    *extra])


def test_poisson_noise_with_sigma_y_0_runs_and_is_recorded(tmp_path: Path, small_model_path: Path) -> None:
    poisson = ["--param", "denoise.noise=poisson", "--param", "denoise.sigma_y=0"]
    done = _run(tmp_path, small_model_path, *poisson)
    assert done.exit_code == 0, done.output
    out = tmp_path / "run"
    rows = run_rows(out)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        if row["operator"] == "denoise":
            assert (row["operator.noise"], row["operator.rate"], row["operator.sigma_y"]) == ("poisson", 255.0, 0.0)
            assert row.get("ran.likelihood") == (CODE_POISSON if row["solver"] == "dps" else None)
        else:  # a Gaussian operator's columns are what they always were
            assert not {"operator.noise", "operator.rate", "ran.likelihood"} & set(row)
            assert row["operator.sigma_y"] == 0.025
    meta = json.loads((out / "run.json").read_text())
    denoise, box = meta["config"]["operators"]
    assert denoise["params"] == {"sigma_y": 0.0, "noise": "poisson", "rate": 255.0}
    assert box["params"] == {"sigma_y": 0.025, "side": 0.5, "position": "center"}
    assert "poisson" in meta["conventions"]["noise"]
    table = (out / "table.md").read_text()
    assert ("Noise: denoise Poisson, rate 255 photons per unit intensity; inpaint-box Gaussian, sigma_y 0.025. "
            in table)
    again = _run(tmp_path, small_model_path, *poisson)  # the same run: resumes, nothing to do
    assert again.exit_code == 0, again.output
    assert len(run_rows(out)) == 8


def test_a_gaussian_runs_table_says_nothing_new(tmp_path: Path, small_model_path: Path) -> None:
    done = _run(tmp_path, small_model_path)
    assert done.exit_code == 0, done.output
    assert "Noise:" not in (tmp_path / "run" / "table.md").read_text()
    assert not any(k.startswith("operator.noise") for r in run_rows(tmp_path / "run") for k in r)


def test_bad_noise_values_are_one_line_errors_before_anything_runs(tmp_path: Path, small_model_path: Path) -> None:
    for extra, message in [
        (["--param", "noise=poisson"], "operator denoise.sigma_y=0.025: noise=poisson has no Gaussian part"),
        (["--param", "denoise.rate=100"], "operator denoise.rate=100.0: applies to noise=poisson or "
                                          "noise=poisson-gaussian only"),
        (["--param", "denoise.noise=shot"], "operator denoise.noise='shot': valid values are gaussian, poisson, "
                                            "poisson-gaussian"),
    ]:
        done = _run(tmp_path, small_model_path, *extra)
        assert done.exit_code == 2, done.output
        lines = done.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.output
        assert not (tmp_path / "run").exists()


def test_bench_check_under_poisson_noise_runs_the_contract_and_no_gaussian_truth() -> None:
    """The exact posterior of bench check's ground truth is Gaussian noise's: under Poisson noise it is n/a,
    while the contract (shape, finiteness, batch invariance) still runs on the Poisson measurement."""
    result = CliRunner().invoke(cli, ["check", "--solver", "tweedie", "--op", "denoise", "--param", "noise=poisson",
                                      "--param", "sigma_y=0"])
    assert result.exit_code == 0, result.output
    assert "on denoise (sigma_y=0.0, noise=poisson, rate=255.0)" in result.output
    assert "n/a: the exact posterior is for Gaussian noise, not poisson" in result.output
    assert "PASS  batch-invariant" in result.output and "R = MSE / MMSE" not in result.output
