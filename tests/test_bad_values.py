"""Every parameter value is checked before a run starts: bounds, finiteness and diffusion times against the
model's T give one line and exit 2, and nothing is written (no run folder, no failed rows)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.params import Range, TIME, check_times, param
from ipbench.solvers import SOLVERS


@pytest.mark.parametrize("solver, value, fragment", [
    ("dps", "dps.steps=0", "solver dps.steps=0: must be a step count in 1..T"),
    ("dps", "dps.steps=-5", "solver dps.steps=-5: must be a step count in 1..T"),
    ("dps", "dps.zeta=nan", "solver dps.zeta=nan: must be a finite number"),
    ("dps", "dps.zeta=-1", "solver dps.zeta=-1.0: must be >= 0"),
    ("dps", "dps.eta=2", "solver dps.eta=2.0: must be in [0, 1]"),
    ("tweedie", "tweedie.t=5000", "solver tweedie.t=5000: must be a diffusion time of the model, 0..999"),
    ("tweedie", "tweedie.t=-3", "solver tweedie.t=-3: must be a diffusion time in 0..T-1"),
    ("ddpm", "ddpm.t=-1", "solver ddpm.t=-1: must be a diffusion time in 0..T-1"),
    ("sdedit", "sdedit.t0=-5", "solver sdedit.t0=-5: must be a diffusion time in 0..T-1"),
    ("sdedit", "sdedit.t0=1000", "solver sdedit.t0=1000: must be a diffusion time of the model, 0..999"),
    ("score-ald-ddpm", "score-ald-ddpm.gamma=0", "solver score-ald-ddpm.gamma=0.0: must be > 0"),
    ("score-ald", "score-ald.eps=0", "solver score-ald.eps=0.0: must be > 0"),
    ("score-ald", "score-ald.steps_each=0", "solver score-ald.steps_each=0: must be >= 1"),
    ("tikhonov", "tikhonov.lam=inf", "solver tikhonov.lam=inf: must be a finite number"),
    ("hole-fill", "hole-fill.sigma=0", "solver hole-fill.sigma=0.0: must be > 0"),
    ("blur", "blur.sigma=0", "solver hole-fill.sigma=0.0: must be > 0"),  # the alias reaches the hole filler
    ("gaussian-filter", "gaussian-filter.kernel_size=4", "solver gaussian-filter.kernel_size=4: must be odd"),
    ("sdedit", "sdedit.guide=y", "solver sdedit.guide='y'"),
    ("hole-fill", "sigma_y=-0.1", "operator inpaint-box.sigma_y=-0.1: must be >= 0"),
    ("hole-fill", "sigma_y=inf", "operator inpaint-box.sigma_y=inf: must be a finite number"),
    ("hole-fill", "inpaint.side=1", "operator inpaint-box.side=1.0: must be in (0, 1)"),
])
def test_bad_values_stop_before_the_run(tmp_path, small_model_path, solver, value, fragment):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", solver, "--op", "inpaint", "--param", value, "--model",
                                      str(small_model_path), "--images", "photos", "--num-images", "1", "--out",
                                      str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (out / "rows.jsonl").exists()


def test_ranges_hold_for_solvers_made_directly() -> None:
    """Building a solver in Python checks its fields too (the dataclass's __post_init__)."""
    with pytest.raises(UsageError, match="solver dps.steps=0: must be a step count in 1..T"):
        SOLVERS.get("dps")(steps=0)
    assert SOLVERS.get("dps")(steps=3).steps == 3


def test_range_bounds_open_and_closed() -> None:
    r = Range(0, 1, low_open=True)
    assert not r.contains(0) and r.contains(1) and r.contains(0.5) and not r.contains(1.01)
    assert r.describe() == "in (0, 1]"
    assert Range(high=2, high_open=True).describe() == "< 2"
    assert param(3, range=TIME).metadata["range"] is TIME
    check_times([p for p in SOLVERS.get("tweedie").params()], {"t": 10}, 11, "solver tweedie")
    with pytest.raises(UsageError, match="0..10"):
        check_times([p for p in SOLVERS.get("tweedie").params()], {"t": 11}, 11, "solver tweedie")


def test_every_builtin_numeric_solver_field_declares_its_range() -> None:
    """A new numeric field without a range would let nan or a negative step count run to failed rows."""
    builtin = [name for name in SOLVERS if SOLVERS.get(name).__module__.startswith("ipbench.solvers.")]
    assert len(builtin) >= 9
    for name in builtin:
        for p in SOLVERS.get(name).params():
            numeric = p.type in (int, float, int | None, float | None)
            assert not numeric or p.range is not None, f"{name}.{p.name} declares no range"


GOOD_TABLES = '[[solver]]\nname = "hole-fill"\n[[operator]]\nname = "denoise"\n'


@pytest.mark.parametrize("text, fragment", [
    ("seeds = []\n" + GOOD_TABLES, "seeds = []; expected a list of integers"),
    ("seeds = [0.5, 1.7]\n" + GOOD_TABLES, "seeds = [0.5, 1.7]; expected a list of integers"),
    ("seeds = [true]\n" + GOOD_TABLES, "seeds = [True]; expected a list of integers"),
    ("seeds = \"0\"\n" + GOOD_TABLES, "seeds = '0'; expected a list of integers"),
    ("model = 3\n" + GOOD_TABLES, "model = 3; expected a string"),
    ("model = \"\"\n" + GOOD_TABLES, "model = ''; expected a string"),
    ("num_images = 0\n" + GOOD_TABLES, "num_images = 0; expected an integer >= 1"),
    ("num_images = 2.5\n" + GOOD_TABLES, "num_images = 2.5; expected an integer >= 1"),
    ("metrics = 5\n" + GOOD_TABLES, "metrics = 5; expected a list of metric names"),
    ("solver = \"dps\"\n[[operator]]\nname = \"denoise\"\n", "solver must be [[solver]] tables"),
    ("[[solver]]\nname = 3\n[[operator]]\nname = \"denoise\"\n", "[[solver]] number 1: name = 3; expected a non-empty string"),
    ("[[solver]]\nlabel = \"x\"\n[[operator]]\nname = \"denoise\"\n", "[[solver]] number 1 has no 'name'"),
    (GOOD_TABLES + "[[operator]]\nname = \"inpaint\"\nlabel = 7\n", "[[operator]] number 2: label = 7"),
    ("[[solver]]\nname = \"hole-fill\"\noperators = \"denoise\"\n[[operator]]\nname = \"denoise\"\n",
     "operators = 'denoise'; expected a list of operator labels"),
    ("[[solver]]\nname = \"hole-fill\"\nsigma = \"wide\"\n[[operator]]\nname = \"denoise\"\n", "hole-fill.sigma='wide': expected float"),
    (GOOD_TABLES + "[[reference]]\nsolver = \"hole-fill\"\noperator = \"denoise\"\nmetric = \"psnr\"\n",
     "[[reference]] number 1 has no 'value'"),
    (GOOD_TABLES + "[[reference]]\nsolver = \"hole-fill\"\noperator = \"denoise\"\nmetric = \"psnr\"\nvalue = \"high\"\n",
     "value = 'high'; expected a number"),
    (GOOD_TABLES + "[[reference]]\nsolver = \"hole-fill\"\noperator = \"denoise\"\nmetric = \"psnr\"\nvalue = 1\nverified = \"yes\"\n",
     "verified = 'yes'; expected a bool"),
    ("precision = \"fp16\"\n" + GOOD_TABLES, "precision = 'fp16'; valid: fp32, bf16"),
    ("[[solver\nname = \"hole-fill\"\n", "invalid TOML"),
])
def test_bad_suites_are_one_line_errors(tmp_path, text, fragment):
    suite = tmp_path / "suite.toml"
    suite.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--config", str(suite), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and str(suite) in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("args, fragment", [
    (["run", "--config", "{tmp}"], "cannot read it as a TOML file (IsADirectoryError"),
    (["sample", "-n", "1", "--steps", "1", "--out", "{tmp}"], "is a folder; give a .png file name"),
    (["sample", "-n", "1", "--steps", "1", "--out", "{tmp}/missing/deeper/x.png", "--model", "gaussian-fashion32"],
     None),  # parent folders are created: this one succeeds
    (["grid", "{tmp}"], "not a run folder (no run.json)"),
])
def test_file_mistakes_in_other_commands(tmp_path, args, fragment):
    result = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp_path)) for a in args])
    if fragment is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_an_unwritable_sample_path_is_one_line(tmp_path, monkeypatch):
    import errno
    from ipbench import files

    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(files.os, "replace", refuse)
    result = CliRunner().invoke(cli, ["sample", "-n", "1", "--steps", "1", "--model", "gaussian-fashion32",
                                      "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "Read-only file system" in result.output and "Traceback" not in result.output
