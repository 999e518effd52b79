"""A trial's value: the objective metric of its rows, mean over images of the per-image mean over seeds.

The seeds of an image share its truth, so they are averaged first and the standard error is taken over
images (std with ddof 1 / sqrt(n)), as `bench table --baseline` pairs per image. A row that failed (the
solver raised, returned non-finite values, diverged) makes the trial a failed one: a setting that breaks
on some image is no candidate, and a mean over the images it survived would flatter it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ipbench.results.rows import run_rows


@dataclass(frozen=True)
class Outcome:
    value: float | None  # None: no ok row
    se: float | None  # None: fewer than two images
    images: int  # images with an ok row
    rows: int
    failed: str | None = None  # the first failed row's error, with the count
    skipped: str | None = None  # every row skipped: why the solver does not apply


def trial_outcome(folder: Path, metric: str, solver: str, operator: str, images: Collection[str]) -> Outcome:
    """The outcome of the rows of (solver, operator) on `images` (ids) in run folder `folder`."""
    wanted = set(images)
    rows = [r for r in run_rows(folder) if r.get("solver") == solver and r.get("operator") == operator
            and str(r.get("image")) in wanted]
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        error = str(failed[0].get("error") or "failed")
        return Outcome(None, None, 0, len(rows), failed=f"{len(failed)} of {len(rows)} rows failed, e.g. image "
                                                         f"{failed[0].get('image')}: {error}")
    ok = [r for r in rows if r.get("status") == "ok"]
    if rows and not ok:
        return Outcome(None, None, 0, len(rows), skipped=str(rows[0].get("error") or "skipped"))
    per_image: dict[str, list[float]] = defaultdict(list)
    for row in ok:
        per_image[str(row["image"])].append(float(row[metric]))
    if any(math.isnan(v) for values in per_image.values() for v in values):
        return Outcome(None, None, 0, len(rows), failed=f"{metric} is NaN in an ok row")
    means = [sum(v) / len(v) for v in per_image.values()]
    if not means:
        return Outcome(None, None, 0, 0)
    value = sum(means) / len(means)
    se = None
    if len(means) > 1 and math.isfinite(value):
        variance = sum((m - value) ** 2 for m in means) / (len(means) - 1)
        se = math.sqrt(variance / len(means))
    return Outcome(value, se, len(means), len(rows))
