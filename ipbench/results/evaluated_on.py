"""What a run's images are for: their split, and the warnings where a run evaluates on images that its
parameters were tuned on, or on a tuning split at all (tables from it are not test results).

A run is read as run.json holds it (`bench run` builds the same dict before it starts): `config.solvers[i]`
may carry `tuned` (provenance of fields set for every operator) and `per_operator[OP].tuned` (of fields set
for operator OP only), each with `image_set`, `ids`, `fields` as `bench tune` writes them; `images` holds
`source`, `split` and `ids`. Two image sets are the same when they are the same registered set or folder,
or registered sets of one origin and one split (data.set_split).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ipbench.data.sets import IMAGE_SETS, set_split

TUNING_SPLITS = ("train", "val")


def run_split(images: dict[str, Any]) -> str | None:
    """The split of a run's images: run.json's `images.split`, or for a run.json written before splits were
    recorded, the split its registered set declares now (None: a folder, which declares none)."""
    if "split" in images:
        return images["split"]
    return set_split(str(images.get("source", ""))).split


def split_text(images: dict[str, Any]) -> str:
    """How a caption names the split: 'split test', or 'no split declared' for a folder."""
    split = run_split(images)
    return f"split {split}" if split else "no split declared"


def evaluation_warnings(meta: dict[str, Any]) -> list[str]:
    """One line per solver (or solver on one operator) whose tuned parameters were tuned on images this run
    evaluates on, and one if the run's images are a tuning split; [] for a clean held-out run."""
    images = meta.get("images", {})
    warnings = []
    for who, tuned in _tuned_blocks(meta.get("config", {})):
        shared = _overlap(tuned, images)
        if shared is not None:
            warnings.append(_overlap_line(who, tuned, len(images.get("ids", [])), shared))
    split = run_split(images)
    if split in TUNING_SPLITS:
        warnings.append(f"images {images.get('source')} are the {split} split, a tuning split: these are not test "
                        "results; evaluate on a test split (e.g. fashion32-test) for the comparison")
    return warnings


def _tuned_blocks(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(who, tuned) for each `tuned` table of the run's solvers: the solver's own and each operator's."""
    operators = [o.get("label", o.get("name")) for o in config.get("operators", [])]
    for solver in config.get("solvers", []):
        label = solver.get("label", solver.get("name"))
        runs_on = [op for op in operators if op in solver.get("operators", operators)]
        if isinstance(solver.get("tuned"), dict):
            yield f"{label} (on {', '.join(runs_on) or 'no operator'})", solver["tuned"]
        per_operator = solver.get("per_operator")
        for op, table in (per_operator.items() if isinstance(per_operator, dict) else ()):
            if isinstance(table, dict) and isinstance(table.get("tuned"), dict) and op in runs_on:
                yield f"{label} on {op}", table["tuned"]


def _overlap(tuned: dict[str, Any], images: dict[str, Any]) -> int | None:
    """How many of the run's ids the tuning used, when it tuned on the run's image set (-1: it did, but its
    ids are not recorded); None when it tuned elsewhere or on none of them."""
    if not _same_set(str(tuned.get("image_set", "")), str(images.get("source", ""))):
        return None
    ids = tuned.get("ids")
    if not isinstance(ids, list):
        return -1
    shared = len(set(map(str, ids)) & set(map(str, images.get("ids", []))))
    return shared or None


def _same_set(tuned_on: str, source: str) -> bool:
    """Whether a tuning set and a run's images are one set: equal names or folders, or one origin and split."""
    if not tuned_on or not source:
        return False
    if tuned_on in IMAGE_SETS and source in IMAGE_SETS:
        if IMAGE_SETS.canonical(tuned_on) == IMAGE_SETS.canonical(source):
            return True
        a, b = set_split(tuned_on), set_split(source)
        return a.split is not None and (a.split, a.origin) == (b.split, b.origin)
    if tuned_on in IMAGE_SETS or source in IMAGE_SETS:  # a registered set and a folder: not comparable
        return tuned_on == source
    if tuned_on == source:
        return True
    try:  # two spellings of one folder
        return Path(tuned_on).expanduser().resolve() == Path(source).expanduser().resolve()
    except (OSError, RuntimeError):  # an unknown ~user, a loop of links: not shown to be the same folder
        return False


def _overlap_line(who: str, tuned: dict[str, Any], evaluated: int, shared: int) -> str:
    """The warning for `who`, whose `tuned` fields saw `shared` (-1: unknown) of the run's `evaluated` images."""
    fields = tuned.get("fields")
    what = ", ".join(map(str, fields)) if isinstance(fields, list) and fields else "parameters"
    count = "an unknown number" if shared == -1 else str(shared)
    recorded = ", ids not recorded" if shared == -1 else ""
    return (f"{who}: {what} tuned on {count} of the {evaluated} images this run evaluates on "
            f"({tuned.get('image_set')}{recorded}); its numbers on them are not held out: evaluate on images "
            "disjoint from the tuning ones")
