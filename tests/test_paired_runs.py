"""ipbench.results.paired: differences paired on (solver, operator, image, seed), failed rows left out; and
benchmarks/paired_runs.py, which renders them, run as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ipbench.errors import UsageError
from ipbench.results.paired import PairedDifference, paired_differences, read_rows

ROOT = Path(__file__).parents[1]


def rows(psnrs: dict[str, float], status: dict[str, str] | None = None) -> pd.DataFrame:
    status = status or {}
    return pd.DataFrame([{"solver": "dps", "operator": "inpaint-box", "image": image, "seed": 0, "psnr": value,
                          "status": status.get(image, "ok")} for image, value in psnrs.items()])


def test_differences_are_paired_by_image_not_by_order(tmp_path):
    a = rows({"a": 20.0, "b": 30.0, "c": 25.0})
    b = rows({"c": 24.0, "b": 31.0, "a": 20.5})  # another order: pairing must follow the image id
    (tmp_path / "a").mkdir()
    a.to_json(tmp_path / "a" / "rows.jsonl", orient="records", lines=True)
    pairing = paired_differences(read_rows(str(tmp_path / "a")), b)
    d = pd.Series([0.5, 1.0, -1.0])
    (only,) = pairing.differences
    assert only == PairedDifference("dps", "inpaint-box", "psnr", pytest.approx(d.mean()),
                                    pytest.approx(d.std() / 3**0.5), -1.0, 1.0, 3)
    assert (pairing.pairs, pairing.unpaired_a, pairing.unpaired_b) == (3, 0, 0)


def test_failed_and_unpaired_rows_are_counted_and_left_out(tmp_path):
    file = tmp_path / "b.jsonl"
    rows({"a": 21.0, "b": 99.0, "d": 10.0}, status={"b": "failed"}).to_json(file, orient="records", lines=True)
    pairing = paired_differences(rows({"a": 20.0, "b": 30.0}), read_rows(str(file)))
    (only,) = pairing.differences
    assert only.metric == "psnr" and only.mean == pytest.approx(1.0) and only.n == 1
    assert (pairing.pairs, pairing.unpaired_a, pairing.unpaired_b) == (1, 1, 1)


def test_a_path_without_rows_is_a_one_line_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match="no rows.jsonl there") as caught:
        read_rows(str(tmp_path))
    assert str(caught.value).startswith(f"{tmp_path}:") and "\n" not in str(caught.value)


def script(*args: str) -> subprocess.CompletedProcess:
    """benchmarks/paired_runs.py ARGS, importing this checkout's ipbench (not another installed copy)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paired_runs.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_script_renders_the_pairing_and_exits_2_on_a_path_without_rows(tmp_path):
    """One run of each path of the script: the table row as printed, and the missing folder as one line."""
    for name, psnrs in (("a", {"a": 20.0, "b": 30.0, "c": 25.0}), ("b", {"c": 24.0, "b": 31.0, "a": 20.5})):
        rows(psnrs).to_json(tmp_path / f"{name}.jsonl", orient="records", lines=True)
    done = script(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))
    assert done.returncode == 0, done.stderr
    d = pd.Series([0.5, 1.0, -1.0])
    assert f"| dps | inpaint-box | psnr | {d.mean():+.4f} | {d.std() / 3**0.5:.4f} | -1.0000 | +1.0000 | 3 |" in done.stdout
    assert "3 pairs; 0 rows of A and 0 of B unpaired or failed" in done.stdout

    missing = script(str(tmp_path / "nothing"), str(tmp_path / "b.jsonl"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith("no rows.jsonl there (give a run folder or a "
                                                                       "rows.jsonl file)")
    assert len(missing.stderr.strip().splitlines()) == 1
