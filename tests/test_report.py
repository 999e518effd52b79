"""bench report: the page's content from small runs, its warnings, and the page itself in headless Chromium."""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec, load_suite
from ipbench.checks.browser import open_page
from ipbench.cli import cli
from ipbench.results.html_report import build_report
from ipbench.results.report_runs import load_report_runs, run_warnings
from ipbench.results.plots import pareto_front
from ipbench.results.rounding import decimals_for, with_spread
from ipbench.results.unobserved import CHECKER
from tests.plugins import flaky_solvers  # noqa: F401  (registers nan-on-second)

RESAMPLES = 500  # the statistics are tested in test_paired_stats.py; here only what the page shows


@pytest.fixture(scope="module")
def small_run(small_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tweedie, hole-fill (two sigmas: a sweep), a solver that fails on one image and one that does not apply
    to deblurring; 2 operators, 4 images, 2 seeds."""
    suite = tmp_path_factory.mktemp("suite") / "suite.toml"
    suite.write_text(f'model = "{small_model_path}"\nimages = "photos"\nnum_images = 4\nseeds = [0, 1]\n'
                     '[[operator]]\nname = "inpaint-random"\n[[operator]]\nname = "deblur"\n'
                     '[[solver]]\nname = "tweedie"\n'
                     '[[solver]]\nname = "hole-fill"\nlabel = "hole-fill-1"\nsigma = 1.0\n'
                     '[[solver]]\nname = "hole-fill"\nlabel = "hole-fill-3"\nsigma = 3.0\n'
                     '[[solver]]\nname = "nan-on-second"\n[[solver]]\nname = "masks-only"\n')
    out = tmp_path_factory.mktemp("runs") / "small"
    run(load_suite(suite), out=out, progress=False)
    from ipbench.results.grid import write_grids

    write_grids(out)
    return out


def test_pareto_front_keeps_the_non_dominated_points_in_cost_order() -> None:
    cost, psnr = [1.0, 2.0, 3.0, 0.5, 2.5], [20.0, 22.0, 21.0, 15.0, 22.0]
    assert pareto_front(cost, psnr, higher_is_better=True) == [3, 0, 1]  # 2.5 s ties 22 dB at more cost
    lpips = [0.2, 0.1, 0.3, 0.4, math.nan]
    assert pareto_front(cost, lpips, higher_is_better=False) == [3, 0, 1]  # nan is never on the front


def test_report_shows_tables_distributions_costs_pairs_sweeps_and_grids(small_run: Path) -> None:
    context = build_report([small_run], baseline="tweedie", resamples=RESAMPLES)
    assert [s["operator"] for s in context["sections"]] == ["inpaint-random", "deblur-gauss"]
    section = context["sections"][0]
    lines = {line["solver"]: line for line in section["table"]["lines"]}
    assert set(lines) == {"tweedie", "hole-fill-1", "hole-fill-3", "nan-on-second", "masks-only"}
    assert lines["nan-on-second"]["failed"] == 2 and lines["nan-on-second"]["n"] == 6  # the second image x 2 seeds
    assert lines["tweedie"]["n"] == 8 and lines["tweedie"]["failed"] == 0
    rows = pd.read_json(next(small_run.glob("rows*.jsonl")), lines=True)
    ok = rows[(rows["operator"] == "inpaint-random") & (rows["status"] == "ok")]
    assert ok["image"].nunique() == 4  # too few images for any mark: no best in bold, and the page says why
    assert not any(cell["best"] for line in lines.values() for cell in line["cells"])
    # the pair with the fewest common images is named: nan-on-second failed on one of the four
    assert section["table"]["note"] == "too few images (n = 3; the signed-rank test needs n >= 6 to reach p < 0.05)"
    cell = lines["tweedie"]["cells"][0]["text"]
    mean, std = ok[ok.solver == "tweedie"]["psnr"].mean(), ok[ok.solver == "tweedie"]["psnr"].std()
    se = ok[ok.solver == "tweedie"].groupby("image")["psnr"].mean().std() / 2
    assert cell == with_spread(mean, std, se, 2)  # rounded where the SE over the 4 images ends
    deblur = {line["solver"]: line for line in context["sections"][1]["table"]["lines"]}["masks-only"]
    assert [c["text"] for c in deblur["cells"]] == ["n/a"] * 3 and deblur["skipped"] == 8 and deblur["n"] == 0
    assert "needs a mask" in deblur["reason"]
    for key in ("distribution", "cost"):
        assert section[key].startswith("data:image/png;base64,")
    assert section["forest"].startswith("data:image/svg+xml;base64,")
    pairs = [line["pair"] for line in section["comparisons"]]
    assert pairs == ["hole-fill-1 − tweedie", "hole-fill-3 − tweedie", "nan-on-second − tweedie", "masks-only − tweedie"]
    assert "masks-only − tweedie" not in [line["pair"] for line in context["sections"][1]["comparisons"]]
    camera = section["comparisons"][2]
    assert camera["n"] == 3  # the camera's rows failed: three images pair
    assert all(cell["verdict"] == "too few images (n = 3; the signed-rank test needs n >= 6 to reach p < 0.05)"
               and not cell["significant"] for cell in camera["cells"])
    fronts = {(f["metric"], f["cost"]): f["solvers"] for f in section["fronts"]}
    assert set(fronts) == {(m, c) for m in ("PSNR", "LPIPS") for c in ("s / image (log)",
                                                                       "NFE (network calls per image)")}
    extremes = {group["solver"]: group for group in section["extremes"]}
    assert set(extremes) == {"hole-fill-1", "hole-fill-3", "nan-on-second", "masks-only"}
    shown = extremes["hole-fill-1"]["pictures"]
    assert [item["side"] for item in shown] == ["largest"] * 2 + ["smallest"] * 2  # 4 images: split, none twice
    assert [c["label"] for c in shown[0]["cells"]] == ["truth", "measurement", "tweedie", "hole-fill-1"]
    assert all(c["uri"].startswith("data:image/png;base64,") for item in shown for c in item["cells"])
    measurement = Image.open(io.BytesIO(base64.b64decode(shown[0]["cells"][1]["uri"].split(",")[1])))
    assert set(CHECKER) <= set(map(tuple, np.asarray(measurement.convert("RGB")).reshape(-1, 3).tolist()))  # holes
    assert [s["title"] for s in context["sweeps"]] == ["hole-fill: sigma (small)"]
    assert [(g["name"], g["shows"]) for g in context["grids"]] == [("grid-inpaint-random", "first 4 images, seed 0"),
                                                                   ("grid-deblur-gauss", "first 4 images, seed 0")]


def test_the_paired_cells_match_the_paired_statistics(small_run: Path) -> None:
    """The page's numbers are paired_comparisons' numbers, formatted: a significant difference is bold."""
    from ipbench.results.paired_stats import paired_comparisons
    from ipbench.results.rows import load_rows

    context = build_report([small_run], baseline="tweedie", resamples=RESAMPLES)
    stats = paired_comparisons(load_rows(small_run), "tweedie", ["psnr", "ssim", "lpips"], resamples=RESAMPLES)
    line = stats[(stats["solver"] == "hole-fill-3") & (stats["operator"] == "deblur-gauss") & (stats["metric"] == "psnr")]
    cell = context["sections"][1]["comparisons"][1]["cells"][0]
    d = decimals_for(line["se"].iloc[0], 2)
    assert cell["mean"] == f"{line['mean'].iloc[0]:+.{d}f}"
    assert cell["interval"] == f"[{line['low'].iloc[0]:+.{d}f}, {line['high'].iloc[0]:+.{d}f}]"
    assert cell["significant"] == bool(line["significant"].iloc[0]) is False  # 4 images: never


def test_bench_report_writes_the_page_and_says_what_is_significant(small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(small_run), "--baseline", "tweedie", "--out", str(out),
                                      "--resamples", str(RESAMPLES)])
    assert result.exit_code == 0, result.output
    assert ("0 of 21 paired differences are significant (95% interval leaves out 0 and Wilcoxon p < 0.05); 21 with "
            "too few images for the test to reach p < 0.05") in result.output  # 4 images (3 for one pair): none
    html = out.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # offline by construction
    assert "Paired comparisons against <b>tweedie</b>" in html
    assert "command" in html and "seeding: independent" in html
    default = CliRunner().invoke(cli, ["report", str(small_run), "--resamples", str(RESAMPLES)])
    assert default.exit_code == 0 and (small_run / "report.html").is_file()  # one run: into its folder
    assert "every pair of solvers" in (small_run / "report.html").read_text()


def test_bench_report_refuses_an_unknown_baseline_and_a_folder_that_is_no_run(small_run: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(cli, ["report", str(small_run), "--baseline", "dps"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "Error: --baseline dps: not a solver of the runs; valid: tweedie, hole-fill-1, hole-fill-3, nan-on-second, "
        "masks-only"]
    empty = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert empty.exit_code == 2 and "not a run folder" in empty.output and len(empty.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def other_images_run(small_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tweedie on 3 images, one of them not in small_run's 4 (the fifth photo), under common seeding."""
    spec = build_spec(["tweedie"], ["inpaint-random"], model=str(small_model_path), images="photos", num_images=5,
                      seeding="common")
    out = tmp_path_factory.mktemp("runs") / "other"
    run(spec, out=out, progress=False)
    meta = json.loads((out / "run.json").read_text())
    assert len(meta["images"]["ids"]) == 5
    return out


def test_two_runs_on_different_images_give_a_warning_and_distinct_labels(small_run: Path, other_images_run: Path
                                                                        ) -> None:
    runs = load_report_runs([small_run, other_images_run])
    assert runs[0].labels["tweedie"] == "tweedie (small)" and runs[1].labels["tweedie"] == "tweedie (other)"
    warnings = run_warnings(runs)
    assert any("differ in images: 1 only in other, 0 only in small" in w for w in warnings), warnings
    assert any("differ in conventions: seeding" in w for w in warnings), warnings
    assert run_warnings(runs[:1]) == []


def test_the_report_opens_offline_in_chromium_with_every_image_loaded(small_run: Path, tmp_path: Path,
                                                                     chromium: str) -> None:
    out = tmp_path / "report.html"
    assert CliRunner().invoke(cli, ["report", str(small_run), "--baseline", "tweedie", "--out", str(out),
                                    "--resamples", str(RESAMPLES)]).exit_code == 0
    page = open_page(out, screenshot=tmp_path / "report.png")
    assert page.problems() == []  # every image decoded, no console error, no request off the machine
    assert len(page.images) >= 2 * 3 + 2 + 1  # figures of both operators, the two grids, a sweep
    assert all(image.natural_width > 0 for image in page.images)
    assert page.title.startswith("ipbench report: small")
    with Image.open(tmp_path / "report.png") as shot:
        assert shot.width == 1280 and shot.height > 2000  # the whole page, not one screen


def test_a_report_over_runs_on_different_images_shows_the_warning(small_run: Path, other_images_run: Path,
                                                                  tmp_path: Path, chromium: str) -> None:
    out = tmp_path / "two.html"
    result = CliRunner().invoke(cli, ["report", str(small_run), str(other_images_run), "--out", str(out),
                                      "--resamples", str(RESAMPLES)])
    assert result.exit_code == 0, result.output
    assert "warning: other and small differ in images" in result.output
    html = out.read_text()
    assert html.count('class="warning"') == 2 and "differ in images: 1 only in other" in html
    page = open_page(out)
    assert page.problems() == []


@pytest.fixture(scope="module")
def grid_run(small_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of two fields (gaussian-filter's sigma x source, a 2 x 2 grid) and a fifth entry on one
    operator only, on 3 images and 1 seed."""
    suite = tmp_path_factory.mktemp("suite") / "grid.toml"
    entries = "".join(f'[[solver]]\nname = "gaussian-filter"\nlabel = "gf-{sigma}-{source}"\nsigma = {sigma}\n'
                      f'source = "{source}"\n' for sigma in (0.8, 1.6) for source in ("measurement", "back-projection"))
    entries += ('[[solver]]\nname = "gaussian-filter"\nlabel = "gf-wide"\nsigma = 3.2\nsource = "measurement"\n'
                'operators = ["deblur-gauss"]\n')
    suite.write_text(f'model = "{small_model_path}"\nimages = "photos"\nnum_images = 3\nseeds = [0]\n'
                     '[[operator]]\nname = "inpaint-random"\n[[operator]]\nname = "deblur"\n' + entries)
    out = tmp_path_factory.mktemp("runs") / "grid"
    run(load_suite(suite), out=out, progress=False)
    return out


def test_a_sweep_of_two_fields_is_plotted_against_one_with_a_line_per_value_of_the_other(grid_run: Path) -> None:
    from ipbench.results.html_report import render

    context = build_report([grid_run], resamples=RESAMPLES)
    [sweep] = context["sweeps"]
    assert sweep["title"] == "gaussian-filter: sigma, source (grid)"
    assert (sweep["x"], sweep["others"], sweep["fields"]) == ("sigma", ["source"], ["sigma", "source"])
    assert sweep["figure"].startswith("data:image/png;base64,")
    assert [line["solver"] for line in sweep["lines"]] == ["gf-0.8-measurement", "gf-0.8-back-projection",
                                                          "gf-1.6-measurement", "gf-1.6-back-projection", "gf-wide"]
    assert sweep["lines"][1]["settings"] == ["0.8", "back-projection"]
    assert sweep["columns"] == [f"{op} {m}" for op in ("inpaint-random", "deblur-gauss") for m in ("PSNR", "SSIM", "LPIPS")]
    assert all(len(line["cells"]) == 6 for line in sweep["lines"])
    assert sweep["lines"][-1]["cells"][:3] == ["—"] * 3  # the entry that does not run on inpainting
    rows = pd.read_json(next(grid_run.glob("rows*.jsonl")), lines=True)
    mine = rows[(rows["solver"] == "gf-1.6-measurement") & (rows["operator"] == "deblur-gauss")]["psnr"]
    se = mine.std() / math.sqrt(len(mine))
    assert sweep["lines"][2]["cells"][3] == with_spread(mine.mean(), se, se, 2)  # mean ± SE, at the SE's digits
    assert sweep["lines"][2]["cells"][3] == f"{mine.mean():.1f} ± {se:.1f}"  # SE 2.0: one decimal
    html = render(context)
    assert "one line per value of source" in html and "<th>back-projection</th>" not in html


def test_the_best_of_a_column_is_bold_only_where_the_paired_rule_separates_it_from_every_other() -> None:
    """Rows by hand, 1 seed: `top` +2 dB above dps on every image (noise 0.5), `low` -1, and `near`, top's
    value +0.3 and -0.3 on alternate images (as good as top: mean difference 0, p = 1). With 100 images, top
    is bold; beside near, nothing is; at 4 images nothing is, whatever its margin, and the note says why."""
    from ipbench.results.html_report import _table
    from ipbench.results.table import summarize

    def rows(n: int, effects: dict[str, float]) -> pd.DataFrame:
        rng = np.random.default_rng(0)
        records = []
        for i in range(n):
            base = 20.0 + rng.normal(0, 3)
            values = {solver: base + effect + rng.normal(0, 0.5) for solver, effect in {"dps": 0.0, **effects}.items()}
            if "near" in values:
                values["near"] = values["top"] + (0.3 if i % 2 else -0.3)
            records += [dict(solver=solver, operator="op", image=f"i{i}", seed=0, status="ok", seconds=0.1, nfe=1,
                             error="", psnr=value) for solver, value in values.items()]
        return pd.DataFrame.from_records(records)

    def bold(frame: pd.DataFrame) -> tuple[list[str], str]:
        table = _table(summarize(frame), ["psnr"], frame, RESAMPLES)
        return [line["solver"] for line in table["lines"] if line["cells"][0]["best"]], table["note"]

    assert bold(rows(100, {"top": 2.0, "low": -1.0})) == (["top"], "")
    assert bold(rows(100, {"top": 2.0, "near": 0.0, "low": -1.0})) == ([], "")
    assert bold(rows(4, {"top": 5.0, "low": -1.0})) == (
        [], "too few images (n = 4; the signed-rank test needs n >= 6 to reach p < 0.05)")


@pytest.mark.parametrize("baseline", [None, "e", "b"])
def test_the_best_of_a_column_reuses_the_pages_paired_lines_to_the_same_table(baseline: str | None) -> None:
    """_table takes the lines it needs against a column's best from the page's own paired comparisons
    (the same computation) and computes only the others: the table, its marks and its note must be those
    it computes alone, whether the known lines have the best as baseline (every pair; --baseline e) or not."""
    from ipbench.results.html_report import _table
    from ipbench.results.paired_stats import paired_comparisons
    from ipbench.results.table import summarize

    rng = np.random.default_rng(1)
    effects = {"e": 3.0, "a": 0.0, "b": 1.5, "c": -0.5, "d": 1.4}  # e best, and first
    records = []
    for i in range(12):
        base, near = 20.0 + rng.normal(0, 3), 0.14 + rng.normal(0, 0.01)
        for s in (0, 1):
            lpips = {solver: 0.2 - effect / 100 + rng.normal(0, 0.01) for solver, effect in effects.items()}
            lpips["e"], lpips["d"] = near, near + (0.002 if i % 2 else -0.001)  # d as good as e
            records += [dict(solver=solver, operator="op", image=f"i{i}", seed=s, status="ok", seconds=0.1, nfe=1,
                             error="", psnr=base + effect + rng.normal(0, 0.4), lpips=lpips[solver])
                        for solver, effect in effects.items()]
    rows = pd.DataFrame.from_records(records)
    known = paired_comparisons(rows, baseline, ["psnr", "lpips"], resamples=RESAMPLES)
    alone = _table(summarize(rows), ["psnr", "lpips"], rows, RESAMPLES)
    assert _table(summarize(rows), ["psnr", "lpips"], rows, RESAMPLES, known) == alone
    assert [line["solver"] for line in alone["lines"] if line["cells"][0]["best"]] == ["e"]  # PSNR
    assert not any(line["cells"][1]["best"] for line in alone["lines"])  # LPIPS: d as good as e
