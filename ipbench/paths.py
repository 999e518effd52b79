"""Paths from the user: `~` and `~user` expanded with a one-line error, the current folder checked, and
content hashes of the input files a run depends on (a mask, a checkpoint)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ipbench.errors import UsageError


def expand_user(path: str | Path, option: str) -> Path:
    """`path` with a leading `~` or `~user` expanded; a UsageError naming `option` when that user (or the
    home folder) is unknown, instead of Python's RuntimeError."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        user = str(path).split("/", 1)[0][1:] or "the current user"
        raise UsageError(f"{option} {path}: no home folder for {user!r} (no such user); write the path out "
                         "in full") from None


def check_current_folder() -> None:
    """A UsageError when the current folder no longer exists (deleted from under the shell): every relative
    path would fail later, with a traceback from deep inside."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise UsageError("the current folder was deleted (os.getcwd() fails); cd to an existing folder and "
                         "run the command again") from None


def content_hash(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes, read in chunks; of a folder, of every file below it
    with its relative path (a diffusers model folder), so an edit anywhere changes the hash."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
