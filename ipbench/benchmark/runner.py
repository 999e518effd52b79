"""The loop: for each operator, seed and batch of images, measure once, run every solver, score, store.

Rows are appended as soon as a batch is scored and its images written (benchmark/writer.py does both in
the background, in order), so an interrupted run loses at most the batch in flight, and a rerun into the
same folder skips the ok rows it has and retries failed ones. A solver that raises or returns non-finite
values gets `failed` rows with the error and the run goes on; a solver that does not apply to an operator
(`Solver.unsupported`) gets `skipped` rows with the reason, which a rerun keeps. One process at a time
writes a rows file (benchmark/lock.py): a second one on the same run or shard stops with a one-line error
naming the first.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor
from tqdm import tqdm

from ipbench.benchmark.condition import batch_classes, conditional_model, true_classes
from ipbench.benchmark.lock import RowsLock
from ipbench.benchmark.shard import Shard
from ipbench.benchmark.spec import RunSpec, SolverEntry, check_same_run, code_files
from ipbench.benchmark.trace import TRACE_IMAGES, StepTrace
from ipbench.benchmark.writer import BackgroundWriter
from ipbench.data import ImageSet, load_images
from ipbench.data.images import describe_shape
from ipbench.device import describe_device, resolve_device, synchronize
from ipbench.errors import UsageError, first_line
from ipbench.files import atomic_write_text
from ipbench.models import ScoreModel, load_model, model_file
from ipbench.models.conditional import conditioned, unwrapped
from ipbench.models.counting import CountingModel
from ipbench.models.latent import autoencoder_of, latent_shape, pixel_shape
from ipbench.models.acceleration import AcceleratedModel, Acceleration
from ipbench.operators import Operator, measure, shown_measurement
from ipbench.paths import content_hash, expand_user
from ipbench.solvers.base import SOLVER_FAILURES, output_problem, prior_problem
from ipbench.results.alignment import aligned_to_truth
from ipbench.results.evaluated_on import evaluation_warnings
from ipbench.results.measurement_fit import measurement_fit
from ipbench.results.metric_registry import METRIC_CONVENTIONS, METRIC_SUMMARY
from ipbench.results.metrics import compute_metrics, prepare_metrics
from ipbench.results.samples import sample_statistics
from ipbench.results.rows import FINAL, RowStore, read_run_json, row_key, row_keys, run_rows
from ipbench.run_paths import check_run_names, measurement_png, reconstruction_png, std_png, trace_png, truth_png
from ipbench.seeding import measurement_generator, seeding_convention, solver_generator

CONVENTIONS = {
    "image_range": "float32 NCHW in [0, 1]; score models in [-1, 1]",
    "sigma_y_units": "[0, 1] image units (DPS paper sigma = 0.05 on [-1, 1] is sigma_y = 0.025)",
    "noise": "each operator's `noise`: gaussian (the default) y = A(x) + sigma_y n; poisson y = P(rate A(x)+) / rate "
             "(sigma_y = 0); poisson-gaussian both; rate in photons per unit intensity, A(x)+ = max(A(x), 0); an "
             "operator's params and rows carry noise and rate only when it is not gaussian; solvers' Gaussian std "
             "(noise_level) under Poisson noise is sqrt(sigma_y^2 + 1 / (2 rate)), the std at intensity 1/2",
    "diffusion": "discrete VP-DDPM, t in {0..T-1}, Tweedie x0 = (x_t - sqrt(1-ab) eps) / sqrt(ab)",
    "seconds": "wall time of one solver call on a batch divided by the batch size, compilation left out",
    "compile_seconds": "torch.compile warm-up for new batch shapes met during that solver call, per image as seconds",
    "nfe": "score-network evaluations per image",
    "clamped": "fraction of a reconstruction's pixels outside [0, 1], clamped to it before scoring and saving",
    "clamped_max": "the largest distance of a reconstruction's pixel outside [0, 1] (image units)",
    "alignment": "phase retrieval: metrics and the saved reconstruction are of its equivalent under A (180-degree "
                 "rotation, negation about the padding's value, translations over a blank border) closest to the "
                 "truth in MSE, named in the row's `alignment`; `<metric>_raw` are the unaligned ones",
    "fit": "measurement fit, Pearson's chi-squared per measurement (1/m) sum (y - A(x_hat))^2 / v under the "
           "operator's noise model at A(x_hat) (v = sigma_y^2 + A(x_hat)+ / rate), of the scored reconstruction; "
           "about 1 for the truth, >> 1 ignores the data, < 1 fits its noise; nan when y has no noise; "
           "`fit_truth` is the true image's, on the same y (results/measurement_fit.py)",
}  # run.json adds "metrics" and "metric_summary": the conventions of the metrics the run computes


@dataclass
class RunResult:
    out: Path
    rows_written: int
    rows_skipped: int
    failed: int
    not_applicable: int = 0  # rows of (solver, operator) pairs the solver does not support
    retried: int = 0  # rows that had failed in an earlier run and were computed again
    run_missing: int = 0  # rows of the whole run not written yet (other shards still at work)
    device: torch.device = torch.device("cpu")  # where it ran


def run(spec: RunSpec, out: str | Path | None = None, *, batch_size: int = 8, device: str | torch.device | None = None,
        acceleration: Acceleration = Acceleration(), shard: Shard | None = None, command: str | None = None,
        progress: bool = True, log: Callable[[str], None] | None = None, trace: int | None = None) -> RunResult:
    """Run `spec` into folder `out` (default `spec.default_out()`), resuming if it holds the same run.

    With `shard`, only that shard's images run, and their rows go to the shard's own file (shard.py);
    run.json still describes the whole run, so every shard checks that it joins the same one.

    `trace` K saves every K-th x0_hat of the run's first images (benchmark/trace.py); rows do not change.
    `log` receives one-line notes on what is run (model, images, solver settings). `acceleration` wraps
    the network only (models/acceleration.py), resolved for the device; where the spec sets no
    precision, its precision becomes the run's (bf16 changes results and is part of the run's config).
    The other switches only move float rounding.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be >= 1")
    if trace is not None and trace < 1:
        raise UsageError(f"--trace {trace}: must be >= 1 (save every K-th step)")
    check_run_names([s.label for s in spec.solvers], [o.label for o in spec.operators])  # before any file
    dev = resolve_device(device)
    if acceleration.fast and dev.type != "cuda" and log is not None:
        log("--fast: no effect on CPU (the GPU preset; fp32 eager is the fastest measured CPU setting)")
    acceleration = acceleration.resolve(dev, spec.precision)
    spec = dataclasses.replace(spec, precision=acceleration.precision)  # the precision the network runs in
    out = expand_user(out, "--out") if out is not None else spec.default_out()
    model = load_model(spec.model, dev)
    source = spec.images or model.default_image_set
    if source is None:
        raise UsageError(f"model {spec.model!r} has no default image set: pass --images DIR or a set name")
    num_images = spec.num_images
    if spec.images is None and num_images is None and model.default_num_images:
        num_images = model.default_num_images
    images = load_images(source, pixel_shape(model), num_images)  # a latent prior's images are its decoder's
    if spec.condition is not None:  # preflight: a model that takes a class, and images that name theirs
        conditional = conditional_model(model, spec.model, spec.condition, spec.guidance_scale)
        if spec.condition != "none":
            true_classes(conditional, images.ids)
    _check_out_apart_from_images(out, images)
    prepare_metrics(spec.metrics, dev)  # preflight: missing metric weights stop the run here
    for entry, operator in spec.pairs():  # preflight: times, step counts and noise levels this model cannot run
        _checked_on(entry, operator, lambda solver: solver.check_model(model))
    for operator in spec.operators:  # preflight: shape-dependent parameter errors surface before anything runs
        first = measurement_generator(spec.seeds[0], images.ids[0], operator.label, dev)
        operator.build(pixel_shape(model), [first], dev)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder; give a new or existing run folder")
    with _writes_to(out):
        _prepare_folder(out, spec, images, model, dev, batch_size, command, acceleration)
    mine = images if shard is None else images.take(shard.positions(len(images)))
    if log is not None:
        default_note = " (the model's default; --num-images N for more)" if num_images != spec.num_images else ""
        split = f" (split {images.split})" if images.split else ""
        latent = "" if latent_shape(model) is None else f" (latent {tuple(latent_shape(model))})"
        log(f"model {spec.model} {pixel_shape(model)}{latent} on {dev}; {len(images)} images of {images.source}{split}"
            f"{default_note}; seeds {spec.seeds}")
        images_seen = {"source": images.source, "split": images.split, "ids": images.ids}
        for warning in evaluation_warnings({"config": spec.config(), "images": images_seen}):
            log(f"warning: {warning}")  # before the work: a run on tuning images is stopped at no cost
        if shard is not None:
            log(f"  shard {shard}: {len(mine)} of the {len(images)} images, rows to {shard.rows_file}")
        for entry, table in zip(spec.solvers, spec.config()["solvers"]):
            settings = ", ".join(f"{k}={v}" for k, v in entry.solver.hyperparameters().items())
            log(f"  {entry.label}: {settings or 'no parameters'}")
            for line in _per_operator_notes(table):
                log(f"    {line}")
        for skipped, reason in images.skipped:
            log(f"  skipped image {skipped}: {reason}")
        if images.converted:
            first, own = next(iter(images.converted.items()))
            log(f"  converted {len(images.converted)} of {len(images)} images to the model's "
                f"{describe_shape(pixel_shape(model))} (centre crop, bicubic resize, channel conversion; first: "
                f"{first}, {own}); run.json lists them under images.converted")

    rows_file = "rows.jsonl" if shard is None else shard.rows_file
    writer_lock = RowsLock(out / rows_file, "this run" if shard is None else f"shard {shard}",
                           rows_at_start=len(RowStore(out / rows_file).read()))
    with writer_lock, AcceleratedModel(model, acceleration) as fast, _writes_to(out):  # one writer per rows file
        traced = (set(images.ids[:TRACE_IMAGES]), trace) if trace else None
        result = _loop(spec, mine, CountingModel(fast), dev, out, batch_size, progress, rows_file, traced)
    result.device = dev
    result.run_missing = len(row_keys(spec.config(), images.ids) - {row_key(r) for r in run_rows(out)})
    return result


