"""The runner: rows, batch-size invariance, resume after interruption, failures recorded, metadata."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.benchmark.shard import Shard
from ipbench.results.rows import RowStore, row_key, run_rows
from ipbench.errors import UsageError
from ipbench.models.acceleration import Acceleration
from ipbench.results.metric_registry import METRICS
from ipbench.results.table import write_tables
from tests.conftest import SMALL_SHAPE
from tests.plugins import flaky_solvers  # registers the misbehaving solvers

VOLATILE = {"seconds", "compile_seconds"}


def _spec(model_path, solvers=("tweedie", "hole-fill"), ops=("inpaint-random", "deblur"), **kw):
    return build_spec(list(solvers), list(ops), kw.pop("params", []), model=str(model_path), images="photos",
                      num_images=kw.pop("num_images", 5), **kw)


def _rows(out):
    rows = run_rows(out)
    return sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in rows), key=row_key)


def assert_same_rows(a: list[dict], b: list[dict], tol: float = 1e-6) -> None:
    """The same rows: every key and value equal, except the metrics, equal to `tol` (LPIPS runs images in
    batches, whose kernels may round differently from a single image's)."""
    assert [row_key(r) for r in a] == [row_key(r) for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys(), row_key(ra)
        for key in ra:
            if key in METRICS and isinstance(ra[key], float):
                assert ra[key] == pytest.approx(rb[key], abs=tol, nan_ok=True), (row_key(ra), key)
            else:
                assert ra[key] == rb[key], (row_key(ra), key)


def test_rows_have_the_documented_keys(tmp_path, small_model_path):
    result = run(_spec(small_model_path, params=["blur.sigma=2"]), out=tmp_path / "r", progress=False)
    rows = RowStore(result.out / "rows.jsonl").read()
    assert len(rows) == 2 * 2 * 5 and result.failed == 0
    for key in ("solver", "operator", "image", "seed", "psnr", "ssim", "lpips", "seconds", "nfe", "status",
                "solver.sigma", "operator.sigma_y", "operator.p", "fit", "fit_truth"):
        assert any(key in r for r in rows), key
    assert all(r["fit"] > 0 and 0.8 < r["fit_truth"] < 1.2 for r in rows)  # sigma_y 0.025: chi^2 / m of the truth ~ 1
    assert {r["nfe"] for r in rows if r["solver"] == "tweedie"} == {1}
    assert {r["nfe"] for r in rows if r["solver"] == "hole-fill"} == {0}
    assert {r["solver.sigma"] for r in rows if r["solver"] == "hole-fill"} == {2.0}
    meta = json.loads((result.out / "run.json").read_text())
    assert meta["conventions"]["metrics"]["lpips"]["net"] == "alex"
    assert meta["images"]["ids"][:2] == ["00-astronaut", "01-camera"]
    assert meta["model"]["image_shape"] == list(SMALL_SHAPE)
    for kind in ("truth", "inpaint-random/measurement", "inpaint-random/tweedie", "deblur-gauss/hole-fill"):
        assert any((result.out / "images" / kind).iterdir()), kind


def test_results_do_not_depend_on_batch_size(tmp_path, small_model_path):
    spec = lambda: _spec(small_model_path, solvers=("tweedie", "interruptible"))  # noqa: E731
    one = run(spec(), out=tmp_path / "b1", batch_size=1, progress=False)
    four = run(spec(), out=tmp_path / "b4", batch_size=4, progress=False)
    assert_same_rows(_rows(one.out), _rows(four.out))


def test_interrupted_run_resumes_to_the_same_rows(tmp_path, small_model_path):
    spec = lambda: _spec(small_model_path, solvers=("tweedie", "interruptible"))  # noqa: E731
    full = run(spec(), out=tmp_path / "full", batch_size=2, progress=False)

    flaky_solvers.INTERRUPT_AFTER["calls"] = 2
    try:
        with pytest.raises(KeyboardInterrupt):
            run(spec(), out=tmp_path / "cut", batch_size=2, progress=False)
    finally:
        flaky_solvers.INTERRUPT_AFTER["calls"] = None
    partial = _rows(tmp_path / "cut")
    assert 0 < len(partial) < len(_rows(full.out))
    with (tmp_path / "cut" / "rows.jsonl").open("a") as f:
        f.write('{"solver": "tweedie", "oper')  # a row torn by the kill

    resumed = run(spec(), out=tmp_path / "cut", batch_size=3, progress=False)
    assert resumed.rows_skipped == len(partial)
    rows = _rows(resumed.out)
    assert_same_rows(rows, _rows(full.out))
    assert len({row_key(r) for r in rows}) == len(rows)  # none doubled

    again = run(spec(), out=tmp_path / "cut", progress=False)
    assert again.rows_written == 0


def test_failures_are_recorded_and_the_run_goes_on(tmp_path, small_model_path):
    spec = _spec(small_model_path, solvers=("raises-on-camera", "nan-on-second", "tweedie"), ops=("denoise",),
                 params=["sigma_y=0"])  # noiseless, so the grey camera image has equal channels
    result = run(spec, out=tmp_path / "f", batch_size=2, progress=False)
    rows = {(r["solver"], r["image"]): r for r in _rows(result.out)}
    # raises-on-camera fails for the whole batch holding 01-camera (images 0 and 1), succeeds elsewhere
    for image in ("00-astronaut", "01-camera"):
        assert rows[("raises-on-camera", image)]["status"] == "failed"
        assert "boom on a grey image" in rows[("raises-on-camera", image)]["error"]
    assert rows[("raises-on-camera", "02-chelsea")]["status"] == "ok"
    # nan-on-second fails only for the second image of each batch
    assert [rows[("nan-on-second", i)]["status"] for i in ("00-astronaut", "01-camera", "02-chelsea", "03-coffee")] \
        == ["ok", "failed", "ok", "failed"]
    assert "non-finite" in rows[("nan-on-second", "01-camera")]["error"]
    assert all(rows[("tweedie", i)]["status"] == "ok" for i in ("00-astronaut", "01-camera", "04-rocket"))
    assert result.failed == 2 + 2


def test_an_unsupported_pair_is_skipped_not_failed_and_shown_as_not_applicable(tmp_path, small_model_path):
    spec = lambda: _spec(small_model_path, solvers=("masks-only", "broken-check", "tweedie"),  # noqa: E731
                         ops=("inpaint-random", "deblur"), num_images=3)
    result = run(spec(), out=tmp_path / "s", batch_size=2, progress=False)
    rows = {(r["solver"], r["operator"], r["image"]): r for r in _rows(result.out)}
    skipped = [r for r in rows.values() if r["status"] == "skipped"]
    assert {(r["solver"], r["operator"]) for r in skipped} == {("masks-only", "deblur-gauss")} and len(skipped) == 3
    assert skipped[0]["error"] == "needs a mask, got Blur" and skipped[0]["nfe"] == 0
    assert all(rows[("masks-only", "inpaint-random", i)]["status"] == "ok" for i in ("00-astronaut", "02-chelsea"))
    assert {r["status"] for k, r in rows.items() if k[0] == "broken-check"} == {"failed"}  # a raising check fails
    assert "cannot tell" in rows[("broken-check", "deblur-gauss", "00-astronaut")]["error"]
    assert result.not_applicable == 3 and result.failed == 2 * 3

    table = (result.out / "table.md").read_text() if (result.out / "table.md").exists() else write_tables(result.out)
    line = next(l for l in table.splitlines() if l.startswith("| masks-only"))
    assert line.count("n/a") == 5  # deblur PSNR, SSIM, LPIPS, fit and its n (failed) column
    assert "n/a: the solver does not apply to the operator, not a failure: masks-only on deblur-gauss " \
           "(needs a mask, got Blur)" in table

    from PIL import Image

    from ipbench.results.grid import write_grids

    write_grids(result.out)  # a grid leaves out the solvers that do not apply to its operator
    widths = {name: Image.open(result.out / f"grid-{name}.png").width for name in ("inpaint-random", "deblur-gauss")}
    assert widths["deblur-gauss"] < widths["inpaint-random"]

    again = run(spec(), out=tmp_path / "s", progress=False)  # skipped rows are final; failed ones are retried
    assert again.rows_written == 6 and again.not_applicable == 0


def test_a_folder_holding_another_run_is_refused(tmp_path, small_model_path):
    run(_spec(small_model_path, num_images=1), out=tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="different run"):
        run(_spec(small_model_path, num_images=2), out=tmp_path / "r", progress=False)


def test_measurements_are_shared_by_solvers_and_seeds_differ(tmp_path, small_model_path):
    spec = _spec(small_model_path, solvers=("tweedie",), ops=("inpaint-random",), num_images=2)
    spec.seeds = [0, 1]
    out = run(spec, out=tmp_path / "s", progress=False).out
    measurement = out / "images" / "inpaint-random" / "measurement"
    a, b = (measurement / "00-astronaut-s0.png").read_bytes(), (measurement / "00-astronaut-s1.png").read_bytes()
    assert a != b  # a different seed draws a different mask and noise


def test_nfe_is_per_image_for_batched_and_image_by_image_solvers(tmp_path, small_model_path):
    """Both record NFE per image, not per batch of 3."""
    spec = _spec(small_model_path, solvers=("dps", "deepinv-dps"), ops=("denoise",), num_images=3,
                 params=["dps.steps=4", "deepinv-dps.num_steps=4"])
    rows = RowStore(run(spec, out=tmp_path / "n", batch_size=3, progress=False).out / "rows.jsonl").read()
    per_solver = {name: {r["nfe"] for r in rows if r["solver"] == name} for name in ("dps", "deepinv-dps")}
    assert per_solver["dps"] == {4}
    (deepinv_nfe,) = per_solver["deepinv-dps"]
    assert 3 <= deepinv_nfe <= 5  # deepinv's own count for 4 steps, not 3 images x that


def test_compilation_is_timed_apart_from_the_solver(tmp_path, small_model_path, recorded_compilation):
    """With compile on, each new batch shape's compilation (made to take 2 s more here) goes to the rows'
    compile_seconds, per image, and not to their seconds; batches of a shape already compiled compile
    nothing; the table says how much was left out. The delay is long beside a solve (milliseconds) so that
    a loaded machine's slower solves cannot reach the bound on `seconds`."""
    recorded_compilation.delay = 2.0
    spec = _spec(small_model_path, solvers=("tweedie",), ops=("denoise",), num_images=5)
    result = run(spec, out=tmp_path / "r", batch_size=2, acceleration=Acceleration(compile=True), progress=False)
    rows = RowStore(result.out / "rows.jsonl").read()
    assert recorded_compilation and all(phase == "warm-up" for _, phase in recorded_compilation)
    compiled = [r["compile_seconds"] for r in rows]  # batches of 2, 2 and 1 image
    assert compiled[0] == compiled[1] >= 1.0 and compiled[2] == compiled[3] == 0 and compiled[4] >= 2.0
    assert all(r["status"] == "ok" and 0 <= r["seconds"] < 1.0 for r in rows), rows
    assert f"{sum(compiled):.0f} s in all, left out" in write_tables(result.out)


def test_shards_together_make_the_unsharded_run(tmp_path, small_model_path):
    """Three shards into one folder: each runs images i with i mod 3 == its index into its own rows file,
    the run is complete only after the last, their rows together are the unsharded run's, and an
    unsharded rerun finds nothing left to do."""
    spec = lambda: _spec(small_model_path, solvers=("tweedie", "interruptible"), num_images=5)  # noqa: E731
    whole = run(spec(), out=tmp_path / "whole", batch_size=2, progress=False)
    missing = []
    for index in range(3):
        shard = Shard(index, 3)
        part = run(spec(), out=tmp_path / "sharded", batch_size=2, progress=False, shard=shard)
        missing.append(part.run_missing)
        all_ids = json.loads((tmp_path / "sharded" / "run.json").read_text())["images"]["ids"]
        ids = {r["image"] for r in RowStore(tmp_path / "sharded" / shard.rows_file).read()}
        assert len(all_ids) == 5 and ids == {all_ids[i] for i in range(index, 5, 3)}
    assert missing[0] > missing[1] > missing[2] == 0 and whole.run_missing == 0
    assert not (tmp_path / "sharded" / "rows.jsonl").exists()
    assert_same_rows(_rows(tmp_path / "sharded"), _rows(whole.out))
    assert run(spec(), out=tmp_path / "sharded", progress=False).rows_written == 0


@pytest.mark.parametrize("text, fragment", [("2/2", "K must be in 0..N-1"), ("0/0", "K must be in 0..N-1"),
                                            ("1-4", "write K/N"), ("a/b", "write K/N")])
def test_bad_shard_is_a_usage_error(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        Shard.parse(text)
    assert Shard.parse(" 1 / 4 ") == Shard(1, 4) and Shard(1, 4).positions(10) == [1, 5, 9]


@pytest.mark.parametrize("kind, fragment", [
    ("int", "dtype torch.uint8"), ("bool", "dtype torch.bool"), ("complex", "dtype torch.complex64"),
    ("meta", "on meta"), ("shape", "shape (2, 3, 31, 32)"), ("list", "returned a list"),
])
def test_an_unusable_output_is_a_failed_row_and_the_run_goes_on(tmp_path, small_model_path, kind, fragment):
    spec = _spec(small_model_path, solvers=("odd-output", "tweedie"), ops=("denoise",), num_images=2,
                 params=[f"odd-output.kind={kind}"])
    result = run(spec, out=tmp_path / "r", batch_size=2, progress=False)
    rows = _rows(result.out)
    odd = [r for r in rows if r["solver"] == "odd-output"]
    assert len(odd) == 2 and all(r["status"] == "failed" and fragment in r["error"] for r in odd), odd
    assert all(r["status"] == "ok" for r in rows if r["solver"] == "tweedie")
    assert "odd-output" in write_tables(result.out)


def test_a_float64_output_is_scored_like_its_float32_copy(tmp_path, small_model_path):
    spec = _spec(small_model_path, solvers=("odd-output",), ops=("denoise",), num_images=2,
                 params=["odd-output.kind=float64"])
    rows = _rows(run(spec, out=tmp_path / "r", batch_size=2, progress=False).out)
    assert all(r["status"] == "ok" for r in rows)


def test_pixels_outside_the_unit_range_are_counted_per_row_and_named_in_the_caption(tmp_path, small_model_path):
    spec = _spec(small_model_path, solvers=("odd-output", "tweedie"), ops=("denoise",), num_images=2,
                 params=["odd-output.kind=float64", "sigma_y=0.2"])  # noisy back-projection: outside [0, 1]
    result = run(spec, out=tmp_path / "r", batch_size=2, progress=False)
    rows = _rows(result.out)
    odd = [r["clamped"] for r in rows if r["solver"] == "odd-output"]
    assert all(0 < c < 1 for c in odd), odd
    table = write_tables(result.out)
    assert "Pixels outside [0, 1], clamped before scoring: odd-output" in table


def test_trace_saves_strips_and_changes_no_row(tmp_path, small_model_path):
    """--trace K: x0_hat at steps 0, K, 2K, ... and the last, for the run's first images; rows as without it."""
    spec = lambda: _spec(small_model_path, solvers=("dps", "hole-fill"), ops=("denoise",), num_images=5,  # noqa: E731
                         params=["dps.steps=7"])
    plain = run(spec(), out=tmp_path / "plain", batch_size=3, progress=False)
    traced = run(spec(), out=tmp_path / "traced", batch_size=3, progress=False, trace=3)
    assert_same_rows(_rows(plain.out), _rows(traced.out), tol=0)
    strips = sorted((traced.out / "images" / "denoise" / "dps" / "trace").iterdir())
    assert [p.name for p in strips] == [f"{i}-s0.png" for i in ("00-astronaut", "01-camera", "02-chelsea", "03-coffee")]
    from ipbench.data import load_png

    assert load_png(strips[0]).shape[-1] == 32 * 3  # steps 0, 3 and 6 of 0..6 (6, the last, once)
    assert not (traced.out / "images" / "denoise" / "hole-fill" / "trace").exists()  # no steps to report
    from ipbench.results.grid import write_grids

    assert (traced.out / "trace-denoise.png") in write_grids(traced.out)


def test_common_seeding_gives_every_solver_the_same_draws(tmp_path, small_model_path):
    """Two labels of one stochastic solver: with common seeding their draws, and so their rows, are equal;
    with independent seeding (the default) they differ. run.json records the choice."""
    def twins(seeding):
        spec = _spec(small_model_path, solvers=("ddpm",), ops=("inpaint-random",), num_images=2, seeding=seeding,
                     params=["ddpm.steps=3"])
        spec.solvers.append(dataclasses.replace(spec.solvers[0], label="ddpm-twin"))
        out = run(spec, out=tmp_path / seeding, progress=False).out
        psnr = {(r["solver"], r["image"]): r["psnr"] for r in run_rows(out)}
        return out, [(psnr[("ddpm", i)], psnr[("ddpm-twin", i)]) for i in ("00-astronaut", "01-camera")]

    out, common = twins("common")
    assert all(a == b for a, b in common)
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["seeding"] == "common" and meta["conventions"]["seeding"].startswith("common:")
    out, independent = twins("independent")
    assert all(a != b for a, b in independent)
    meta = json.loads((out / "run.json").read_text())
    assert "seeding" not in meta["config"] and meta["conventions"]["seeding"].startswith("independent:")


def test_common_seeding_shares_x_T_between_solvers():
    """What `common` promises: the first N(0, I) draw of any two solvers on one image is the same x_T."""
    from ipbench.seeding import solver_generator
    from ipbench.solvers import randn_per_image

    def x_T(solver, seeding):
        return randn_per_image((1, 1, 4, 4), [solver_generator(0, "img", "op", solver, seeding=seeding)], "cpu")

    assert torch.equal(x_T("dps", "common"), x_T("sdedit", "common"))
    assert not torch.equal(x_T("dps", "independent"), x_T("sdedit", "independent"))
    with pytest.raises(UsageError, match="seeding 'shared'"):
        solver_generator(0, "img", "op", "dps", seeding="shared")
