"""Loading user code that registers solvers, operators, models or image sets.

Two ways: a Python file (`--plugin path/to/file.py`), or an installed package that declares an entry
point in the group `ipbench.plugins` (its module is imported; registering happens at import).
"""
from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from ipbench.errors import UsageError, first_line
from ipbench.paths import expand_user

ENTRY_POINT_GROUP = "ipbench.plugins"
_loaded_files: set[Path] = set()


def load_plugin_file(path: str | Path) -> None:
    """Import a Python file once (by resolved path) so that its decorators register things."""
    path = expand_user(path, "--plugin").resolve()
    if path in _loaded_files:
        return
    if not path.is_file() or path.suffix != ".py":
        raise UsageError(f"--plugin {path}: not a Python file")
    name = f"ipbench_plugin_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    if str(path.parent) not in sys.path:  # as `python FILE` would: modules beside the plugin import
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException as exc:  # SystemExit(0) too: a plugin that exits must not look like a passed command
        del sys.modules[name]
        raise UsageError(f"--plugin {path}: failed to import ({import_failure(exc)})") from exc
    _loaded_files.add(path)


def import_failure(exc: BaseException) -> str:
    """What stopped an import, in a few words: `ValueError: ...`, or `it called sys.exit(0)`."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return first_line(exc)


def load_entry_point_plugins() -> None:
    """Import every installed `ipbench.plugins` entry point."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except BaseException as exc:  # as for a plugin file: exiting at import is a failure, not a success
            raise UsageError(f"plugin entry point {ep.name} ({ep.value}) failed to load: "
                             f"{import_failure(exc)}") from exc
