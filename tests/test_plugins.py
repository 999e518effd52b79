"""Plugins as a user writes them: a forgotten @dataclass, a helper module beside the file, and an edited file
that must not resume on the old file's numbers."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.solvers import SOLVERS

PLUGIN = """
from ipbench import Solver, register_solver
from ipbench.operators import back_project
from {helper} import pull

@register_solver
class {cls}(Solver):
    \"\"\"Back-projection pulled towards grey.\"\"\"

    name = "{name}"
    weight: float = 0.5

    def solve(self, y, op, model, generators):
        return pull(back_project(op, y), self.weight, {target})
"""
HELPER = "def pull(x, weight, target):\n    return (1 - weight) * x + weight * target\n"


def _write_plugin(folder: Path, name: str, target: float) -> Path:
    helper = f"{name.replace('-', '_')}_helpers"
    (folder / f"{helper}.py").write_text(HELPER)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(PLUGIN.format(helper=helper, cls=name.title().replace("-", ""), name=name,
                                                  target=target)))
    return path


def _run(plugin: Path, name: str, model: Path, out: Path | None, *params: str):
    args = ["run", "--plugin", str(plugin), "--solver", name, "--op", "denoise", "--model", str(model),
            "--images", "photos", "--num-images", "2", "--no-progress"]
    args += ["--out", str(out)] if out else []
    for p in params:
        args += ["--param", p]
    return CliRunner().invoke(cli, args)


def test_a_plugin_without_dataclass_imports_its_neighbour_and_has_its_field(tmp_path, small_model_path):
    plugin = _write_plugin(tmp_path, "plug-a", 0.5)
    result = _run(plugin, "plug-a", small_model_path, tmp_path / "run", "plug-a.weight=0.25")
    assert result.exit_code == 0, result.output
    assert [p.name for p in SOLVERS.get("plug-a").params()] == ["weight"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "rows.jsonl").read_text().splitlines()]
    assert {r["solver.weight"] for r in rows} == {0.25}
    code = json.loads((tmp_path / "run" / "run.json").read_text())["code"]["solver plug-a"]
    assert code["file"] == str(plugin) and len(code["sha256"]) == 16


def test_editing_a_plugin_never_resumes_on_the_old_numbers(tmp_path, small_model_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run folders go to ./runs
    plugin = _write_plugin(tmp_path, "plug-b", 0.5)
    first = _run(plugin, "plug-b", small_model_path, None)
    assert first.exit_code == 0 and "rows: 2 new" in first.output, first.output
    old_folder = Path(first.output.split("run folder: ")[1].split()[0])
    plugin.write_text(plugin.read_text().replace(", 0.5)", ", 0.0)"))  # the same solver, other code
    from ipbench import plugins

    plugins._loaded_files.clear()  # a new process would import the edited file
    SOLVERS._items.pop("plug-b")
    second = _run(plugin, "plug-b", small_model_path, None)
    assert second.exit_code == 0 and "rows: 2 new" in second.output, second.output  # not "2 already done"
    new_folder = Path(second.output.split("run folder: ")[1].split()[0])
    assert new_folder != old_folder
    codes = [json.loads((f / "run.json").read_text())["config"]["solvers"][0]["code"] for f in (old_folder, new_folder)]
    assert codes[0] != codes[1]
    stale = _run(plugin, "plug-b", small_model_path, old_folder)  # the edited code into the old code's folder
    assert stale.exit_code == 2 and "the code of plug-b changed since these rows were computed" in stale.output


HELPER_KINDS = {  # how a plugin imports from beside it: (files written, import line, expression, the edit)
    "function": ({"helper_fn.py": "def grey(x):\n    return 0.5 * x + 0.25\n"}, "from helper_fn import grey",
                 "grey(back_project(op, y))", ("helper_fn.py", "0.25", "0.3")),
    "constant": ({"helper_const.py": "WEIGHT = 0.5\n"}, "from helper_const import WEIGHT",
                 "WEIGHT * back_project(op, y)", ("helper_const.py", "0.5", "0.4")),
    "package": ({"helper_pkg/__init__.py": "", "helper_pkg/maths.py": "def scale(x):\n    return 0.9 * x\n"},
                "from helper_pkg.maths import scale", "scale(back_project(op, y))",
                ("helper_pkg/maths.py", "0.9", "0.8")),
    "nested": ({"helper_outer.py": "from helper_inner import SHIFT\ndef shift(x):\n    return x * 0 + SHIFT\n",
                "helper_inner.py": "SHIFT = 0.5\n"}, "from helper_outer import shift",
               "shift(back_project(op, y))", ("helper_inner.py", "0.5", "0.6")),
}


def _forget(name: str, helper_files: dict[str, str]) -> None:
    """What a new process would not have: the plugin, its solver and the helper modules it imported."""
    from ipbench import plugins

    plugins._loaded_files.clear()
    SOLVERS._items.pop(name, None)
    tops = {Path(f).parts[0].removesuffix(".py") for f in helper_files}
    for module in [m for m in sys.modules if m.partition(".")[0] in tops]:
        del sys.modules[module]


@pytest.mark.parametrize("kind", list(HELPER_KINDS))
def test_editing_a_helper_beside_the_plugin_never_resumes_on_the_old_numbers(tmp_path, small_model_path,
                                                                             monkeypatch, kind):
    """The run's identity covers the modules the plugin imported from its folder: the same command after a
    helper changed makes a new run (run.json lists the helper), and the old folder refuses the new code."""
    files, import_line, expression, (edited, old, new) = HELPER_KINDS[kind]
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "plugin"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    (folder / "unrelated.py").write_text("X = 1\n")  # a script in the same folder that the plugin does not import
    name = f"helped-{kind}"
    plugin = folder / "helped.py"
    plugin.write_text(f"from ipbench import Solver, register_solver\nfrom ipbench.operators import back_project\n"
                      f"{import_line}\n\n@register_solver\nclass Helped(Solver):\n    name = {name!r}\n\n"
                      f"    def solve(self, y, op, model, generators):\n        return {expression}\n")
    try:
        first = _run(plugin, name, small_model_path, None)
        assert first.exit_code == 0 and "rows: 2 new" in first.output, first.output
        old_folder = Path(first.output.split("run folder: ")[1].split()[0])
        listed = json.loads((old_folder / "run.json").read_text())["code"][f"solver {name}"]["helpers"]
        assert set(listed) == set(files)  # each helper it imported, and not the unrelated script
        (folder / "unrelated.py").write_text("X = 2\n")  # not imported: the same run
        _forget(name, files)
        again = _run(plugin, name, small_model_path, None)
        assert again.exit_code == 0 and "2 already done" in again.output, again.output

        (folder / edited).write_text((folder / edited).read_text().replace(old, new))
        _forget(name, files)
        second = _run(plugin, name, small_model_path, None)
        assert second.exit_code == 0 and "rows: 2 new" in second.output, second.output  # not "2 already done"
        new_folder = Path(second.output.split("run folder: ")[1].split()[0])
        assert new_folder != old_folder
        codes = [json.loads((f / "run.json").read_text())["config"]["solvers"][0]["code"]
                 for f in (old_folder, new_folder)]
        assert codes[0] != codes[1]
        _forget(name, files)
        stale = _run(plugin, name, small_model_path, old_folder)
        assert stale.exit_code == 2 and f"the code of {name} changed since these rows were computed" in stale.output
        assert len(stale.output.strip().splitlines()) == 1
        assert len((old_folder / "rows.jsonl").read_text().splitlines()) == 2  # nothing mixed into the old rows
    finally:
        _forget(name, files)
        sys.path[:] = [p for p in sys.path if p != str(folder)]


@pytest.mark.parametrize("where", ["solve", "unsupported"])
@pytest.mark.parametrize("code", ["0", "3", "None"])
def test_a_solver_that_exits_gives_failed_rows_not_an_ended_run(tmp_path, small_model_path, where, code):
    """sys.exit inside a solver's code is its failure: failed rows naming it, the run completes and says so."""
    name = f"exits-in-{where}-{code}".lower()
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nfrom ipbench import Solver, register_solver\n"
                      "from ipbench.operators import back_project\n\n@register_solver\nclass Exits(Solver):\n"
                      f"    name = {name!r}\n\n    def unsupported(self, op, like):\n"
                      f"        {'sys.exit(' + code + ')' if where == 'unsupported' else 'return None'}\n\n"
                      f"    def solve(self, y, op, model, generators):\n"
                      f"        {'sys.exit(' + code + ')' if where == 'solve' else 'return back_project(op, y)'}\n")
    try:
        result = _run(plugin, name, small_model_path, tmp_path / "run")
        assert result.exit_code == 0 and "rows: 2 new, 0 already done, 2 failed" in result.output, result.output
        rows = [json.loads(line) for line in (tmp_path / "run" / "rows.jsonl").read_text().splitlines()]
        assert [r["status"] for r in rows] == ["failed", "failed"] and all("SystemExit" in r["error"] for r in rows)
    finally:
        from ipbench import plugins

        plugins._loaded_files.clear()
        SOLVERS._items.pop(name, None)
