"""bench report's figures and the pieces of the page around them, on data built by hand (no model runs):
user text drawn as typed, readable cost axes, point labels inside their axes, multi-field sweeps, the
largest / smallest images, and the bounded resamples of the paired statistics."""
from __future__ import annotations

from xml.etree import ElementTree

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.results import plots
from ipbench.results.html_report import extreme_picks, render, swept_fields
from ipbench.results.paired_stats import bootstrap_interval, check_resamples

HOSTILE = ["$x$", "$", "\\frac", "$\\frac$", "$$", "<script>alert(1)</script>", "\"quotes'", "ünïcødé ΠGDM 漢字"]


def cost_summary(names: list[str], seconds: list[float], nfe: list[float]) -> pd.DataFrame:
    k = np.arange(len(names), dtype=float)
    return pd.DataFrame({"solver": names, "seconds": seconds, "nfe": nfe, "psnr": 20 + k, "lpips": 0.4 - 0.05 * k})


def texts(figure) -> list:
    return [t for t in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_parse_math"))
            if t.get_text()]


def test_every_figure_draws_hostile_labels_as_typed() -> None:
    """Labels, field names and values that mathtext would parse (and an unbalanced one would crash on) or
    that look like markup reach the PNG as plain text, in every figure of the report."""
    n = len(HOSTILE)
    figure, _ = plots.cost_figure(cost_summary(HOSTILE, list(np.geomspace(1e-3, 1, n)), [0, 1, 5, 10, 50, 100, 500,
                                                                                        1000]), ["psnr", "lpips"])
    drawn = {t.get_text(): t for t in texts(figure)}
    assert set(HOSTILE) <= set(drawn) and not any(drawn[h].get_parse_math() for h in HOSTILE)
    per_image = pd.DataFrame({"solver": HOSTILE * 3, "image": np.repeat(["a", "b", "c"], n), "psnr": np.arange(3 * n)})
    assert plots.distribution_png(per_image, HOSTILE, ["psnr"]).startswith(b"\x89PNG")
    comparisons = pd.DataFrame({"solver": HOSTILE[1:], "baseline": HOSTILE[0], "metric": "psnr",
                                "mean": 0.5, "low": 0.1, "high": 0.9, "significant": True})
    forest = plots.forest_svg(comparisons, ["psnr"])
    root = ElementTree.fromstring(forest)  # well-formed: no label can close a comment or open a tag
    assert root.tag.endswith("svg") and b"<script" not in forest and b"<text" not in forest  # glyphs as paths
    assert forest == plots.forest_svg(comparisons, ["psnr"])  # the same figure, the same bytes
    points = pd.DataFrame({"operator": "$op$", "$f$": HOSTILE, "\\g": ["$", "$x$"] * (n // 2), "psnr": 1.0,
                           "psnr_se": 0.1})
    assert plots.sweep_png(points, "$f$", ["\\g"], ["psnr"]).startswith(b"\x89PNG")


TICK_RC = [{}, {"ytick.direction": "in", "ytick.right": True, "ytick.color": "red", "ytick.major.size": 6,
               "xtick.direction": "inout", "xtick.top": True, "xtick.minor.size": 3, "xtick.minor.width": 1.5}]


@pytest.mark.parametrize("rc", TICK_RC)
def test_the_forests_row_ticks_are_drawn_as_set_yticks_draws_them(rc: dict) -> None:
    """The forest plot draws its many row ticks as one line of markers and plain texts (a Tick per row is
    slow): the picture and tight_layout's margins must be those of set_yticks, pixel for pixel, under the
    default rcParams and others (ticks inward, on both sides, coloured, longer)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = ["a − b", "a long pair − of solvers", "$x$ − c"]

    def drawn(own: bool) -> np.ndarray:
        figure = Figure(figsize=(6.0, 2.0))
        FigureCanvasAgg(figure)
        for k in range(2):
            axes = figure.add_subplot(1, 2, k + 1)
            axes.plot([0.0, 1.0], [0.0, 2.0])
            shown = labels if k == 0 else []
            if own:
                plots._row_ticks(axes, len(labels), shown)
            else:
                axes.set_yticks(range(len(labels)), shown or [""] * len(labels), fontsize=8)
            axes.set_ylim(len(labels) - 0.5, -0.5)
        figure.tight_layout()
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba()).copy()

    with matplotlib.rc_context({**plots.PLAIN_TEXT, **rc}):
        assert np.array_equal(drawn(True), drawn(False))


def test_a_figure_laid_out_by_tight_layout_is_drawn_once_when_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    """tight_layout leaves a placeholder layout engine, for which savefig draws the figure twice (once with
    drawing disabled); the report's figures are saved with one draw."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.0, 2.0))
    figure.add_subplot(1, 1, 1).plot([0.0, 1.0], [1.0, 0.0])
    figure.tight_layout()
    draws, draw = [], Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(renderer), draw(self, renderer))[1])
    assert plots._png(figure).startswith(b"\x89PNG")
    assert len(draws) == 1


