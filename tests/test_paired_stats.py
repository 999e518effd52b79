"""ipbench.results.paired_stats (bootstrap intervals and Wilcoxon p-values of a run's solvers, paired per
image) and `bench table RUN --baseline SOLVER`, which shows them; on rows built by hand, no model runs."""
from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.results.paired_stats import (COLUMNS, EXACT_LIMIT, bootstrap_interval, min_nonzero, paired_comparisons,
                                          too_few_text, wilcoxon_p)
from ipbench.results.rounding import decimals_for
from ipbench.results.rows import load_rows
from ipbench.results.table import DIFFERENCE_COLUMNS, summarize, to_markdown, with_differences


def row(solver: str, image: str, seed: int, operator: str = "inpaint-box", status: str = "ok",
        **metrics: float) -> dict:
    return dict(solver=solver, operator=operator, image=image, seed=seed, status=status, seconds=0.1, nfe=10,
                error="needs a mask" if status == "skipped" else "", **metrics)


def by_hand(rows: pd.DataFrame, solver: str, baseline: str, operator: str, metric: str) -> np.ndarray:
    """The per-image differences solver - baseline written out with loops (ok rows, seeds averaged), images
    in sorted order: what paired_comparisons must agree with."""
    values: dict[tuple[str, str, int], float] = {}
    for r in rows.itertuples():
        if r.status == "ok" and r.operator == operator and r.solver in (solver, baseline):
            values[(r.solver, r.image, r.seed)] = getattr(r, metric)
    per_image: dict[str, list[float]] = {}
    for (who, image, seed), value in values.items():
        if who == solver and (baseline, image, seed) in values:
            per_image.setdefault(image, []).append(value - values[(baseline, image, seed)])
    return np.array([sum(d) / len(d) for _, d in sorted(per_image.items())])


# -- the two statistics on their own -------------------------------------------------------------------


def every_sign_flip_p(d: np.ndarray) -> float:
    """The two-sided signed-rank p by brute force: zeros dropped, mean ranks of |d|, W+ over all 2^m sign
    assignments counted one by one."""
    d = d[d != 0]
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array([ranks[np.array(signs, dtype=bool)].sum() for signs in itertools.product((0, 1), repeat=len(d))])
    return min(1.0, 2 * min(np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)))


def test_wilcoxon_p_is_the_exact_p_of_every_sign_flip_with_zeros_and_ties():
    rng = np.random.default_rng(2)
    for _ in range(200):  # small integers: many zeros and ties
        d = rng.integers(-3, 4, rng.integers(2, 13)).astype(float)
        assert wilcoxon_p(d) == pytest.approx(every_sign_flip_p(d), abs=1e-12), d
    assert wilcoxon_p(np.arange(1.0, 11.0)) == pytest.approx(2 / 1024, rel=1e-12)  # only W+ = 55 and 0 as extreme
    ties = np.array([1.0, 1.0, 2.0, 2.0, 3.0, -3.0, 4.0, 5.0])
    assert wilcoxon_p(ties) == pytest.approx(every_sign_flip_p(ties)) == pytest.approx(0.09375)
    # scipy's "exact" method rounds a tied statistic onto the untied distribution: not this p
    assert stats.wilcoxon(ties, method="exact").pvalue == pytest.approx(0.109375)


def test_wilcoxon_p_is_scipys_exact_p_without_ties_and_its_approximation_past_the_exact_limit():
    rng = np.random.default_rng(3)
    for n in (7, 30, 80, EXACT_LIMIT):
        d = rng.normal(0.2, 1.0, n)
        # rel 1e-6: scipy takes an upper tail as 1 - cdf, which keeps about 1e-16 / p of a small p's digits
        assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-6)
    d = rng.normal(0.1, 1.0, EXACT_LIMIT + 1)
    assert wilcoxon_p(d) == stats.wilcoxon(d, method="asymptotic").pvalue
    with_zeros = np.r_[np.zeros(20), d]  # zeros are dropped, not ranked
    assert wilcoxon_p(with_zeros) == wilcoxon_p(d)


