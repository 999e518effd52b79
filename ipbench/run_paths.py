"""Where a run's files are, and the one mapping from a label or an image id to a file name.

Solver and operator labels (a suite's `label`) and image ids (file stems of an image folder) become parts of
paths: images/<operator>/<solver>/<id>-s<seed>.png, images/truth/<id>.png, grid-<operator>.png, ... Every
writer and reader of those paths goes through the functions here, so that readers find what writers wrote
and no name can leave the run folder or land on another's file.

The mapping percent-encodes (as UTF-8 bytes, `%` itself included) every character outside a small portable
set, so `dps/residual` is `dps%2Fresidual` and `DPS (zeta 0.5)` stays as it is; a leading or trailing dot or
space (`.`, `..`, hidden files, names Windows trims) and Windows device names (`con`, `nul`, ...) have their
first or last character encoded as well. Decoding gives the name back, so distinct names get distinct file
names. Refused, in one line: an empty name, a control or format character (NUL, newline, ...), a file name
longer than MAX_NAME_BYTES, names whose file names differ only in case (one file on macOS and Windows), and
labels equal to the run folder's own names in the same folder (`truth`, `measurement`).
"""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from ipbench.errors import UsageError

PORTABLE = frozenset(string.ascii_letters + string.digits + " -_.,+=()[]@~")
MAX_NAME_BYTES = 150  # leaves room for "-s<seed>.png" and the temporary name of an atomic write within 255
WINDOWS_DEVICES = frozenset(["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                             *(f"LPT{i}" for i in range(1, 10))])
IMAGES, TRUTH, MEASUREMENT, TRACE = "images", "truth", "measurement", "trace"
RESERVED = {"operator label": TRUTH, "solver label": MEASUREMENT}  # images/truth beside images/<operator>, ...


def _shown(name: str) -> str:
    """`name` for a one-line message: repr (control characters escaped), long ones cut."""
    return repr(name) if len(name) <= 60 else repr(name[:57]) + "..."


def _encode(ch: str) -> str:
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8"))


def file_name(name: str, what: str = "label") -> str:
    """The file name that stands for `name` (a label or an image id; `what` says which, for the message)."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{what} {name!r}: empty; give a name with at least one visible character")
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        raise UsageError(f"{what} {_shown(name)}: has the control character U+{ord(bad):04X}; "
                         "a name is one line of printable text")
    encoded = "".join(ch if ch in PORTABLE else _encode(ch) for ch in name)
    if encoded[0] in ". " or encoded.split(".")[0].upper() in WINDOWS_DEVICES:
        encoded = _encode(encoded[0]) + encoded[1:]
    if encoded[-1] in ". ":
        encoded = encoded[:-1] + _encode(encoded[-1])
    if len(encoded.encode("ascii")) > MAX_NAME_BYTES:
        raise UsageError(f"{what} {_shown(name)}: {len(encoded)} characters as a file name; at most "
                         f"{MAX_NAME_BYTES} (each UTF-8 byte of a character outside letters, digits and "
                         f"'{''.join(sorted(PORTABLE - set(string.ascii_letters + string.digits)))}' counts 3)")
    return encoded


def check_names(names: Iterable[str], what: str) -> dict[str, str]:
    """{name: file name} for names that share a folder (a run's solver labels, ...): each one valid, none a
    folder's own name, no two with the same file name up to case."""
    reserved = RESERVED.get(what)
    taken: dict[str, tuple[str, str]] = {}  # casefolded file name -> (name, file name)
    mapped = {}
    for name in names:
        mapped[name] = file = file_name(name, what)
        if reserved is not None and file.casefold() == reserved:
            raise UsageError(f"{what} {_shown(name)}: the run folder's own name {reserved!r} at that place "
                             f"(images/{'' if what == 'operator label' else '<operator>/'}{reserved}); choose another")
        other, other_file = taken.setdefault(file.casefold(), (name, file))
        if other != name:
            raise UsageError(f"{what}s {_shown(other)} and {_shown(name)} would share one file ({other_file!r} and "
                             f"{file!r} are one name where case is ignored: macOS, Windows); rename one")
    return mapped


def check_run_names(solvers: Iterable[str], operators: Iterable[str]) -> None:
    """Refuse, before anything is written, a run whose solver or operator labels cannot be file names."""
    check_names(solvers, "solver label")
    check_names(operators, "operator label")


def truth_png(run_dir: Path, image: str) -> Path:
    return Path(run_dir) / IMAGES / TRUTH / f"{file_name(image, 'image id')}.png"


def _operator_dir(run_dir: Path, operator: str) -> Path:
    return Path(run_dir) / IMAGES / file_name(operator, "operator label")


def _image_file(image: str, seed: int | str) -> str:
    return f"{file_name(image, 'image id')}-s{seed}.png"


def measurement_png(run_dir: Path, operator: str, image: str, seed: int | str) -> Path:
    return _operator_dir(run_dir, operator) / MEASUREMENT / _image_file(image, seed)


def solver_dir(run_dir: Path, operator: str, solver: str) -> Path:
    """images/<operator>/<solver>: the solver's reconstructions on that operator."""
    return _operator_dir(run_dir, operator) / file_name(solver, "solver label")


def reconstruction_png(run_dir: Path, operator: str, solver: str, image: str, seed: int | str,
                       sample: int = 0) -> Path:
    """A reconstruction's PNG; the k-th further posterior draw on the same measurement (`--samples`) as `-kK`."""
    name = _image_file(image, seed)
    return solver_dir(run_dir, operator, solver) / (name if not sample else f"{name[:-4]}-k{sample}.png")


def std_png(run_dir: Path, operator: str, solver: str, image: str, seed: int | str) -> Path:
    """The per-pixel standard deviation over a measurement's posterior draws (`--samples`), scaled to [0, 1]."""
    return solver_dir(run_dir, operator, solver) / "std" / _image_file(image, seed)


def trace_png(run_dir: Path, operator: str, solver: str, image: str, seed: int | str) -> Path:
    """The strip of x0_hat per step that `bench run --trace K` saves for one image."""
    return solver_dir(run_dir, operator, solver) / TRACE / _image_file(image, seed)


def grid_png(folder: Path, operator: str) -> Path:
    return Path(folder) / f"grid-{file_name(operator, 'operator label')}.png"


def trace_figure_png(folder: Path, operator: str) -> Path:
    return Path(folder) / f"trace-{file_name(operator, 'operator label')}.png"
