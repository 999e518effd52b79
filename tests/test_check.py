"""`bench check` on plugins as users write them: the README's example passes; each deliberate defect fails with
its reason (wrong shape, NaN, a norm over the batch, an oracle that reads the truth through a global)."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.solvers import SOLVERS

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = """
import torch
from ipbench import Solver, register_solver
from ipbench.operators import back_project
"""
BROKEN = {
    "wrong-shape": ("return back_project(op, y)[..., 1:]", "output", "solver returned shape"),
    "nan-output": ("x = back_project(op, y).clone(); x[0] = float('nan'); return x", "finite", "have NaN or inf"),
    "batch-norm": ("x = back_project(op, y); return x - x.mean() + 0.5", "batch-invariant", "max difference"),
    "oracle": ("x = TRUTH.get('x'); return x[: y.shape[0]] + 0.0 if x is not None and len(x) >= y.shape[0] "
               "and x.shape[1:] == y.shape[1:] else back_project(op, y)", "ground-truth", "used more than y"),
}
ORACLE_SPY = """
import ipbench.checks.gaussian_truth as gt
TRUTH = {}
_make = gt.make_problem
def _spy(*args, **kwargs):
    problem = _make(*args, **kwargs)
    TRUTH["x"] = problem.x  # the truth, kept in a global for the solver to read
    return problem
gt.make_problem = _spy
"""


def _plugin(tmp_path: Path, name: str, body: str, extra: str = "") -> Path:
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(HEADER + extra + textwrap.dedent(f"""
        @register_solver
        class Broken(Solver):
            name = "{name}"

            def solve(self, y, op, model, generators):
                {body}
        """))
    return path


def _check(plugin: Path, name: str, *ops: str):
    args = ["check", "--plugin", str(plugin), "--solver", name]
    for op in ops:
        args += ["--op", op]
    return CliRunner().invoke(cli, args)


@pytest.fixture(autouse=True)
def forget_plugins():
    yield
    from ipbench import plugins

    for name in [*BROKEN, "shrink", "projected-ddim"]:
        SOLVERS._items.pop(name, None)
    plugins._loaded_files.clear()


@pytest.mark.parametrize("file, name", [("my_solver.py", "shrink"), ("my_diffusion_solver.py", "projected-ddim")])
def test_the_readme_solvers_pass(tmp_path, file, name):
    code = re.search(rf"```python\n# {file}\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / file).write_text(code)
    result = _check(tmp_path / file, name)
    assert result.exit_code == 0, result.output
    assert re.search(r"^33 passed, 0 failed$", result.output, re.M)  # 5 contract checks x 6 operators, 3 truths
    assert "PASS  ground-truth     inpaint-random  R = MSE / MMSE" in result.output


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_defect_fails_with_its_reason(tmp_path, name):
    body, what, reason = BROKEN[name]
    plugin = _plugin(tmp_path, name, body, ORACLE_SPY if name == "oracle" else "")
    result = _check(plugin, name, "inpaint-random")
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert failed and all(what in line for line in failed[:1]), result.output
    assert any(reason in line for line in failed), result.output
    assert re.search(r"^\d+ passed, [1-9]\d* failed$", result.output, re.M)


def test_operator_parameters_reach_the_checks():
    """--param sets the operators' parameters too: tweedie is the exact posterior mean for denoising at
    whatever sigma_y it is checked on, so its ratio is 1."""
    result = CliRunner().invoke(cli, ["check", "--solver", "tweedie", "--op", "denoise", "--param", "sigma_y=0.1"])
    assert result.exit_code == 0, result.output
    assert "on denoise (sigma_y=0.1)" in result.output
    assert "R = MSE / MMSE = 1.000" in result.output