def _checked_on(entry: SolverEntry, operator: Operator, check: Callable[[Any], None]) -> None:
    """`check(solver)` on the instance that runs on `operator`; an error there names the entry and operator
    where the instance is not the entry's all-operator one (a per-operator value or a preset's)."""
    solver = entry.solver_for(operator)
    try:
        check(solver)
    except UsageError as exc:
        if solver is entry.solver:
            raise
        raise UsageError(f"solver {entry.label} on operator {operator.label}: {exc}") from None


def _per_operator_notes(table: dict[str, Any]) -> list[str]:
    """What the run log says of an entry beyond its all-operator values: its preset, each operator's own
    values, and the operators its preset has no setting for."""
    notes = []
    if "preset" in table:
        notes.append(f"preset {table['preset']}: the solver's settings for each operator's family (docs/solvers.md)")
    for label, own in table.get("per_operator", {}).items():
        values = ", ".join(f"{k}={v}" for k, v in own.get("params", {}).items())
        notes.append(f"on {label}: {values or 'as above'}{' (tuned)' if 'tuned' in own else ''}")
    if table.get("preset_missing"):
        notes.append(f"preset {table['preset']} has no setting for {', '.join(table['preset_missing'])}: "
                     "defaults and the suite's values there (run.json: preset_missing)")
    return notes


