"""Plugins as a user writes them: a forgotten @dataclass, a helper module beside the file, and an edited file
that must not resume on the old file's numbers."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

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