def test_average_ranks_are_scipys_rankdata_with_ties():
    from ipbench.results.paired_stats import average_ranks

    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 48, 301):
        for values in (rng.normal(size=n), rng.integers(0, 4, n).astype(float), np.full(n, 0.5)):
            assert np.array_equal(average_ranks(values), stats.rankdata(values))


def test_wilcoxon_p_does_not_depend_on_the_order_of_the_differences():
    """The null distribution is computed once per set of ranks (sorted) where its values are exact: every
    order of the same differences must give the same p, to the bit, below and above that size."""
    rng = np.random.default_rng(6)
    for n in (12, 53, 54, 120):
        d = np.r_[rng.normal(0.3, 1.0, n - 4), [0.5, -0.5, 0.5, 0.0]]  # ties and a zero
        first = wilcoxon_p(d)
        assert all(wilcoxon_p(rng.permutation(d)) == first for _ in range(5)), n
        if n == 12:
            assert first == pytest.approx(every_sign_flip_p(d), abs=1e-12)


def test_the_two_measured_cases_of_the_module_docstrings():
    """39 zeros and a one (two solvers equal on all images but one): scipy.stats.wilcoxon's default counts
    the zeros towards its n > 13 cutoff and takes the normal approximation, p = 0.317; the exact p on the
    one nonzero difference is 1.0. BCa's upper bound at the default 10,000 resamples and seed 0 is 0.125
    (5 / 40), scipy.stats.bootstrap's too; the percentile interval stops at 0.075."""
    d = np.r_[np.zeros(39), 1.0]
    assert stats.wilcoxon(d).pvalue == pytest.approx(0.3173, abs=1e-4)
    assert wilcoxon_p(d) == 1.0
    assert bootstrap_interval(d) == (0.0, 0.125)
    scipy_bca = stats.bootstrap((d,), np.mean, method="BCa", n_resamples=10_000, random_state=np.random.default_rng(0))
    assert (scipy_bca.confidence_interval.low, scipy_bca.confidence_interval.high) == (0.0, 0.125)
    percentile = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=10_000,
                                 random_state=np.random.default_rng(0))
    assert percentile.confidence_interval.high == pytest.approx(0.075)


def test_the_exact_test_reaches_p_below_005_from_six_nonzero_differences():
    assert min_nonzero(0.05) == 6 and min_nonzero(0.01) == 8  # 2 / 2^m: 0.031 at 6, 0.0078 at 8
    assert wilcoxon_p(np.arange(1.0, 6.0)) == pytest.approx(0.0625)  # n = 5, every sign alike: the smallest p
    assert wilcoxon_p(np.arange(1.0, 7.0)) == pytest.approx(0.03125)
    assert wilcoxon_p(np.r_[np.zeros(10), np.arange(1.0, 6.0)]) == pytest.approx(0.0625)  # 15 images, 5 differ
    assert too_few_text(4, 4) == "too few images (n = 4; the signed-rank test needs n >= 6 to reach p < 0.05)"
    assert too_few_text(15, 5).startswith("too few images that differ (5 of n = 15;")
    assert too_few_text(6, 6) == ""


def test_wilcoxon_p_degenerate_cases_are_defined_and_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(wilcoxon_p(np.array([1.0])))
        assert math.isnan(wilcoxon_p(np.array([1.0, math.nan, 2.0])))
        assert wilcoxon_p(np.zeros(5)) == 1.0
        zeros_and_ties = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0])
        assert wilcoxon_p(zeros_and_ties) == pytest.approx(every_sign_flip_p(zeros_and_ties))


def test_bootstrap_interval_degenerate_cases_and_determinism():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on equal data; the function must not get that far
        assert all(math.isnan(x) for x in bootstrap_interval(np.array([1.5])))
        assert bootstrap_interval(np.full(12, 0.25)) == (0.25, 0.25)
    d = np.random.default_rng(0).normal(1.0, 1.0, 30)
    first = bootstrap_interval(d, resamples=2000, seed=4)
    assert first == bootstrap_interval(d, resamples=2000, seed=4)
    assert first != bootstrap_interval(d, resamples=2000, seed=5)
    assert first[0] < d.mean() < first[1]


