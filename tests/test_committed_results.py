"""The committed results are what the current code makes of their rows, and the README quotes them.

Every run folder under results/ (run.json and rows) keeps the tables `bench table` writes from its rows; the
paired reports there are what benchmarks/paired_solvers.py writes; and the figures that the README's results
section quotes (the table's PSNR means and their standard errors, s / image and NFE; every interval in its claims)
come from those files or from the paired statistics of the same rows. A change to how tables are written must come with the
committed tables remade (`bench table RUN`), and a changed claim with its source.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ipbench.results.table import write_tables

ROOT = Path(__file__).resolve().parents[1]
RUN_FOLDERS = sorted(path.parent for path in (ROOT / "results").glob("*/run.json"))
TABLE_FILES = ("table.md", "table.csv", "table.tex")
BASELINES = ROOT / "results" / "fashion32-baselines"
HEADLINE = ROOT / "results" / "fashion32-benchmark"  # the run the README's results section quotes
NONLINEAR = ROOT / "results" / "fashion32-nonlinear"  # the run its "Nonlinear problems" subsection quotes
NONLINEAR_HEADING = "### Nonlinear problems and other noise"
PAIRED_REPORTS = sorted((ROOT / "results").glob("*/paired-*-vs-*.md"))
INTERVAL = re.compile(r"\[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def test_there_are_committed_runs_to_check():
    assert {BASELINES, HEADLINE} <= set(RUN_FOLDERS)
    assert {report.parent for report in PAIRED_REPORTS} == {BASELINES, HEADLINE, NONLINEAR}


@pytest.mark.parametrize("run_dir", RUN_FOLDERS, ids=lambda path: path.name)
def test_each_committed_table_is_what_bench_table_writes_from_its_rows(run_dir, tmp_path):
    for source in [run_dir / "run.json", *run_dir.glob("rows*.jsonl")]:
        shutil.copy(source, tmp_path / source.name)
    write_tables(tmp_path)
    for name in TABLE_FILES:
        committed = run_dir / name
        assert committed.is_file(), f"{committed} is missing"
        assert (tmp_path / name).read_text() == committed.read_text(), (
            f"{committed.relative_to(ROOT)} is not what `bench table {run_dir.relative_to(ROOT)}` writes now")


@pytest.mark.parametrize("report", PAIRED_REPORTS, ids=lambda path: path.name)
def test_each_paired_report_is_what_its_script_writes(report, tmp_path):
    metric, baseline = re.fullmatch(r"paired-(\w+)-vs-(.+)\.md", report.name).groups()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paired_solvers.py"),
                           str(report.parent.relative_to(ROOT)), "--baseline", baseline, "--metric", metric,
                           "--out", str(tmp_path / report.name)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / report.name).read_text() == report.read_text()


@pytest.mark.parametrize("run_dir", [HEADLINE, NONLINEAR], ids=lambda path: path.name)
def test_the_headline_table_is_what_its_script_writes(tmp_path, run_dir):
    committed = run_dir / "headline-psnr.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "headline_table.py"),
                           str(run_dir.relative_to(ROOT)), "--out", str(tmp_path / committed.name)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / committed.name).read_text() == committed.read_text()


def _readme_results_section(run_dir: Path = HEADLINE) -> str:
    """The part of the README's results section that quotes `run_dir`: the section up to its nonlinear subsection
    (HEADLINE), or that subsection (NONLINEAR)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Results on the built-in model")
    section = text[start:text.index("\n## ", start + 1)]
    split = section.index(NONLINEAR_HEADING)
    return section[:split] if run_dir == HEADLINE else section[split:]


QUOTED = [HEADLINE, NONLINEAR]


def _markdown_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]


@pytest.mark.parametrize("run_dir", QUOTED, ids=lambda path: path.name)
def test_the_readme_results_table_quotes_the_committed_table(run_dir):
    """Each PSNR cell is the committed mean ± its standard error over images (table.csv), rounded where that
    ends (results/rounding.py); s / image and NFE are table.md's. The headline table has every solver of its
    run; the nonlinear one a selection (its headline-psnr.md has every row)."""
    import pandas as pd

    from ipbench.results.rounding import with_spread

    quoted = _markdown_rows(_readme_results_section(run_dir))
    committed = _markdown_rows((run_dir / "table.md").read_text().split("\n\n")[0])
    header, *lines = committed
    column = {("s / image" if name.startswith("s / image") else name): i for i, name in enumerate(header)}
    by_solver = {line[0]: line for line in lines}
    tidy = pd.read_csv(run_dir / "table.csv")
    psnr = tidy[tidy["metric"] == "psnr"].set_index(["solver", "operator"])
    quoted_header, *quoted_lines = quoted
    solvers = {line[0] for line in quoted_lines}
    assert (solvers == set(by_solver)) if run_dir == HEADLINE else (solvers <= set(by_solver)), \
        "the README's table has other solvers"
    for line in quoted_lines:
        source = by_solver[line[0]]
        for name, cell in zip(quoted_header[1:], line[1:]):
            if name.startswith("s / image"):
                expected = source[column["s / image"]]
            elif name == "NFE":
                expected = source[column["NFE"]]
            elif source[column[f"{name} PSNR ↑"]] in ("n/a", "-"):  # not applicable, or not run (a paper's row)
                expected = source[column[f"{name} PSNR ↑"]]
            else:  # an operator's PSNR: the committed mean ± its standard error over images
                found = psnr.loc[(line[0], name)]
                expected = with_spread(found["mean"], found["se"], found["se"], 2)
                assert expected.split(" ± ")[0] == source[column[f"{name} PSNR ↑"]].split(" ± ")[0]
            assert cell == expected, f"README: {line[0]} {name} says {cell}, the committed table gives {expected}"


@pytest.mark.slow
@pytest.mark.parametrize("run_dir", QUOTED, ids=lambda path: path.name)
def test_every_interval_the_readme_claims_comes_from_the_committed_rows(run_dir):
    """Each [low, high] of the results section is the 95% BCa interval of a paired difference of the committed
    rows (every pair of solvers, as `bench table --baseline` and benchmarks/paired_solvers.py give it), rounded
    where its standard error ends; "A minus B" may quote B's interval against A negated."""
    from ipbench.results.paired import read_rows
    from ipbench.results.paired_stats import paired_comparisons
    from ipbench.results.rounding import decimals_for

    claims = INTERVAL.findall(_readme_results_section(run_dir))
    assert len(claims) >= 5
    comparisons = paired_comparisons(read_rows(run_dir), None, ["psnr"])
    sources = set()
    for line in comparisons.itertuples():
        d = decimals_for(line.se, 2)
        sources |= {(f"{line.low:+.{d}f}", f"{line.high:+.{d}f}"), (f"{-line.high:+.{d}f}", f"{-line.low:+.{d}f}")}
    for claim in claims:
        signed = tuple(value if value[0] in "+-" else f"+{value}" for value in claim)
        assert signed in sources, f"README interval [{', '.join(claim)}] is no paired interval of the committed rows"
