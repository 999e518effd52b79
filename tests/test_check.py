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

    from ipbench.data import IMAGE_SETS
    from ipbench.models import MODELS

    for registry in (SOLVERS, MODELS, IMAGE_SETS):  # everything a plugin of these tests registered
        for name in [n for n in registry._items if n.startswith(("defect-", "undocumented"))]:
            registry._items.pop(name, None)
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


IMPORT_EXITS = {  # what a plugin may do at import that is no success: (code, what the line says)
    "sys-exit-0": ("import sys\nsys.exit(0)\n", "it called sys.exit(0)"),
    "sys-exit-3": ("import sys\nsys.exit(3)\n", "it called sys.exit(3)"),
    "bare-system-exit": ("raise SystemExit\n", "it called sys.exit(None)"),
    "keyboard-interrupt": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "base-exception": ("class Stop(BaseException):\n    pass\nraise Stop('halt')\n", "Stop: halt"),
    "two-line-error": ("raise ValueError('first\\nsecond')\n", "ValueError: first"),
}


@pytest.mark.parametrize("command", [["check", "--solver", "tweedie", "--op", "denoise"], ["list"]])
@pytest.mark.parametrize("kind", list(IMPORT_EXITS))
def test_a_plugin_that_exits_at_import_is_one_line_error(tmp_path, command, kind):
    """Exiting (or any BaseException) at import is not "passed with no check run": one line naming the file."""
    code, said = IMPORT_EXITS[kind]
    plugin = tmp_path / f"{kind.replace('-', '_')}.py"
    plugin.write_text(code)
    result = CliRunner().invoke(cli, [*command, "--plugin", str(plugin)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: --plugin {plugin}: failed to import ({said})"]


SOLVER_DEFECTS = {  # a solver's own code failing: (class body, what the FAIL lines say)
    "unsupported-raises": ("def unsupported(self, op, like):\n    raise RuntimeError('no check')\n"
                           "def solve(self, y, op, model, generators):\n    return back_project(op, y)\n",
                           "unsupported() raised RuntimeError: no check"),
    "solve-raises": ("def solve(self, y, op, model, generators):\n    raise ValueError('bad\\nworse')\n",
                     "raised ValueError: bad"),
    "solve-exits": ("def solve(self, y, op, model, generators):\n    import sys\n    sys.exit(0)\n",
                    "raised SystemExit: 0"),
    "wrong-shape": ("def solve(self, y, op, model, generators):\n    return back_project(op, y)[:, :1]\n",
                    "solver returned shape"),
    "nan": ("def solve(self, y, op, model, generators):\n    return back_project(op, y) * float('nan')\n",
            "have NaN or inf"),
    "not-a-tensor": ("def solve(self, y, op, model, generators):\n    return None\n", "solver returned a NoneType"),
}


@pytest.mark.parametrize("defect", list(SOLVER_DEFECTS))
def test_a_failing_solver_gives_fail_lines_and_exit_1(tmp_path, defect):
    body, said = SOLVER_DEFECTS[defect]
    name = f"defect-{defect}"
    plugin = tmp_path / f"{name.replace('-', '_')}.py"
    plugin.write_text(HEADER + f"\n@register_solver\nclass Defect(Solver):\n    name = {name!r}\n"
                      + textwrap.indent(body, "    "))
    result = _check(plugin, name, "denoise")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # bench check's exit 1, not a crash
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert failed and any(said in line for line in failed), result.output
    assert all("\n" not in line for line in failed) and "worse" not in result.output
    assert re.search(r"^\d+ passed, [1-9]\d* failed$", result.output, re.M)


@pytest.mark.parametrize("doc", [None, "", "   \n\t  "], ids=["missing", "empty", "blank"])
def test_a_plugin_without_a_docstring_is_still_listed(tmp_path, doc):
    """A missing, empty or blank docstring of a solver, model or image set: listed as (no description)."""
    plugin = tmp_path / "undocumented.py"
    plugin.write_text(HEADER + textwrap.dedent(f"""
        from ipbench.data import register_image_set
        from ipbench.models import register_model

        @register_solver
        class Undocumented(Solver):
            name = "undocumented"

            def solve(self, y, op, model, generators):
                return back_project(op, y)

        @register_model("undocumented-model")
        def loader(device):
            return None

        @register_image_set("undocumented-images")
        def images():
            return []

        Undocumented.__doc__ = loader.__doc__ = images.__doc__ = {doc!r}
        """))
    result = CliRunner().invoke(cli, ["list", "--plugin", str(plugin)])
    assert result.exit_code == 0, result.output
    for name in ("undocumented", "undocumented-model", "undocumented-images"):
        assert re.search(rf"\n  {re.escape(name)}( \(split [a-z ]+\))?: \(no description\)\n", result.output), result.output


@pytest.mark.parametrize("solver, value, fragment", [
    ("ddrm", "ddrm.steps=30", "solver ddrm.steps=30: the grid (skip = T // steps = 33 on T = 1000) has 31 times"),
    ("dps", "dps.steps=1001", "solver dps.steps=1001: must be in 1..1000"),
    ("gaussian-filter", "gaussian-filter.kernel_size=33", "solver gaussian-filter.kernel_size=33: must be in 1..31"),
])
def test_a_count_the_check_model_cannot_run_is_one_line(solver, value, fragment):
    """bench check holds a solver's fields to its model (T = 1000, 16 px) as bench run does: exit 2, one line."""
    result = CliRunner().invoke(cli, ["check", "--solver", solver, "--op", "denoise", "--param", value])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {fragment}"), result.output
    assert not any(line.startswith(("PASS", "FAIL")) for line in result.output.splitlines())


@pytest.mark.parametrize("body, said", [
    ("size: 'NoSuchType' = 1", "its fields cannot be read: NameError"),
    ("size: int", "its defaults do not build: UsageError: solver undocumented-odd.size=None: expected int"),
    ("def __post_init__(self):\n    raise RuntimeError('no defaults')",
     "its defaults do not build: RuntimeError: no defaults"),
    ("def unsupported(self, op, like):\n    raise SystemExit(0)", "its check raised SystemExit: 0"),
], ids=["unresolvable-annotation", "field-without-default", "post-init-raises", "unsupported-exits"])
def test_bench_list_shows_a_broken_plugin_solver_and_the_rest(tmp_path, body, said):
    """A plugin solver whose fields, defaults or support check break is listed with what broke; the others too."""
    plugin = tmp_path / "broken_listing.py"
    plugin.write_text(HEADER + "\n@register_solver\nclass Odd(Solver):\n    \"\"\"Odd.\"\"\"\n"
                      "    name = 'undocumented-odd'\n"
                      + textwrap.indent(body, "    ") + "\n\n    def solve(self, y, op, model, generators):\n"
                      "        return back_project(op, y)\n")
    result = CliRunner().invoke(cli, ["list", "--plugin", str(plugin)])
    assert result.exit_code == 0, (result.output, result.exception)
    block = re.search(r"^  undocumented-odd: Odd\.\n((?:      .*\n)*)", result.output, re.M).group(1)
    assert said in block, result.output
    assert "\n  tweedie: " in result.output and "Image sets" in result.output