def test_bootstrap_interval_covers_the_true_mean_at_its_nominal_rate():
    """300 simulated runs of 40 images x 2 seeds: per-image effects from a skewed distribution (exponential,
    skewness 2, mean 0.5) and seed noise. Nominal coverage 0.95; at n = 40 on this distribution the BCa
    interval for a mean is known to fall a little short (it uses the plug-in sd and normal-quantile
    corrections: 1.96 sqrt(39/40) against t_39 alone gives 0.940, the skewness a little more; 2000 runs of
    this simulation measured 0.934). Expected rate 0.935, tolerance 3 binomial SD over 300 runs
    (sqrt(0.935 x 0.065 / 300) = 0.014): [0.892, 0.978]. Seeds treated as images (n = 80) would give
    about 0.85, a 90% interval about 0.89, a 99% one about 0.985."""
    rng = np.random.default_rng(0)
    runs, images, true_mean = 300, 40, 0.5
    effect = rng.exponential(1.0, (runs, images)) - 0.5
    base = rng.normal(20.0, 3.0, (runs, images, 2))
    new = base + effect[:, :, None] + rng.normal(0.0, 0.5, (runs, images, 2))
    index = pd.MultiIndex.from_product([range(runs), range(images), range(2)], names=["run", "image", "seed"])
    frame = index.to_frame(index=False)
    frame["operator"] = "op" + frame["run"].astype(str)  # one simulated run per operator
    frame["image"], frame["status"] = "i" + frame["image"].astype(str), "ok"
    rows = pd.concat([frame.assign(solver="base", psnr=base.ravel()), frame.assign(solver="new", psnr=new.ravel())])
    found = paired_comparisons(rows, "base", ["psnr"], resamples=2000)
    assert len(found) == runs and (found["n"] == images).all()
    covered = ((found["low"] <= true_mean) & (true_mean <= found["high"])).mean()
    assert 0.892 <= covered <= 0.978, covered


def test_bootstrap_interval_width_shrinks_as_one_over_sqrt_n():
    """The same sample repeated 4 and 16 times has the same spread, 4 and 16 times the n: the interval's
    width must halve and quarter (within the resampling noise of 10,000 resamples and BCa's corrections),
    and stay near the normal theory's 2 x 1.96 sd / sqrt(n)."""
    d = np.random.default_rng(1).exponential(1.0, 25) - 0.5
    widths = []
    for k in (1, 4, 16):
        low, high = bootstrap_interval(np.tile(d, k))
        widths.append(high - low)
        assert high - low == pytest.approx(2 * 1.96 * d.std() / math.sqrt(25 * k), rel=0.15)
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.1)
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.1)


# -- paired_comparisons ----------------------------------------------------------------------------------


def three_solvers(seed: int = 0) -> pd.DataFrame:
    """dps, `better` (PSNR +1.5, LPIPS -0.02 on every measurement, with noise) and `level` (per-image
    differences spread symmetrically about 0, the seeds' offsets cancelling) on 10 images x 2 seeds of two
    operators; a failed row of `better` with a wild value, a
    failed dps row (its partners must not pair), and `masks` skipped on deblur."""
    rng = np.random.default_rng(seed)
    records = []
    for operator in ("inpaint-box", "deblur"):
        for i in range(10):
            for s in range(2):
                psnr, lpips = 20.0 + rng.normal(0, 3), 0.1 + rng.uniform(0, 0.05)
                records.append(row("dps", f"img{i}", s, operator, psnr=psnr, ssim=0.7, lpips=lpips))
                records.append(row("better", f"img{i}", s, operator, psnr=psnr + 1.5 + rng.normal(0, 0.3),
                                   ssim=0.8, lpips=lpips - 0.02 + rng.normal(0, 0.003)))
                spread, wobble = i - 4.5, s - 0.5
                records.append(row("level", f"img{i}", s, operator, psnr=psnr + 0.1 * spread + 0.1 * wobble, ssim=0.7,
                                   lpips=lpips + 0.001 * spread - 0.001 * wobble))
                if operator == "deblur":
                    records.append(row("masks", f"img{i}", s, operator, status="skipped", psnr=math.nan, ssim=math.nan,
                                       lpips=math.nan))
    rows = pd.DataFrame.from_records(records)
    wild = (rows.solver == "better") & (rows.image == "img3") & (rows.seed == 1) & (rows.operator == "inpaint-box")
    rows.loc[wild, ["status", "psnr"]] = ["failed", 99.0]
    gone = (rows.solver == "dps") & (rows.image == "img7") & (rows.operator == "inpaint-box")
    rows.loc[gone, "status"] = "failed"  # both seeds: img7 drops out of inpaint-box entirely
    masks_inpaint = [row("masks", f"img{i}", s, "inpaint-box", psnr=18.0 + i, ssim=0.6, lpips=0.2) for i in range(10)
                     for s in range(2)]
    return pd.concat([rows, pd.DataFrame.from_records(masks_inpaint)], ignore_index=True)


