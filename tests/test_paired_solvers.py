"""Solvers of one run against a baseline solver (ipbench.results.paired.against_baseline and
benchmarks/paired_solvers.py, which renders it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ipbench.results.paired import against_baseline

ROOT = Path(__file__).resolve().parents[1]


def rows() -> pd.DataFrame:
    """dps and two others on 3 images x 2 seeds of inpaint-box; `masks-only` is skipped on deblur, where dps
    also has rows; one failed row of `other`, which must not pair."""
    records = []
    for image, base in (("i0", 20.0), ("i1", 22.0), ("i2", 18.0)):
        for seed, wobble in ((0, 0.0), (1, 1.0)):
            records.append(dict(solver="dps", operator="inpaint-box", image=image, seed=seed, status="ok", psnr=base + wobble))
            records.append(dict(solver="dps", operator="deblur", image=image, seed=seed, status="ok", psnr=30.0))
            # other - dps per image, seeds averaged: i0 +1.5, i1 +2.5, i2 +0.5 (seed 1 of i2 failed: +0.5 alone)
            gain = {"i0": (1.0, 2.0), "i1": (2.0, 3.0), "i2": (0.5, None)}[image][seed]
            records.append(dict(solver="other", operator="inpaint-box", image=image, seed=seed,
                                status="ok" if gain is not None else "failed",
                                psnr=base + wobble + gain if gain is not None else float("nan")))
            records.append(dict(solver="masks-only", operator="deblur", image=image, seed=seed, status="skipped",
                                psnr=float("nan")))
    return pd.DataFrame.from_records(records)


def test_differences_average_the_seeds_of_an_image_and_count_images():
    (only,) = against_baseline(rows(), "dps")
    d = pd.Series([1.5, 2.5, 0.5])
    assert (only.solver, only.operator, only.n) == ("other", "inpaint-box", 3)
    assert only.mean == pytest.approx(d.mean()) and only.se == pytest.approx(d.std() / 3**0.5)
    assert only.half_width == pytest.approx(4.302653 * only.se, rel=1e-6)  # t_{0.975, 2}
    assert (only.min, only.max) == (0.5, 2.5)


def script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paired_solvers.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_script_prints_each_cell_with_its_interval_and_refuses_an_unknown_baseline(tmp_path):
    rows().to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    done = script(str(tmp_path / "rows.jsonl"), "--baseline", "dps")
    assert done.returncode == 0, done.stderr
    (only,) = against_baseline(rows(), "dps")
    low, high = only.mean - only.half_width, only.mean + only.half_width
    assert f"| other | {only.mean:+.2f} [{low:+.2f}, {high:+.2f}] | n/a |" in done.stdout  # 0 inside: not bold
    wrong = script(str(tmp_path / "rows.jsonl"), "--baseline", "dsp")
    assert wrong.returncode == 2 and wrong.stderr.strip().startswith("--baseline dsp: not a solver of")
    assert "\n" not in wrong.stderr.strip()
