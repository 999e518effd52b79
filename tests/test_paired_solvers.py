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
    from ipbench.results.paired_stats import paired_comparisons
    from ipbench.results.rounding import with_interval

    rows().to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    done = script(str(tmp_path / "rows.jsonl"), "--baseline", "dps")
    assert done.returncode == 0, done.stderr
    (line,) = paired_comparisons(rows(), "dps", ["psnr"]).itertuples()  # the BCa interval and Wilcoxon p
    mean, interval = with_interval(line.mean, line.low, line.high, line.se, 2)
    assert line.low > 0 and not line.significant  # the interval leaves out 0, but 3 images cannot reach p < 0.05
    assert f"| other | {mean} {interval}, p {line.p_wilcoxon:.2g} | n/a |" in done.stdout  # not bold
    assert "No cell can be bold: too few images (n = 3; the signed-rank test needs n >= 6" in done.stdout
    wrong = script(str(tmp_path / "rows.jsonl"), "--baseline", "dsp")
    assert wrong.returncode == 2 and wrong.stderr.strip().startswith("--baseline dsp: not a solver of")
    assert "\n" not in wrong.stderr.strip()


def test_the_script_bolds_a_cell_where_interval_and_test_agree(tmp_path):
    """Eight images, `other` +1 dB on each (with a small spread): significant, bold; `same` equal to dps
    but on one image: one nonzero difference, never bold."""
    records = []
    for i in range(8):
        for solver, gain in (("dps", 0.0), ("other", 1.0 + 0.01 * i), ("same", 0.5 if i == 0 else 0.0)):
            records.append(dict(solver=solver, operator="inpaint-box", image=f"i{i}", seed=0, status="ok",
                                psnr=20.0 + i + gain))
    pd.DataFrame.from_records(records).to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    done = script(str(tmp_path / "rows.jsonl"), "--baseline", "dps")
    assert done.returncode == 0, done.stderr
    other = next(line for line in done.stdout.splitlines() if line.startswith("| other |"))
    same = next(line for line in done.stdout.splitlines() if line.startswith("| same |"))
    assert other.startswith("| other | **+") and other.endswith(", p 0.0078** |")  # 2 / 2^8
    assert "**" not in same and same.endswith(", p 1 |")
    assert "1 of 2 cells cannot be bold: too few images that differ (1 of n = 8;" in done.stdout