def _pixels(draw, after_layout=None) -> np.ndarray:
    """The RGBA pixels of a one-panel figure: `draw(axes)`, tight_layout, then `after_layout(axes)`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(plots.PLAIN_TEXT):
        figure = Figure(figsize=(6.0, 3.0))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        draw(axes)
        figure.tight_layout()
        if after_layout is not None:
            after_layout(axes)
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba()).copy()


@pytest.mark.parametrize("rc", TICK_RC)
@pytest.mark.parametrize("named", [True, False])
def test_the_distributions_solver_ticks_are_drawn_as_set_xticks_draws_them(rc: dict, named: bool) -> None:
    """The per-image distribution draws its solver ticks like one real tick (a Tick each is slow): rotated
    names under the bottom panel, bare marks above it, pixel for pixel as set_xticks draws them."""
    names = ["dps", "a much longer solver name", "$x$", "score-ald-ddpm", ""] if named else [""] * 5
    text = {"rotation": 35, "ha": "right", "fontsize": 8} if named else {"rotation": 0, "ha": "center", "fontsize": 8}

    def drawn(own: bool) -> np.ndarray:
        def draw(axes) -> None:
            axes.plot([1.0, 5.0], [0.0, 1.0], "o")
            if own:
                plots._column_ticks(axes, names, **text)
            else:
                axes.set_xticks(range(1, len(names) + 1), names, **text)
            axes.set_xlim(0.4, len(names) + 0.6)
        return _pixels(draw)

    with matplotlib.rc_context(rc):
        assert np.array_equal(drawn(True), drawn(False))


@pytest.mark.parametrize("kind", ["normal", "skewed", "two", "one", "constant"])
def test_the_distributions_boxes_are_drawn_as_boxplot_draws_them(kind: str) -> None:
    """The per-image distribution draws its boxes as four lines per panel (boxplot makes six artists a box):
    the picture must be boxplot's, pixel for pixel."""
    rng = np.random.default_rng(1)
    values = {"normal": [rng.normal(20, 3, 48) for _ in range(5)],
              "skewed": [rng.lognormal(0, 1, 40), rng.exponential(1, 7), rng.normal(0, 1, 100)],
              "two": [np.array([1.0, 2.0]), np.array([0.5, 3.0, 3.5])], "one": [np.array([1.0]), np.array([2.0])],
              "constant": [np.full(5, 2.0), np.array([1.0, 1.0, 1.0, 5.0])]}[kind]
    positions = [1 + 2 * i for i in range(len(values))]

    def drawn(boxes) -> np.ndarray:
        def draw(axes) -> None:
            boxes(axes)
            axes.set_xticks(positions, [str(p) for p in positions])  # boxplot sets ticks of its own
            axes.set_xlim(0, 2 * len(values))
        return _pixels(draw)

    assert np.array_equal(drawn(lambda axes: plots._boxes(axes, values, positions, width=0.6)),
                          drawn(lambda axes: axes.boxplot(values, positions=positions, widths=0.6, showfliers=False,
                                                          medianprops={"color": "black"})))


@pytest.mark.parametrize("rc", TICK_RC)
@pytest.mark.parametrize("scale, limits", [("log", (6e-4, 8.0)), ("log", (0.3, 3.0)), ("log", (2e-6, 40.0)),
                                           ("symlog", (-0.5, 800.0)), ("symlog", (-0.5, 1.6e4))])