def test_each_line_is_the_mean_interval_and_wilcoxon_of_per_image_differences_computed_by_hand():
    rows = three_solvers()
    found = paired_comparisons(rows, "dps", resamples=2000)
    assert list(found.columns) == COLUMNS
    for line in found.itertuples():
        d = by_hand(rows, line.solver, "dps", line.operator, line.metric)
        assert line.n == len(d)
        assert line.mean == pytest.approx(d.mean(), abs=1e-12)
        assert line.p_wilcoxon == pytest.approx(stats.wilcoxon(d).pvalue if np.any(d) else 1.0, rel=1e-12)
        assert (line.low, line.high) == pytest.approx(bootstrap_interval(d, resamples=2000), abs=1e-12)
    inpaint = found[(found.operator == "inpaint-box") & (found.solver == "better")]
    assert set(inpaint["n"]) == {9}  # img7 has no ok dps row; img3 keeps its ok seed: images, not rows, are counted
    deblur = found[found.operator == "deblur"]
    assert set(deblur["n"]) == {10} and "masks" not in set(deblur["solver"])  # skipped rows do not pair


def test_ten_images_all_better_give_the_exact_p_value():
    records = []
    for i in range(10):
        for s in range(3):  # seeds average to a gain of (i + 1) / 10 on image i
            records.append(row("dps", f"i{i}", s, psnr=20.0 + s))
            records.append(row("new", f"i{i}", s, psnr=20.0 + s + (i + 1) / 10 + (s - 1) * 0.05))
    (line,) = paired_comparisons(pd.DataFrame.from_records(records), "dps", ["psnr"]).itertuples()
    assert line.n == 10 and line.p_wilcoxon == pytest.approx(2 / 1024, rel=1e-12)
    assert line.mean == pytest.approx(0.55)


def test_rows_pair_on_operator_image_and_seed_not_on_position():
    rows = three_solvers()
    shuffled = rows.sample(frac=1.0, random_state=7).reset_index(drop=True)
    # the same solvers and operators first seen in the same order, so the same lines in the same order
    shuffled = pd.concat([rows.drop_duplicates(["solver", "operator"]), shuffled], ignore_index=True) \
        .drop_duplicates(["solver", "operator", "image", "seed"], keep="first")
    pd.testing.assert_frame_equal(paired_comparisons(rows, "dps", resamples=2000),
                                  paired_comparisons(shuffled, "dps", resamples=2000))


def test_pairing_every_metric_at_once_gives_each_lines_own_per_image_means():
    """image_differences_by_metric groups all lines at once and cuts the result: each line must be what
    grouping that line's rows alone gives, in first-pairing order, with a missing value left out."""
    from ipbench.results.paired import image_differences_by_metric

    rows = three_solvers().sample(frac=1.0, random_state=3).reset_index(drop=True)
    rows.loc[(rows.solver == "level") & (rows.image == "img2") & (rows.operator == "deblur"), "ssim"] = math.nan
    found = image_differences_by_metric(rows, "dps", ["psnr", "ssim"])
    ok = rows[rows.status == "ok"]
    base = ok[ok.solver == "dps"].set_index(["operator", "image", "seed"])
    for metric in ("psnr", "ssim"):
        expected = {}
        for _, r in ok[ok.solver != "dps"].iterrows():
            key = (r.solver, r.operator)
            if (r.operator, r.image, r.seed) in base.index and not math.isnan(r[metric]):
                expected.setdefault(key, {}).setdefault(r.image, []).append(
                    r[metric] - base.loc[(r.operator, r.image, r.seed), metric])
        assert list(found[metric]) == list(expected)
        for key, images in expected.items():
            line = found[metric][key]
            assert list(line.index) == sorted(images)
            assert line.to_numpy() == pytest.approx([np.mean(images[i]) for i in sorted(images)], abs=1e-12)
    assert "img2" not in found["ssim"][("level", "deblur")].index
    assert "img2" in found["psnr"][("level", "deblur")].index


