"""`bench run --samples K` (results/samples.py, results/samples_table.py): K posterior draws per measurement, the
measurement held fixed, per-draw rows and per-measurement statistics; deterministic solvers run once."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.results.paired_stats import paired_comparisons
from ipbench.results.rows import load_rows, run_rows
from ipbench.results.samples import sample_statistics, std_error_correlation
from ipbench.run_paths import reconstruction_png, std_png

FAST = ["dps.steps=4"]


def _run(tmp_path, name, samples, model_path, solvers=("dps", "tweedie"), num_images=3, seeds=(0,)):
    spec = build_spec(list(solvers), ["inpaint"], FAST, model=str(model_path), images="photos",
                      num_images=num_images, samples=samples, seeds=list(seeds))
    return run(spec, out=tmp_path / name, batch_size=2, progress=False).out


def test_k_draws_per_measurement_share_y_and_a_deterministic_solver_runs_once(tmp_path, small_model_path):
    out = _run(tmp_path, "k", 3, small_model_path)
    rows = run_rows(out)
    dps = [r for r in rows if r["solver"] == "dps"]
    assert sorted((r["image"], r["sample"]) for r in dps) == [(i, k) for i in sorted({r["image"] for r in dps})
                                                              for k in range(3)]
    assert all(r["samples"] == 3 and r["samples_ok"] == 3 for r in dps)
    tweedie = [r for r in rows if r["solver"] == "tweedie"]
    assert len(tweedie) == 3 and all(r["sample"] == 0 and r["samples"] == 1 for r in tweedie)
    first = dps[0]["image"]
    draws = [reconstruction_png(out, "inpaint-box", "dps", first, 0, k).read_bytes() for k in range(3)]
    assert len(set(draws)) == 3  # three different draws
    assert std_png(out, "inpaint-box", "dps", first, 0).is_file()
    per_image = {r["image"]: r for r in dps if r["sample"] == 0}
    for r in dps:  # the statistics are the measurement's: the same on each of its draws' rows
        assert r["mean.psnr"] == per_image[r["image"]]["mean.psnr"]
        assert r["oracle.psnr"] == max(s["psnr"] for s in dps if s["image"] == r["image"])
        assert r["oracle.lpips"] == min(s["lpips"] for s in dps if s["image"] == r["image"])
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["samples"] == 3 and [s["samples"] for s in config["solvers"]] == [3, 1]


def test_draw_zero_is_the_run_without_samples_and_a_rerun_resumes(tmp_path, small_model_path):
    """Sample 0 keeps the stream of a run without --samples (its rows are the same numbers), and the
    measurement is the same for every draw (draws differ only by the solver's generators)."""
    plain = {r["image"]: r["psnr"] for r in run_rows(_run(tmp_path, "plain", 1, small_model_path, ("dps",)))}
    out = _run(tmp_path, "k", 2, small_model_path, ("dps",))
    zero = {r["image"]: r["psnr"] for r in run_rows(out) if r["sample"] == 0}
    assert zero == plain
    again = run(build_spec(["dps"], ["inpaint"], FAST, model=str(small_model_path), images="photos",
                           num_images=3, samples=2), out=out, batch_size=3, progress=False)
    assert again.rows_written == 0  # nothing redone, whatever the batch size


def test_paired_comparisons_use_the_draws_never_the_oracle(tmp_path, small_model_path):
    """The paired difference of a K-draw run is the per-image mean of the per-draw metric: equal to pairing the
    per-image means by hand, and not the oracle's."""
    out = _run(tmp_path, "p", 3, small_model_path, ("dps", "tweedie"), num_images=6)
    rows = load_rows(out)
    line = paired_comparisons(rows, "tweedie", ["psnr"], resamples=200).iloc[0]
    ok = rows[rows["status"] == "ok"]
    means = ok.groupby(["solver", "image"])["psnr"].mean()
    by_hand = (means["dps"] - means["tweedie"]).mean()
    oracle = (ok[ok["solver"] == "dps"].groupby("image")["oracle.psnr"].mean() - means["tweedie"]).mean()
    assert math.isclose(line["mean"], by_hand, rel_tol=1e-12) and not math.isclose(line["mean"], oracle)


def test_the_table_shows_draws_and_the_oracle_labelled(tmp_path, small_model_path):
    from ipbench.results.table import write_tables

    out = _run(tmp_path, "t", 2, small_model_path)
    markdown = write_tables(out)
    assert "best-of-K PSNR (oracle)" in markdown and "PSNR of the sample mean" in markdown
    assert "never compared" in markdown and (out / "samples.csv").is_file()
    assert "Posterior draws" not in write_tables(_run(tmp_path, "one", 1, small_model_path))


def test_sample_statistics_on_known_draws():
    x = torch.zeros(1, 4, 4)
    draws = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.3)])
    per_draw = {"psnr": torch.tensor([20.0, 10.5]), "lpips": torch.tensor([0.2, 0.1])}
    stats, std = sample_statistics(draws, x, per_draw, ["psnr"])
    assert stats["oracle.psnr"] == 20.0 and stats["oracle.lpips"] == pytest.approx(0.1)
    assert math.isclose(stats["mean.psnr"], -10 * math.log10(0.2 ** 2), rel_tol=1e-6)  # the mean image is 0.2
    torch.testing.assert_close(std, torch.full((1, 4, 4), 0.1 * math.sqrt(2)))  # std with K - 1 = 1
    assert math.isnan(stats["std_error_corr"])  # a constant std map predicts nothing
    assert "diversity" not in stats  # needs LPIPS among the metrics


