"""bench report on a `--samples K` run: the posterior draws section (results/report_draws.py) and its absence
for a run without draws."""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.checks.browser import open_page
from ipbench.cli import cli
from ipbench.results.html_report import build_report, render
from ipbench.results.report_draws import coverage_levels
from ipbench.results.paired_stats import paired_comparisons
from ipbench.results.rounding import decimals_for, fixed, standard_error, with_spread
from ipbench.results.rows import load_rows
from ipbench.results.samples import COVERAGE_LEVELS
from ipbench.run_paths import reconstruction_png, std_png

RESAMPLES = 200
OPERATOR = "inpaint-box"


def _run(out: Path, model_path: Path, samples: int, num_images: int) -> Path:
    spec = build_spec(["dps", "tweedie"], ["inpaint"], ["dps.steps=4"], model=str(model_path), images="photos",
                      num_images=num_images, samples=samples, seeds=[0])
    return run(spec, out=out, batch_size=2, progress=False).out


@pytest.fixture(scope="module")
def draws_run(small_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dps with 3 draws per measurement beside tweedie (deterministic: one draw), 4 images, one seed."""
    return _run(tmp_path_factory.mktemp("runs") / "draws", small_model_path, samples=3, num_images=4)


@pytest.fixture(scope="module")
def draws_context(draws_run: Path) -> dict:
    return build_report([draws_run], baseline="tweedie", resamples=RESAMPLES)


def _png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"))


def test_the_draws_table_labels_the_oracle_and_never_marks_it(draws_context: dict) -> None:
    (part,) = draws_context["draws"]["operators"]
    assert part["operator"] == OPERATOR
    header = part["table"]["header"]
    oracle = [h["text"] for h in header if h["oracle"]]
    assert oracle == ["best-of-K PSNR (oracle)", "best-of-K LPIPS (oracle)"]
    assert [h["oracle"] for h in header] == [h["text"].endswith("(oracle)") for h in header]
    lines = {line["solver"]: line for line in part["table"]["lines"]}
    assert (lines["dps"]["draws"], lines["tweedie"]["draws"]) == (3, 1)
    for line in lines.values():  # every cell of an oracle column is flagged, and the table marks no best at all
        assert [c["oracle"] for c in line["cells"]] == [h["oracle"] for h in header]
        assert all("best" not in c for c in line["cells"])


def test_calibration_is_the_mean_coverage_over_images_with_its_standard_error(draws_run: Path, draws_context: dict
                                                                               ) -> None:
    (part,) = draws_context["draws"]["operators"]
    assert part["point_estimates"] == ["tweedie"]  # one draw: listed, not plotted
    (line,) = part["coverage"]
    assert (line["solver"], line["draws"], line["n"]) == ("dps", 3, 4)
    rows = load_rows(draws_run)
    dps = rows[(rows["solver"] == "dps") & (rows["status"] == "ok")]
    assert coverage_levels(rows) == list(COVERAGE_LEVELS) and part["levels"] == ["50%", "90%", "95%"]
    for level, text in zip(COVERAGE_LEVELS, line["cells"]):
        per_image = dps.groupby("image")[f"coverage.{round(100 * level)}"].mean().to_numpy()
        assert len(per_image) == 4 and ((per_image >= 0) & (per_image <= 1)).all()
        mean, se = float(per_image.mean()), standard_error(per_image)
        assert text == with_spread(mean, se, se, 3)
    figure = _png(part["figure"])  # a real picture: a plotted line and axes, not a blank canvas
    assert figure.shape[0] > 200 and figure.shape[1] > 200 and len(np.unique(figure.reshape(-1, 3), axis=0)) > 8


def test_strips_show_first_draw_sample_mean_and_std_map(draws_run: Path, draws_context: dict) -> None:
    (part,) = draws_context["draws"]["operators"]
    assert [group["image"] for group in part["strips"]] == ["00-astronaut", "01-camera", "02-chelsea"]  # first 3
    for group in part["strips"]:
        (strip,) = group["strips"]  # dps only: tweedie has no spread
        assert strip["solver"] == "dps"
        assert [c["label"] for c in strip["cells"]] == ["truth", "first draw", "mean of 3 draws", "std (÷ its max)"]
        first, mean, std = (_png(c["uri"]) for c in strip["cells"][1:])
        image = group["image"]
        draws = [np.asarray(Image.open(reconstruction_png(draws_run, OPERATOR, "dps", image, 0, k)).convert("RGB"),
                            dtype=float) for k in range(3)]
        np.testing.assert_array_equal(first, draws[0])
        np.testing.assert_array_equal(mean, np.rint(np.mean(draws, axis=0)))
        assert not np.array_equal(mean, first)  # the draws differ, so their mean is not the first
        np.testing.assert_array_equal(std, np.asarray(Image.open(std_png(draws_run, OPERATOR, "dps", image, 0))
                                                      .convert("RGB")))


def _paired_part(html: str) -> str:
    """The page's per-operator part: results tables and paired comparisons, before the draws section."""
    start, end = html.index('<h2 id="op-'), html.index('<h2 id="draws">')
    return html[start:end]


def test_the_page_has_the_section_and_the_paired_statistics_never_use_the_oracle(draws_run: Path,
                                                                               draws_context: dict) -> None:
    html = render(draws_context)
    assert html.count('<h2 id="draws">Posterior draws</h2>') == 1
    assert "<script" not in html and "http://" not in html and "https://" not in html  # offline
    draws = html[html.index('<h2 id="draws">'):]
    assert '<th class="oracle"' in draws and "best-of-K PSNR (oracle)" in draws
    assert "Point estimates: no spread" in draws and "tweedie" in draws
    assert draws.count('src="data:image/png;base64,') == 1 + 3 * 4  # the calibration figure, 3 strips of 4
    assert "oracle" not in _paired_part(html)
    rows = load_rows(draws_run)
    stats = paired_comparisons(rows, "tweedie", ["psnr"], resamples=RESAMPLES).iloc[0]
    (comparison,) = draws_context["sections"][0]["comparisons"]
    assert comparison["pair"] == "dps − tweedie"
    cell = comparison["cells"][0]
    d = decimals_for(stats["se"], 2)
    assert cell["mean"] == fixed(stats["mean"], d, sign=True)  # the per-draw metric, averaged per image
    ok = rows[rows["status"] == "ok"]
    per_draw = ok.groupby(["solver", "image"])["psnr"].mean()
    oracle = (ok[ok["solver"] == "dps"].groupby("image")["oracle.psnr"].mean() - per_draw["tweedie"]).mean()
    assert math.isclose(stats["mean"], (per_draw["dps"] - per_draw["tweedie"]).mean(), rel_tol=1e-12)
    assert cell["mean"] != fixed(oracle, d, sign=True)
    # the results table's PSNR of dps is the per-draw one (mean ± std over images x draws), not the oracle's
    lines = {line["solver"]: line for line in draws_context["sections"][0]["table"]["lines"]}
    dps = ok[ok["solver"] == "dps"]
    se = standard_error(dps.groupby("image")["psnr"].mean().to_numpy())
    assert lines["dps"]["cells"][0]["text"] == with_spread(dps["psnr"].mean(), dps["psnr"].std(), se, 2)
    assert lines["dps"]["cells"][0]["text"] != with_spread(dps["oracle.psnr"].mean(), dps["oracle.psnr"].std(), se, 2)


def test_a_run_without_draws_has_no_such_section(small_model_path: Path, tmp_path: Path) -> None:
    out = _run(tmp_path / "plain", small_model_path, samples=1, num_images=2)
    context = build_report([out], resamples=RESAMPLES)
    assert context["draws"] is None
    html = render(context)
    assert "Posterior draws" not in html and "oracle" not in html and "calibration" not in html


def test_bench_report_with_draws_opens_offline_in_chromium(draws_run: Path, tmp_path: Path, chromium: str) -> None:
    out = tmp_path / "draws.html"
    result = CliRunner().invoke(cli, ["report", str(draws_run), "--out", str(out), "--resamples", str(RESAMPLES)])
    assert result.exit_code == 0, result.output
    page = open_page(out)
    assert page.problems() == []  # every image decoded, no console error, no request off the machine
    assert all(image.natural_width > 0 for image in page.images)


def test_the_draws_table_is_the_bench_tables_summary(draws_run: Path, draws_context: dict) -> None:
    """The page's draws table shows the numbers of samples.csv, which `bench table` writes."""
    from ipbench.results.table import write_tables

    write_tables(draws_run)
    csv = pd.read_csv(draws_run / "samples.csv")
    (part,) = draws_context["draws"]["operators"]
    header = [h["text"] for h in part["table"]["header"]]
    dps = {h: c["text"] for h, c in zip(header, part["table"]["lines"][0]["cells"])}
    value = csv[(csv["solver"] == "dps") & (csv["value"] == "oracle.psnr")].iloc[0]
    assert dps["best-of-K PSNR (oracle)"] == with_spread(value["mean"], value["se"], value["se"], 2)
