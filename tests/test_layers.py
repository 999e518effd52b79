"""The package's imports point down: no module imports from a higher layer, nor from a sibling package of
its own layer. The layer order is the one written in docs/architecture.md, read from there, so the
page and this test cannot drift apart."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ipbench"


def _layers() -> dict[str, int]:
    """{'ipbench.cli': 6, ...} from the `layer N: a, b` lines of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    layers = {}
    for number, names in re.findall(r"^ *layer (\d+): *(.+)$", text, flags=re.MULTILINE):
        for name in names.split(","):
            layers[f"ipbench.{name.strip().split()[0]}"] = int(number)
    return layers


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ipbench module `path` imports, at any depth of the file (function-level imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ipbench."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ipbench":
                found.update(f"ipbench.{a.name}" for a in node.names)
            elif node.module.startswith("ipbench."):
                found.add(node.module)
    return found


def _unit(module: str, layers: dict[str, int]) -> str | None:
    """The layer entry (a package or a module) that holds `module`: the longest matching prefix."""
    hits = [u for u in layers if module == u or module.startswith(u + ".")]
    return max(hits, key=len) if hits else None


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")  # the facade imports lazily


def test_every_module_has_a_layer() -> None:
    layers = _layers()
    assert len(layers) >= 10, "docs/architecture.md lost its layer list"
    unplaced = [_module_name(p) for p in MODULES if _unit(_module_name(p), layers) is None]
    assert not unplaced, f"modules with no layer in docs/architecture.md: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path: Path) -> None:
    layers = _layers()
    here = _unit(_module_name(path), layers)
    assert here is not None
    bad = []
    for target in sorted(_imports(path)):
        there = _unit(target, layers)
        if there is None or there == here:
            continue
        if layers[there] > layers[here]:
            bad.append(f"{target} (layer {layers[there]}) is above {here} (layer {layers[here]})")
        elif layers[there] == layers[here]:
            bad.append(f"{target} is a sibling of {here} in layer {layers[here]}")
    assert not bad, f"{_module_name(path)} imports upward or sideways: {bad}"


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The walker sees a function-level import: the form that would otherwise slip through."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ipbench.benchmark.runner import run\n    import ipbench.cli\n")
    assert _imports(module) == {"ipbench.benchmark.runner", "ipbench.cli"}
    layers = _layers()
    assert layers[_unit("ipbench.benchmark.runner", layers)] > layers[_unit("ipbench.models.base", layers)]