def test_significance_and_the_better_side_follow_each_metrics_direction():
    found = paired_comparisons(three_solvers(), "dps", resamples=2000).set_index(["solver", "operator", "metric"])
    better_psnr, better_lpips = found.loc[("better", "deblur", "psnr")], found.loc[("better", "deblur", "lpips")]
    assert better_psnr.significant and better_psnr.low > 0 and better_psnr.better == "solver"  # higher is better
    assert better_lpips.significant and better_lpips.high < 0 and better_lpips.better == "solver"  # lower is better
    level = found.loc[("level", "deblur", "psnr")]
    assert not level.significant and level.low < 0 < level.high and level.better == ""
    reverse = paired_comparisons(three_solvers(), "better", ["lpips"], resamples=2000).set_index(["solver", "operator"])
    assert reverse.loc[("dps", "deblur"), "better"] == "baseline"  # dps has the higher LPIPS: its baseline wins
    ssim = found.loc[("better", "deblur", "ssim")]  # +0.1 on every image: all equal, a zero-width interval
    assert (ssim.low, ssim.high) == pytest.approx((0.1, 0.1)) and ssim.significant and ssim.better == "solver"


def test_without_a_baseline_every_unordered_pair_once_later_solver_first():
    rows = three_solvers()
    found = paired_comparisons(rows, metrics=["psnr", "lpips"], resamples=500)
    solvers = list(dict.fromkeys(rows["solver"]))  # dps, better, level, masks
    pairs = list(dict.fromkeys(zip(found["solver"], found["baseline"])))
    assert pairs == [(later, earlier) for later in solvers for earlier in solvers[:solvers.index(later)]]
    assert len(pairs) == 4 * 3 // 2
    per_cell = found.groupby(["operator", "metric"]).size()
    assert per_cell[("inpaint-box", "psnr")] == 6  # k (k - 1) / 2 with all 4 solvers ok there
    assert per_cell[("deblur", "psnr")] == 3  # masks is skipped on deblur: the 3 pairs of the other 3
    assert list(found[(found.solver == "better") & (found.baseline == "dps")]["operator"]) == \
        ["inpaint-box", "inpaint-box", "deblur", "deblur"]
    again = paired_comparisons(rows, "dps", ["psnr", "lpips"], resamples=500)
    pd.testing.assert_frame_equal(found[found.baseline == "dps"].reset_index(drop=True), again)


def test_an_unknown_baseline_or_metric_is_a_one_line_usage_error_naming_it():
    with pytest.raises(UsageError, match="baseline dsp") as caught:
        paired_comparisons(three_solvers(), "dsp")
    assert "dps, better, level, masks" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="metric fid"):
        paired_comparisons(three_solvers(), "dps", ["fid"])


def test_an_operator_where_the_baseline_has_no_ok_rows_gives_no_lines():
    rows = three_solvers()
    rows.loc[(rows.solver == "dps") & (rows.operator == "deblur"), "status"] = "failed"
    found = paired_comparisons(rows, "dps", ["psnr"], resamples=500)
    assert set(found["operator"]) == {"inpaint-box"}


# -- bench table RUN --baseline ----------------------------------------------------------------------------