def test_std_error_correlation_is_pearsons():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert std_error_correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert std_error_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(std_error_correlation(a, torch.ones(4)))


@pytest.mark.parametrize("bad", ["0", "65", "two"])
def test_a_bad_sample_count_is_one_line(tmp_path, bad):
    result = CliRunner().invoke(cli, ["run", "--solver", "dps", "--op", "inpaint", "--samples", bad, "--out",
                                      str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2 and "--samples" in result.output and "Traceback" not in result.output


def test_a_suite_sets_samples_and_refuses_a_bad_count(tmp_path):
    from ipbench.benchmark.spec import load_suite

    suite = tmp_path / "s.toml"
    suite.write_text('samples = 4\n[[solver]]\nname = "dps"\n[[operator]]\nname = "inpaint"\n')
    assert load_suite(suite).samples == 4
    suite.write_text('samples = 0\n[[solver]]\nname = "dps"\n[[operator]]\nname = "inpaint"\n')
    with pytest.raises(UsageError, match="samples = 0"):
        load_suite(suite)


def test_the_solvers_declared_deterministic_are_exactly_those_that_ignore_their_generators(small_model):
    """`deterministic()` decides whether --samples runs a solver once: it must be true exactly for the solvers
    whose output does not change with the generators (checked here on denoising for every built-in solver)."""
    from ipbench.data import load_images
    from ipbench.operators import Operator, measure
    from tests.conftest import SMALL_SHAPE, generators, prior_for
    from tests.test_solvers import CONTRACT_SOLVERS, make_fast

    x = load_images("photos", SMALL_SHAPE, num_images=2).images
    physics = Operator.create("denoise", {}).build(SMALL_SHAPE, generators(2), torch.device("cpu"))
    y = measure(physics, x, generators(2))
    from ipbench.models.linear_autoencoder import gaussian_latent_prior

    latent = gaussian_latent_prior(x, (3, 16, 16))
    for name in CONTRACT_SOLVERS:
        solver = make_fast(name)
        prior = prior_for(name, small_model, latent)
        a = solver.solve(y, physics, prior, generators(2, 1))
        b = solver.solve(y, physics, prior, generators(2, 50))
        assert solver.deterministic() == torch.equal(a, b), name


@pytest.fixture(scope="module")
def gaussian_draws():
    """8 exact posterior draws (Matheron's rule) per measurement, 16 box-inpainting measurements on the Gaussian
    prior: what a perfectly calibrated sampler gives."""
    from ipbench.checks import gaussian_truth as gm

    model = gm.fit_model()
    problem = gm.make_problem(model, "inpaint-box", "inpaint-box", {}, 16, seed=0)
    return problem, torch.stack([gm.posterior_sample(model, problem, draw=k) for k in range(8)])


def _coverage_by_image(draws, x):
    from ipbench.results.samples import coverage

    return {p: torch.tensor([coverage(draws[:, i], x[i])[p] for i in range(x.shape[0])], dtype=torch.float64)
            for p in (0.5, 0.9, 0.95)}


def test_exact_posterior_draws_are_calibrated_at_every_level(gaussian_draws):
    """The truth is one more draw of the posterior, so the t prediction interval of 8 draws covers it with
    probability p in every pixel: the mean coverage over 16 images is p within 3 standard errors (images are
    independent; pixels of one image are not, hence the error over images)."""
    problem, draws = gaussian_draws
    for p, per_image in _coverage_by_image(draws, problem.x.double()).items():
        se = float(per_image.std() / math.sqrt(len(per_image)))
        assert abs(float(per_image.mean()) - p) <= 3 * se + 1e-3, (p, float(per_image.mean()), se)


def test_a_sampler_with_too_little_spread_covers_too_little(gaussian_draws):
    """The same draws shrunk halfway to their mean: the coverage check must see the missing spread."""
    problem, draws = gaussian_draws
    shrunk = draws.mean(0) + 0.5 * (draws - draws.mean(0))
    for p, per_image in _coverage_by_image(shrunk, problem.x.double()).items():
        se = float(per_image.std() / math.sqrt(len(per_image)))
        assert float(per_image.mean()) < p - 3 * se, (p, float(per_image.mean()), se)


def test_the_grid_shows_each_sampling_solvers_std_beside_its_draw(tmp_path, small_model_path):
    """A --samples run's grid has one more column per stochastic solver (its std map), none for tweedie."""
    from PIL import Image

    from ipbench.results.grid import MIN_CELL, PAD, write_grids

    widths = {}
    for name, samples in (("one", 1), ("k", 2)):
        out = _run(tmp_path, name, samples, small_model_path)
        (grid,) = write_grids(out)
        widths[name] = Image.open(grid).width
    assert widths["k"] - widths["one"] == MIN_CELL + PAD  # one cell (32 px images shown at 96 px) and its gap