def _check_out_apart_from_images(out: Path, images: ImageSet) -> None:
    """Refuse an --out that is the --images folder or holds it: the run's PNGs would be read back as test
    images by the next run. A run folder inside the images folder is fine (only files directly in it are
    images, and the run writes into subfolders)."""
    source = Path(images.source)
    if not source.is_dir():  # a registered image set
        return
    where, folder = out.resolve(), source.resolve()
    if where == folder or where in folder.parents:
        raise UsageError(f"--out {out}: is the --images folder {folder} or holds it, so this run's PNGs would be "
                         "read as test images by the next run; choose an --out outside it (a subfolder of "
                         "it is fine)")


def input_files(spec: RunSpec) -> dict[str, str]:
    """{what: path} of the files a run reads besides its images: the model file (`--model FILE` or
    NAME:PATH) and the operators' file parameters (inpaint-mask.path)."""
    model = model_file(spec.model)
    found = {"--model": str(model)} if model is not None else {}
    for operator in spec.operators:
        found.update(operator.input_files())
    return found


def input_hashes(spec: RunSpec) -> dict[str, dict[str, str]]:
    """run.json's `inputs`: each input file's path and content hash (paths.content_hash)."""
    hashed = {}
    for what, path in input_files(spec).items():
        try:
            hashed[what] = {"path": path, "sha256": content_hash(expand_user(path, what))}
        except OSError as exc:  # the loader read it a moment ago: it went away or became unreadable
            raise UsageError(f"{what} {path}: cannot read it to record its content ({first_line(exc)})") from None
    return hashed