def write_run(folder: Path, rows: pd.DataFrame) -> Path:
    """A run folder as `bench run` leaves it, written by hand: run.json with what tables read, rows.jsonl."""
    folder.mkdir()
    solvers, operators = list(dict.fromkeys(rows["solver"])), list(dict.fromkeys(rows["operator"]))
    meta = {"config": {"model": "toy", "seeds": sorted(set(rows["seed"])),
                       "solvers": [{"name": s, "label": s, "params": {}} for s in solvers],
                       "operators": [{"name": o, "label": o} for o in operators]},
            "model": {"image_shape": [1, 8, 8]},
            "images": {"source": "toy", "ids": sorted(set(rows["image"]))}}
    (folder / "run.json").write_text(json.dumps(meta))
    rows.to_json(folder / "rows.jsonl", orient="records", lines=True)
    return folder


def table(*args: object):
    return CliRunner().invoke(cli, ["table", *(str(a) for a in args)])


def test_bench_table_with_a_baseline_shows_marked_differences_in_every_format(tmp_path):
    run = write_run(tmp_path / "run", three_solvers())
    rows = load_rows(run)  # as the table reads them (JSON keeps 10 significant digits)
    plain = table(run)
    assert plain.exit_code == 0, plain.output
    plain_csv = (run / "table.csv").read_text()
    assert "Δ" not in plain.output and "diff" not in plain_csv.splitlines()[0]

    done = table(run, "--baseline", "dps")
    assert done.exit_code == 0, done.output
    cells = [line.split(" | ") for line in done.output.splitlines() if line.startswith("| ")]
    lines = {cell[0].strip("| "): cell for cell in cells}  # solver -> its cells
    summary = pd.read_csv(run / "table.csv")
    assert list(summary.columns[-len(DIFFERENCE_COLUMNS):]) == DIFFERENCE_COLUMNS
    psnr = summary[(summary.operator == "inpaint-box") & (summary.metric == "psnr")].set_index("solver")
    for solver, marked in (("better", True), ("level", False)):
        d = by_hand(rows, solver, "dps", "inpaint-box", "psnr")
        low, high = bootstrap_interval(d)
        assert psnr.loc[solver, "diff"] == pytest.approx(d.mean())
        assert (psnr.loc[solver, "diff_low"], psnr.loc[solver, "diff_high"]) == pytest.approx((low, high))
        assert psnr.loc[solver, "p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)  # n = 9, untied: exact
        assert psnr.loc[solver, "diff_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)))
        assert psnr.loc[solver, "significant"] == marked
        places = decimals_for(d.std(ddof=1) / math.sqrt(len(d)), 2)
        cell = f"Δ {d.mean():+.{places}f} [{low:+.{places}f}, {high:+.{places}f}]" + ("*" if marked else "")
        assert lines[solver][1].endswith(cell), lines[solver][1]  # column 1: inpaint-box PSNR
    assert psnr.loc["dps", DIFFERENCE_COLUMNS].isna().all()  # the baseline has no difference to itself
    assert "Δ" not in " ".join(lines["dps"])
    masks_deblur = summary[(summary.solver == "masks") & (summary.operator == "deblur")]
    assert masks_deblur[DIFFERENCE_COLUMNS].isna().all().all() and "n/a" in lines["masks"]
    assert "solver - dps (the baseline)" in done.output and "seeds of an image averaged" in done.output
    assert "BCa bootstrap interval" in done.output and "10,000 resamples" in done.output
    assert "n = 9..10" in done.output
    assert ("* marks a difference whose interval excludes 0 and whose Wilcoxon signed-rank p (exact up to 300 images "
            "that differ) is below 0.05") in done.output and "too few" not in done.output
    tex = (run / "table.tex").read_text()
    assert r"$\Delta$ +" in tex and "Δ" not in tex
    assert "%" not in tex  # LaTeX would read the rest of the caption line as a comment

    again = table(run)  # without --baseline: the plain table again, nothing left over
    assert again.output == plain.output and (run / "table.csv").read_text() == plain_csv


def test_bench_table_refuses_an_unknown_baseline_with_one_line(tmp_path):
    run = write_run(tmp_path / "run", three_solvers())
    wrong = table(run, "--baseline", "dsp")
    assert wrong.exit_code == 2 and "dsp" in wrong.output and "dps, better, level, masks" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1, wrong.output


def test_set_metric_lines_get_no_difference():
    """FID (one value per cell) has nothing to pair: its line stays without a Δ beside per-image metrics."""
    rows = three_solvers()
    summary = summarize(rows)
    fid = summary[summary.metric == "psnr"].assign(metric="fid", mean=12.5, std=math.nan)
    summary = pd.concat([summary, fid], ignore_index=True)
    marked = with_differences(summary, paired_comparisons(rows, "dps", ["psnr", "ssim", "lpips"], resamples=500))
    assert marked.loc[marked.metric == "fid", DIFFERENCE_COLUMNS].isna().all().all()
    assert marked.loc[(marked.metric == "psnr") & (marked.solver == "better"), "diff"].notna().all()
    better = next(line for line in to_markdown(marked, "").splitlines() if line.startswith("| better |"))
    assert better.count("Δ") == 6 and "| 12.50 |" in better  # 2 operators x 3 metrics; FID bare


# -- the rule: interval and test agree, and the test can reach p < 0.05 at this n -------------------------


def gains(n: int, effects: dict[str, float], seed: int = 0, spread: float = 1.0) -> pd.DataFrame:
    """dps and one solver per entry of `effects` on n images x 1 seed: solver = dps + effect + N(0, spread)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        base = 20.0 + rng.normal(0, 3)
        records.append(row("dps", f"i{i:03d}", 0, psnr=base))
        for name, effect in effects.items():
            records.append(row(name, f"i{i:03d}", 0, psnr=base + effect + rng.normal(0, spread)))
    return pd.DataFrame.from_records(records)


def test_at_four_images_nothing_is_marked_even_where_the_interval_leaves_out_0(tmp_path):
    rows = gains(4, {"far": 5.0}, spread=0.2)  # +5 dB on every image: the interval is far from 0
    (line,) = paired_comparisons(rows, "dps", ["psnr"]).itertuples()
    assert line.low > 4 and line.p_wilcoxon == pytest.approx(0.125)  # the smallest p at n = 4
    assert line.too_few and not line.significant and line.better == ""
    run = write_run(tmp_path / "run", rows)
    done = table(run, "--baseline", "dps")
    assert done.exit_code == 0, done.output
    far = next(line for line in done.output.splitlines() if line.startswith("| far |"))
    assert "Δ +" in far and "*" not in far
    assert "No * anywhere: too few images (n = 4; the signed-rank test needs n >= 6 to reach p < 0.05)" in done.output
    assert pd.read_csv(run / "table.csv")["significant"].dropna().eq(False).all()


def test_at_a_hundred_images_the_marks_are_the_intervals_and_p_values_together():
    """100 images, 40 solvers with no effect and 10 with effects from 0.05 to 1 per-image sd (SE 0.1)."""
    effects = {f"null{k}": 0.0 for k in range(40)}
    effects |= {f"e{k}": effect for k, effect in enumerate([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, -0.3, -1.0])}
    found = paired_comparisons(gains(100, effects, seed=1), "dps", ["psnr"], resamples=2000).set_index("solver")
    assert (found["n"] == 100).all() and not found["too_few"].any()
    excludes = (found["low"] > 0) | (found["high"] < 0)
    assert (found["significant"] == (excludes & (found["p_wilcoxon"] < 0.05))).all()
    marked = found[found["significant"]]
    assert (marked["better"] == np.where(marked["mean"] > 0, "solver", "baseline")).all()
    assert (found.loc[~found["significant"], "better"] == "").all()
    # 5 and 10 standard errors from 0: marked; with no effect, a 5% test marks 2 of 40 on average, and
    # 6 or more (P < 0.05 for Binomial(40, 0.05)) would say the rule marks more than its level allows
    assert found.loc[["e6", "e7", "e9"], "significant"].all() and found.loc["e9", "better"] == "baseline"
    nulls = found.loc[[f"null{k}" for k in range(40)]]
    assert nulls["significant"].sum() <= 5
    assert (excludes == (found["p_wilcoxon"] < 0.05)).mean() >= 0.85  # two tests of one question mostly agree
