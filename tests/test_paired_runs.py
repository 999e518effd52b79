"""benchmarks/paired_runs.py: differences paired on (solver, operator, image, seed), failed rows left out."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "paired_runs.py"


@pytest.fixture(scope="module")
def paired_runs():
    spec = importlib.util.spec_from_file_location("paired_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(psnrs: dict[str, float], status: dict[str, str] | None = None) -> pd.DataFrame:
    status = status or {}
    return pd.DataFrame([{"solver": "dps", "operator": "inpaint-box", "image": image, "seed": 0, "psnr": value,
                          "status": status.get(image, "ok")} for image, value in psnrs.items()])


def test_differences_are_paired_by_image_not_by_order(paired_runs, tmp_path):
    a = rows({"a": 20.0, "b": 30.0, "c": 25.0})
    b = rows({"c": 24.0, "b": 31.0, "a": 20.5})  # another order: pairing must follow the image id
    (tmp_path / "a").mkdir()
    a.to_json(tmp_path / "a" / "rows.jsonl", orient="records", lines=True)
    report = paired_runs.paired_report(paired_runs.read_rows(str(tmp_path / "a")), b, "A", "B")
    d = pd.Series([0.5, 1.0, -1.0])
    assert f"| dps | inpaint-box | psnr | {d.mean():+.4f} | {d.std() / 3**0.5:.4f} | -1.0000 | +1.0000 | 3 |" in report
    assert "3 pairs; 0 rows of A and 0 of B unpaired or failed" in report


def test_failed_and_unpaired_rows_are_counted_and_left_out(paired_runs, tmp_path):
    file = tmp_path / "b.jsonl"
    rows({"a": 21.0, "b": 99.0, "d": 10.0}, status={"b": "failed"}).to_json(file, orient="records", lines=True)
    report = paired_runs.paired_report(rows({"a": 20.0, "b": 30.0}), paired_runs.read_rows(str(file)), "A", "B")
    assert "| psnr | +1.0000 |" in report and "| 1 |" in report
    assert "1 pairs; 1 rows of A and 1 of B unpaired or failed" in report


def test_a_path_without_rows_is_a_one_line_error(paired_runs, tmp_path):
    with pytest.raises(SystemExit, match="no rows.jsonl there"):
        paired_runs.read_rows(str(tmp_path))