def test_a_cost_axis_draws_its_minor_ticks_as_matplotlib_does(scale: str, limits: tuple[float, float], rc: dict
                                                               ) -> None:
    """The cost figure's log axes draw their minor ticks as one line of markers (a Tick each was a third of
    the figure's time), placed after the layout as the axis places them: the picture must be the axis's,
    under the default rcParams and others."""
    def axis(axes) -> None:
        axes.set_xscale(scale, **({"linthresh": 1.0} if scale == "symlog" else {}))
        axes.set_xlim(*limits)
        ticks, _ = plots.log_ticks(list(limits), with_zero=scale == "symlog")
        axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.plot(limits, [0, 1], "o")

    minor = {}

    def own(axes) -> None:
        axis(axes)
        minor["locator"] = axes.xaxis.get_minor_locator()
        axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())

    with matplotlib.rc_context(rc):
        drawn = _pixels(own, after_layout=lambda axes: plots._minor_tick_marks(axes, minor["locator"]))
        assert np.array_equal(drawn, _pixels(axis))


@pytest.mark.parametrize("minor, replaced", [(2.0, True), (5.0, False)])
def test_the_cost_figure_keeps_the_axis_minor_ticks_where_they_are_longer_than_its_major_ones(
        minor: float, replaced: bool) -> None:
    """Minor ticks drawn as markers are not laid out: the spines' extent covers them only when the major
    ticks are as long, so with longer minor ticks (an rcParams choice) the axes keep their own."""
    with matplotlib.rc_context({"xtick.minor.size": minor}):
        figure, _ = plots.cost_figure(cost_summary(["a", "b"], [0.01, 1.0], [1, 100]), ["psnr"])
    locators = [axes.xaxis.get_minor_locator() for axes in figure.axes]
    assert all(isinstance(locator, matplotlib.ticker.NullLocator) == replaced for locator in locators)


def test_the_page_escapes_user_text_in_content_and_attributes() -> None:
    context = {"title": HOSTILE[5], "generated": "now", "ipbench_version": "0", "runs": [], "warnings": HOSTILE,
               "baseline": HOSTILE[6], "resamples": 100, "metrics": ["PSNR"], "sections": [], "grids": [],
               "sweeps": [{"title": HOSTILE[6], "figure": "data:image/png;base64,AA==", "x": "\"f", "others": ["<g>"],
                           "fields": ["\"f", "<g>"], "columns": ["<op> PSNR"],
                           "lines": [{"solver": HOSTILE[5], "settings": HOSTILE[6:8], "cells": ["<b>1</b>"]}]}]}
    html = render(context)
    assert "<script" not in html and "<b>1</b>" not in html and "<g>" not in html
    assert 'alt="&#34;quotes&#39;"' in html  # an attribute cannot be closed by a label
    assert "ünïcødé ΠGDM 漢字" in html


@pytest.mark.parametrize("values, zero", [
    ([0.0101, 0.0102, 0.0103], False),      # close together: the range widened to a decade
    ([1e-5, 0.3, 2.0, 40.0], False),        # many decades
    ([0.2], False),                          # one point
    ([0.0, 100.0, 100.0], True),            # NFE with a classical baseline at 0
    ([0.0, 0.0], True),                      # every solver without the network
    ([100.0, 100.0, 101.0], False),         # the same NFE everywhere
    ([1.0, 20.0, 1000.0, 3000.0], False),
])
def test_cost_axes_have_several_labels_that_never_overlap(values: list[float], zero: bool) -> None:
    names = [f"s{i}" for i in range(len(values))]
    seconds = values if not zero else [0.1] * len(values)
    nfe = values if zero else [10.0] * len(values)
    figure, _ = plots.cost_figure(cost_summary(names, seconds, nfe), ["psnr"])
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[1] if zero else figure.axes[0]
    labels = [t for t in axes.get_xticklabels() if t.get_text() and t.get_visible()]
    low, high = axes.get_xlim()
    labels = [t for t in labels if low <= t.get_position()[0] <= high]
    assert len(labels) >= 2, [t.get_text() for t in labels]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]
    assert not any("$" in t.get_text() for t in labels)  # plain numbers, not mathtext