@contextmanager
def _writes_to(out: Path) -> Iterator[None]:
    """A failed write into the run folder (full disk, read-only folder) as a one-line UsageError; the rows
    and files written before it stay, and the same command resumes."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"--out {out}: writing failed ({first_line(exc)}); what was written before is kept, "
                         "and the same command resumes once the folder is writable") from None


def _loop(spec: RunSpec, images: ImageSet, counted: "CountingModel", dev: torch.device, out: Path, batch_size: int,
          progress: bool, rows_file: str, traced: tuple[set[str], int] | None = None) -> RunResult:
    """Every (operator, seed, batch, solver) not yet in the run's rows: measure, solve, score, append."""
    store = RowStore(out / rows_file)
    previous = run_rows(out)  # any shard's rows count: a resumed run never redoes an ok row
    done = {row_key(r) for r in previous if r.get("status") in FINAL}
    expected = row_keys(spec.config(), images.ids)
    retried = len({row_key(r) for r in previous if r.get("status") not in FINAL} & expected)  # failed: tried again
    total = len(expected)
    bar = tqdm(total=total, disable=not progress, desc="bench run", unit="row", file=sys.stderr)
    bar.update(len(done & expected))
    with BackgroundWriter() as writer:  # PNGs and rows, in order, while the next batch solves
        counts = _batches(spec, images, counted, dev, out, batch_size, store, done, writer, bar, traced)
    bar.close()
    return RunResult(out, counts["written"], total - counts["written"], counts["failed"],
                     not_applicable=counts["skipped"], retried=retried)


def _batches(spec: RunSpec, images: ImageSet, counted: "CountingModel", dev: torch.device, out: Path,
             batch_size: int, store: RowStore, done: set[tuple], writer: BackgroundWriter, bar: tqdm,
             traced: tuple[set[str], int] | None) -> dict[str, int]:
    """The loop itself; returns how many rows it wrote, and of them how many failed and were skipped."""
    counts = {"written": 0, "failed": 0, "skipped": 0}
    for operator in spec.operators:
        for seed in spec.seeds:
            for start in range(0, len(images), batch_size):
                ids = images.ids[start:start + batch_size]
                x = images.images[start:start + batch_size].to(dev)
                measured: dict[tuple[int, ...], tuple[Physics, Tensor]] = {}
                for entry in spec.solvers:
                    if not entry.runs_on(operator.label):
                        continue
                    draws = spec.samples_of(entry)
                    # an image is done when all its draws are: a measurement's statistics need every draw
                    todo = [i for i, image_id in enumerate(ids) if any(
                        (entry.label, operator.label, image_id, str(seed), str(k)) not in done for k in range(draws))]
                    if not todo:
                        continue
                    sub_ids = [ids[i] for i in todo]
                    if tuple(todo) not in measured:  # solvers missing the same images share one measurement
                        measured[tuple(todo)] = _measure(operator, x[todo], sub_ids, seed, dev, out, writer)
                    physics, y = measured[tuple(todo)]
                    solved = []
                    for sample in range(draws):  # the same y, each draw from its own generators
                        tracer = None
                        if traced is not None and seed == spec.seeds[0] and sample == 0:
                            positions = [i for i, image_id in enumerate(sub_ids) if image_id in traced[0]]
                            tracer = StepTrace(traced[1], positions) if positions else None
                        solved.append(_solve_and_score(entry, operator, seed, sub_ids, x[todo], y, physics, counted,
                                                       spec, dev, out, writer, tracer, sample))
                    if spec.samples > 1:
                        _add_sample_statistics(solved, x[todo], spec, operator, entry, seed, sub_ids, out, writer)
                    rows = [row for sample_rows, _ in solved for row in sample_rows
                            if row_key(row) not in done]  # a draw already written stays as it was
                    writer.submit(store.append, rows)  # after this batch's images
                    done.update(row_key(r) for r in rows)
                    counts["written"] += len(rows)
                    for status in ("failed", "skipped"):
                        counts[status] += sum(r["status"] == status for r in rows)
                    bar.update(len(rows))
    return counts