@pytest.mark.parametrize("layout", ["spread", "corners", "one", "column"])
def test_point_labels_stay_inside_their_axes(layout: str) -> None:
    names = ["a long solver name (left)", "score-ald-ddpm", "a label as long as half the axes are wide", "top"]
    seconds, quality = {"spread": ([1e-4, 0.01, 1.0, 0.1], None), "corners": ([1e-5, 1e-5, 10.0, 10.0], None),
                        "one": ([0.5], None), "column": ([0.2, 0.2, 0.2, 0.2], None)}[layout]
    names = names[:len(seconds)]
    figure, _ = plots.cost_figure(cost_summary(names, seconds, [0, 10, 100, 1000][:len(seconds)]),
                                  ["psnr", "lpips"])
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        box = axes.get_window_extent(renderer)
        annotations = [t for t in axes.texts if t.get_text() in names]
        assert len(annotations) == len(names)
        for text in annotations:
            extent = text.get_window_extent(renderer)
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, (layout, text.get_text())
            assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, (layout, text.get_text())


@pytest.mark.parametrize("n", range(0, 9))
def test_largest_and_smallest_images_never_repeat_and_split_small_sets(n: int) -> None:
    diff = pd.Series(np.random.default_rng(n).normal(size=n), index=[f"i{k}" for k in range(n)])
    picks = extreme_picks(diff)
    images = [image for _, image in picks]
    assert len(images) == len(set(images)) == min(n, 6)
    largest = [diff[i] for side, i in picks if side == "largest"]
    smallest = [diff[i] for side, i in picks if side == "smallest"]
    assert len(largest) - len(smallest) in (0, 1) if n < 6 else len(largest) == len(smallest) == 3
    assert largest == sorted(largest, reverse=True) and smallest == sorted(smallest)
    assert not largest or not smallest or min(largest) >= max(smallest)


def entry(label: str, **params: object) -> dict:
    return {"name": "dps", "label": label, "params": params}


def test_swept_fields_take_a_numeric_field_with_most_values_for_the_axis() -> None:
    grid = [entry(f"e{z}{m}", zeta=z, normalize=m, steps=100) for z in (0.1, 0.3, 1.0) for m in ("grad", "residual")]
    assert swept_fields(grid) == ("zeta", ["normalize"])
    one = [entry("a", zeta=0.1, steps=100), entry("b", zeta=0.3, steps=100)]
    assert swept_fields(one) == ("zeta", [])
    categorical = [entry("a", mode="x", tau=None), entry("b", mode="y", tau=0.1), entry("c", mode="z", tau=0.1)]
    assert swept_fields(categorical) == ("mode", ["tau"])  # tau is not numeric everywhere (None)
    assert swept_fields([entry("a", zeta=1.0), entry("b", zeta=1.0)]) is None
    assert swept_fields([entry("a"), entry("b", extra=2)]) == ("extra", [])  # a field only some entries name


@pytest.mark.parametrize("resamples", [0, 99, 100_001, 10 ** 9, -5])
def test_resamples_out_of_range_is_one_line_naming_the_range(resamples: int, tmp_path) -> None:
    with pytest.raises(UsageError, match="valid: 100 to 100,000"):
        check_resamples(resamples)
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--resamples", str(resamples)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: --resamples {resamples}: out of range; valid: 100 to 100,000"]
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("n", [2, 3, 7, 40, 500])
@pytest.mark.parametrize("kind", ["normal", "lognormal", "sparse"])
def test_the_chunked_interval_is_scipys_bca(n: int, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same draws and formulas as scipy.stats.bootstrap's BCa, whether or not the resamples come in
    chunks (a small CHUNK forces several)."""
    rng = np.random.default_rng(n)
    d = {"normal": rng.normal(size=n), "lognormal": rng.lognormal(size=n),
         "sparse": (np.arange(n) == 0).astype(float)}[kind]
    ref = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
                          rng=np.random.default_rng(0)).confidence_interval
    assert bootstrap_interval(d, resamples=2000) == pytest.approx((ref.low, ref.high), abs=1e-12)
    from ipbench.results import paired_stats

    monkeypatch.setattr(paired_stats, "CHUNK", n * 300)  # 300 resamples per chunk: scipy's batch=300
    batched = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa", batch=300,
                              rng=np.random.default_rng(0)).confidence_interval
    assert bootstrap_interval(d, resamples=2000) == pytest.approx((batched.low, batched.high), abs=1e-12)


@pytest.mark.parametrize("n", [5_000, 12_000])
def test_the_interval_needs_the_same_memory_for_many_images(n: int) -> None:
    """Peak memory of one interval stays near a few chunks however many images (scipy's unbatched BCa holds
    n x resamples draws and an n x n jackknife: 0.4 GB at 5,000 images, 2.5 GB at 12,000)."""
    import tracemalloc

    from ipbench.results import paired_stats

    d = np.random.default_rng(0).normal(size=n)
    tracemalloc.start()
    try:
        low, high = bootstrap_interval(d, resamples=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert low < d.mean() < high
    assert peak < 3 * paired_stats.CHUNK * 8 + 8 * n * 8, f"{peak / 2 ** 20:.0f} MB"


def test_a_sweep_line_is_named_by_what_it_changes_from_the_usual_setting() -> None:
    common = {"steps": "100", "clip": "False", "schedule": "'geometric'"}
    assert plots._line_label({"steps": 300, "clip": False, "schedule": "geometric"}, common) == "steps=300"
    assert plots._line_label({"steps": 300, "clip": True, "schedule": "strided"}, common) == \
        "steps=300, clip=True, schedule=strided"
    assert plots._line_label({"steps": 100, "clip": False, "schedule": "geometric"}, common) == \
        "steps=100, clip=False, schedule=geometric"  # the usual setting itself: all of it, once


def test_a_sweep_figure_draws_lines_missing_on_some_operators() -> None:
    points = pd.DataFrame({"operator": ["a", "a", "b", "b", "b"], "zeta": [0.1, 0.3, 0.1, 0.3, 0.3],
                           "mode": ["x", "x", "x", "x", "y"], "psnr": 20.0, "psnr_se": 0.5})
    assert plots.sweep_png(points, "zeta", ["mode"], ["psnr"]).startswith(b"\x89PNG")


def test_the_table_says_its_s_per_image_is_the_mean_over_operators(tmp_path) -> None:
    """A solver at 1 s / image on one operator and 3 s on the other: the terminal table shows 2 under a
    header that says it is the mean over operators, in Markdown and LaTeX; the report's per-operator
    tables show 1 and 3 under a header that says this operator."""
    from ipbench.results.table import SECONDS_HEADER, summarize, to_latex, to_markdown
    from ipbench.results.html_report import _table

    rows = pd.DataFrame([{"solver": s, "operator": op, "image": f"i{k}", "seed": 0, "status": "ok", "psnr": 20.0 + k,
                          "seconds": seconds, "nfe": 10, "error": ""}
                         for s in ("a", "b") for op, seconds in (("box", 1.0), ("blur", 3.0)) for k in range(3)])
    summary = summarize(rows)
    markdown = to_markdown(summary, "")
    header = markdown.splitlines()[0].split(" | ")
    column = header.index(SECONDS_HEADER)
    assert SECONDS_HEADER == "s / image (mean over operators)"
    assert markdown.splitlines()[2].split(" | ")[column] == "2"
    assert SECONDS_HEADER in to_latex(summary, "")
    per_operator = [_table(summary[summary["operator"] == op], ["psnr"], rows[rows["operator"] == op], 100)
                    ["lines"][0]["seconds"] for op in ("box", "blur")]
    assert per_operator == ["1", "3"]
    html = render({"title": "t", "generated": "now", "ipbench_version": "0", "runs": [], "warnings": [],
                   "baseline": None, "resamples": 100, "metrics": ["PSNR"], "grids": [], "sweeps": [],
                   "sections": [{"operator": "box", "table": _table(summary[summary["operator"] == "box"], ["psnr"],
                                                                   rows[rows["operator"] == "box"], 100),
                                 "distribution": "", "cost": "", "fronts": [], "comparisons": [], "extremes": []}]})
    assert "<th>s / image<br><small>this operator</small></th>" in html