def _measure(operator: Operator, x: Tensor, ids: Sequence[str], seed: int, device: torch.device, out: Path,
             writer: BackgroundWriter) -> tuple[Physics, Tensor]:
    """The operator and measurement for these images (the same whatever the batch: per-image generators)."""
    generators = [measurement_generator(seed, image_id, operator.label, device) for image_id in ids]
    physics = operator.build(x.shape[1:], generators, device)
    y = measure(physics, x, generators)
    shown = shown_measurement(physics, y, x)  # unseen pixels (inpainting holes) transparent: the grid marks them
    for image_id, truth, meas in zip(ids, x, shown):
        writer.png_once(truth, truth_png(out, image_id))
        writer.png_once(meas, measurement_png(out, operator.label, image_id, seed))
    return physics, y


def _solve_and_score(entry: SolverEntry, operator: Operator, seed: int, ids: Sequence[str], x: Tensor, y: Tensor,
                     physics: Physics, model: CountingModel, spec: RunSpec, device: torch.device, out: Path,
                     writer: BackgroundWriter, tracer: StepTrace | None = None, sample: int = 0
                     ) -> tuple[list[dict[str, Any]], Tensor | None]:
    """The rows of one draw of `entry` on these images, and its reconstructions in [0, 1] (None where it failed
    or did not apply; a row's status says which images are ok)."""
    generators = [solver_generator(seed, image_id, operator.label, entry.label, device, spec.seeding, sample)
                  for image_id in ids]
    solver = entry.solver_for(operator)  # with this operator's values (per_operator tables, a preset)
    base = {"operator": operator.label, "seed": seed, "model": spec.model,
            **{f"solver.{k}": v for k, v in solver.hyperparameters().items()},
            **{f"operator.{k}": v for k, v in operator.params.items()}}
    try:
        reason, status = prior_problem(solver, model) or solver.unsupported(physics, torch.zeros_like(x)), "skipped"
        base.update({f"ran.{k}": v for k, v in solver.as_run(physics, model).items()})  # decided by the operator
    except SOLVER_FAILURES as exc:  # a check that raises (or exits) is the solver's failure
        reason, status = f"{type(exc).__name__} in unsupported() or as_run(): {exc}", "failed"
    if spec.samples > 1:
        base["sample"] = sample
    if reason is not None:  # skipped is not a failure: the pair is outside the solver's scope, shown as n/a
        return [{"solver": entry.label, "image": image_id, **base, "seconds": 0.0, "compile_seconds": 0.0, "nfe": 0,
                 "psnr": math.nan, "ssim": math.nan, "lpips": math.nan, "status": status, "error": reason}
                for image_id in ids], None
    model.reset()
    autoencoder = autoencoder_of(model)
    if autoencoder is not None:
        autoencoder.reset_counts()
    synchronize(device)
    compiled_before = model.compile_seconds
    start = time.perf_counter()
    if tracer is not None:
        solver.step_hook = tracer  # type: ignore[attr-defined]  (Solver.report_step reads it)
    classes = None if spec.condition is None else batch_classes(spec.condition, conditional_model(
        unwrapped(model), spec.model), seed, ids)
    try:
        with conditioned(model, None if classes is None else torch.tensor(classes, device=device), spec.guidance_scale):
            x_hat = solver.solve(y, physics, model, generators)
        synchronize(device)
        error = output_problem(x_hat, x)
    except SOLVER_FAILURES as exc:  # a failing solver is a result, not a crash (sys.exit in it too)
        x_hat, error = None, f"{type(exc).__name__}: {exc}"
    finally:
        solver.__dict__.pop("step_hook", None)
    # A new batch shape compiles the network: a one-off cost of the switch, not of the solver.
    compile_seconds = (model.compile_seconds - compiled_before) / len(ids)
    seconds = (time.perf_counter() - start) / len(ids) - compile_seconds
    rows = []
    if x_hat is not None and error is None:
        x_hat = x_hat.detach().to(torch.float32)  # metrics and PNGs take float32 in [0, 1]
        finite = torch.isfinite(x_hat).flatten(1).all(dim=1)
        outside = (x_hat.clamp(max=0).neg() + (x_hat - 1).clamp(min=0)).flatten(1)  # distance outside [0, 1]
        clamped, clamped_max = (outside > 0).float().mean(1).tolist(), outside.amax(1).tolist()  # reported
        x_hat = torch.where(finite.view(-1, 1, 1, 1), x_hat, torch.zeros_like(x_hat)).clamp(0, 1)
        fits = {"fit": measurement_fit(physics, x_hat, y).tolist(), "fit_truth": measurement_fit(physics, x, y).tolist()}
        aligned, raw = aligned_to_truth(physics, x_hat, x), {}  # phase retrieval: up to its trivial ambiguities
        if aligned is not None:
            raw = {"alignment": aligned[1], **{f"{k}_raw": v.tolist() for k, v in
                                               compute_metrics(x_hat, x, spec.metrics).items()}}
            x_hat = aligned[0]
        metrics = {**{k: v.tolist() for k, v in compute_metrics(x_hat, x, spec.metrics).items()}, **raw, **fits}
    traced = dict(zip(tracer.positions, tracer.strips())) if tracer is not None else {}  # position -> strip
    for i, image_id in enumerate(ids):
        row = {"solver": entry.label, "image": image_id, **base, "seconds": seconds,
               "compile_seconds": compile_seconds, "nfe": model.images // len(ids)}
        if autoencoder is not None:  # a latent solver's autoencoder calls, per image, apart from the latent NFE
            row.update(decodes=autoencoder.decoded / len(ids), encodes=autoencoder.encoded / len(ids))
        if spec.condition is not None:  # what the prior was given (benchmark/condition.py)
            row.update({"model.condition": spec.condition, "model.guidance": spec.guidance_scale, "model.class":
                        None if classes is None else unwrapped(model).class_names[classes[i]]})
        if error is None and bool(finite[i]):
            row.update({k: v[i] if k == "alignment" else float(v[i]) for k, v in metrics.items()}, clamped=clamped[i], clamped_max=clamped_max[i],
                       status="ok")
            writer.png(x_hat[i], reconstruction_png(out, operator.label, entry.label, image_id, seed, sample))
            if i in traced:
                writer.png(traced[i], trace_png(out, operator.label, entry.label, image_id, seed),
                           text=tracer.steps_text() if tracer is not None else None)
        else:
            row.update(psnr=math.nan, ssim=math.nan, lpips=math.nan, status="failed",
                       error=error or "solver returned non-finite values")
        rows.append(row)
    return rows, x_hat if error is None else None


def _add_sample_statistics(solved: list[tuple[list[dict[str, Any]], Tensor | None]], x: Tensor, spec: RunSpec,
                           operator: Operator, entry: SolverEntry, seed: int, ids: Sequence[str], out: Path,
                           writer: BackgroundWriter) -> None:
    """Attach each measurement's statistics over its ok draws (results/samples.py) to every draw's row, and save
    the per-pixel std map (scaled by its largest value, which the row records as `std_max`)."""
    for i, image_id in enumerate(ids):
        ok = [(rows[i], x_hat[i]) for rows, x_hat in solved if x_hat is not None and rows[i]["status"] == "ok"]
        if not ok:
            continue
        draws = torch.stack([image for _, image in ok])
        per_draw = {m: torch.tensor([float(row[m]) for row, _ in ok], dtype=torch.float64) for m in spec.metrics
                    if m in ok[0][0]}
        stats, std = sample_statistics(draws, x[i], per_draw, spec.metrics)
        stats["std_max"] = float(std.max())
        for rows, _ in solved:
            rows[i].update(stats, samples=len(solved))
        if len(ok) > 1:
            writer.png(std / max(stats["std_max"], 1e-12), std_png(out, operator.label, entry.label, image_id, seed))


def _prepare_folder(out: Path, spec: RunSpec, images: ImageSet, model: ScoreModel, device: torch.device,
                    batch_size: int, command: str | None, acceleration: "Acceleration") -> None:
    """Create the run folder and run.json, or check that an existing one holds the same run on the same
    images (each image's content hash); images new to the run are added to run.json's list."""
    meta_path = out / "run.json"
    config = spec.config()
    hashes = {image_id: image_hash(image) for image_id, image in zip(images.ids, images.images)}
    inputs = input_hashes(spec)
    if meta_path.exists():
        _check_resume(out, read_run_json(out), config, images, hashes, inputs)
        return
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "ipbench_version": _version("ipbench"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "config": config,
        "model": {"name": spec.model, "class": type(model).__name__, "image_shape": list(pixel_shape(model)),
                  "num_timesteps": model.num_timesteps,
                  **({} if latent_shape(model) is None else {"latent_shape": list(latent_shape(model))})},
        "images": {"source": images.source, "split": images.split, "ids": images.ids, "skipped": images.skipped,
                   "sha256": hashes, **_conversions(images.converted, images)},
        "inputs": inputs,
        "device": describe_device(device),
        "code": code_files(spec),
        "batch_size": batch_size,
        "acceleration": dataclasses.asdict(acceleration),
        "versions": {name: _version(name) for name in ("torch", "deepinv", "lpips", "numpy", "pandas")}
        | {"python": platform.python_version()},
        "conventions": {**CONVENTIONS, "seeding": seeding_convention(spec.seeding),
                        "metrics": {m: METRIC_CONVENTIONS[m] for m in spec.metrics},
                        "metric_summary": {m: METRIC_SUMMARY[m] for m in spec.metrics}},
    }
    # Shards started together may all get here: each writes whole, the last one stays.
    atomic_write_text(meta_path, json.dumps(meta, indent=2, default=str) + "\n")


def _conversions(converted: dict[str, str], images: ImageSet) -> dict[str, Any]:
    """run.json's record of the images converted to the model's shape: {"converted": {id: "WxH MODE"},
    "converted_to": "WxH MODE"}, or nothing when every file was at the model's shape."""
    if not converted:
        return {}
    return {"converted": dict(converted), "converted_to": describe_shape(tuple(images.images.shape[1:]))}


def _check_resume(out: Path, previous: dict[str, Any], config: dict[str, Any], images: ImageSet,
                  hashes: dict[str, str], inputs: dict[str, dict[str, str]]) -> None:
    """Refuse to resume into a folder whose run differs (config, code, an image's or an input file's content);
    add images new to the run to its run.json, so that run.json describes the rows on disk."""
    ids = images.ids
    check_same_run(out, previous["config"], config)
    known = previous["images"].get("sha256", {})
    changed = [i for i in ids if i in known and known[i] != hashes[i]]
    if changed:
        raise UsageError(f"--out {out}: image {changed[0]!r} differs from the one its rows were computed on "
                         f"({len(changed)} changed); use another --out, or delete the folder to recompute")
    recorded = previous.get("inputs") if isinstance(previous.get("inputs"), dict) else {}  # none before hashes
    for what, now in inputs.items():
        before = recorded.get(what)
        then = before.get("sha256") if isinstance(before, dict) else before
        if before is not None and then != now["sha256"]:
            raise UsageError(f"--out {out}: {what} {now['path']} changed since these rows were computed (content "
                             f"{then} then, {now['sha256']} now); use another --out, or restore the file")
    listed = list(previous["images"]["ids"])
    if set(ids) - set(listed) or not known or set(inputs) - set(recorded):  # new images or inputs, an older run.json
        converted = {**images.converted, **previous["images"].get("converted", {})}
        previous["images"] = {**previous["images"], "ids": listed + [i for i in ids if i not in listed],
                              "sha256": {**hashes, **known}, **_conversions(converted, images)}
        previous["inputs"] = {**inputs, **recorded}
        atomic_write_text(out / "run.json", json.dumps(previous, indent=2, default=str) + "\n")


def image_hash(image: Tensor) -> str:
    """sha256 (first 16 hex digits) of an image as the model sees it: float32, after loading and resizing."""
    return hashlib.sha256(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()[:16]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
