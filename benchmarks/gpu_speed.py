"""DPS at GPU speed: ipbench's DPS on the FFHQ-256 network under each switch combination, against deepinv's DPS.

The network is deepinv's DiffUNet in its FFHQ configuration (the ADM of Choi et al. 2021, 128 channels, the
network of the DPS paper's FFHQ experiments), random weights unless --weights names a checkpoint (e.g.
diffusion_ffhq_10m.pt). For each switch combination of ipbench.models.acceleration and each batch size it
runs ipbench's `dps` (--steps, default 1000, the paper's count) once after a 3-step warm-up (which also
compiles and records the CUDA graphs), and reports:
  s / image     wall time of the DPS call / batch size
  peak GiB      torch.cuda.max_memory_reserved during the call (GPU only): reserved, not allocated, so that
                a CUDA graph's private memory pool counts
  TFLOP/s       the network's counted FLOPs (torch.utils.flop_counter, matmul/conv/attention only) per
                forward + input-gradient, x steps x batch, / wall time; and that as % of --peak-tflops
  x deepinv     deepinv's DPS time per image and network evaluation at batch 1 / this row's per step
  dPSNR         mean per-image PSNR difference to strict fp32 on the same measurements and noise
                (ipbench seeds per image, so image i gets the same y and draws at every batch size)
The fp32 reference runs with TF32 off (strict float32; PyTorch's own default has cuDNN TF32 on) at one
batch size, --reference-batch-size. deepinv's DPS is ipbench's `deepinv-dps` solver (deepinv.sampling.DPS,
measured at batch 1, the batch a deepinv user solving one measurement gets) on the same network, eager
and fp32, under PyTorch's default TF32 flags, i.e. what a deepinv user gets.

    python benchmarks/gpu_speed.py --out results/gpu/gpu_speed-h100.md              # H100: everything
    python benchmarks/gpu_speed.py --combos bf16 bf16+channels_last+compile --batch-sizes 8 32
    python benchmarks/gpu_speed.py --device cpu --steps 3 --batch-sizes 1 2 --image-size 64   # smoke test

Duration on an H100: with --steps 100, three combinations at batch sizes 1 and 32 (two of them compiled
cold, about two minutes each) took 345 s; one compiled combination at batch 32 with --steps 1000 took
282 s. A DPS step costs the same at every step, so --steps 100 gives the ms per step that the 1000-step
figure is (measured: 5.09 ms against 5.087 s). Results and their reading: results/gpu_speed.md.
"""
from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ipbench.models.counting import CountingModel
from ipbench.device import resolve_device
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.models.acceleration import Acceleration, accelerate, set_tf32
from ipbench.models.base import ScoreModel
from ipbench.models.adm import ffhq256_network
from ipbench.operators import Operator, measure
from ipbench.results.metrics import psnr
from ipbench.solvers import SOLVERS
from ipbench.results.report import publish

COMBOS = ["fp32+tf32", "bf16", "bf16+channels_last", "bf16+channels_last+compile", "bf16+channels_last+cuda_graphs",
          "bf16+channels_last+cuda_graphs+layout_opt"]
TARGETS = ("under 2 s per image on an H100 in bf16 at the best batch size; at least 5x deepinv's DPS "
           "throughput at batch 1; no more than 0.1 dB PSNR lost against float32")


def count_flops(model: ScoreModel, device: torch.device) -> tuple[float, float]:
    """FLOPs of one forward and of one forward + gradient w.r.t. x_t (what a DPS step runs), batch 1.

    autograd.grad does not run under FlopCounterMode, so the weights are frozen and .backward() used:
    that is the same work, as autograd.grad(.., x_t) skips the weight gradients too."""
    x = torch.randn((1, *model.image_shape), device=device, requires_grad=True)
    t = torch.full((1,), model.num_timesteps // 2, device=device, dtype=torch.long)
    with FlopCounterMode(display=False) as forward:
        model.eps(x, t)
    saved = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as both:
            model.eps(x, t).square().sum().backward()
    finally:
        for p, flag in zip(model.parameters(), saved):
            p.requires_grad_(flag)
    return float(forward.get_total_flops()), float(both.get_total_flops())


@dataclass
class Row:
    label: str
    batch: int
    seconds: float | None = None  # per image
    peak_gib: float | None = None
    psnr: Tensor | None = None  # per image
    x_hat: Tensor | None = None
    error: str | None = None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_solve(solve: Callable[[], Any], batch: int, device: torch.device) -> tuple[float, float | None, Any]:
    """(s / image, peak GiB or None, what `solve` returned) of one call."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    x_hat = solve()
    sync(device)
    seconds = (time.perf_counter() - start) / batch
    peak = torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None
    return seconds, peak, x_hat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=1000, help="DPS steps (the paper: 1000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--combos", nargs="+", default=None,
                        help="switch combinations, precision[+channels_last][+compile][+tf32] [default: "
                             f"{' '.join(COMBOS)}; on CPU without the compile ones]; add fp32 to time strict fp32 "
                             "at every batch size")
    parser.add_argument("--reference-batch-size", type=int, default=8,
                        help="batch size of the strict-fp32 reference run (clipped to the largest --batch-sizes)")
    parser.add_argument("--image-size", type=int, default=256, help="multiple of 32 (below 256: smoke tests only)")
    parser.add_argument("--weights", default=None, help="DiffUNet checkpoint [default: random weights, speed only]")
    parser.add_argument("--images", default="photos", help="image set or folder (tiled to the largest batch)")
    parser.add_argument("--op", default="inpaint-box")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's peak for the %% column [default: 989, H100 SXM dense bf16]")
    parser.add_argument("--deepinv-dtypes", nargs="*", default=["float64", "float32"],
                        help="deepinv DPS state dtypes to time (float64 is its default); none to skip")
    parser.add_argument("--out", default=None, help="also write the report here (Markdown), e.g. results/gpu/...")
    args = parser.parse_args()
    if args.image_size % 32 or args.image_size < 32:
        raise SystemExit(f"--image-size {args.image_size}: DiffUNet needs a multiple of 32")

    device = resolve_device(args.device)
    torch_default_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    set_tf32(False)  # strict fp32 unless a combination says tf32
    try:
        settings = [Acceleration.parse(c) for c in args.combos or COMBOS]
    except UsageError as exc:
        raise SystemExit(f"--combos {exc}") from None
    if args.combos is None and device.type != "cuda":
        settings = [s for s in settings if not s.compile]
    ref_batch = min(args.reference_batch_size, max(args.batch_sizes))
    notes: list[str] = []
    if args.combos is None and device.type != "cuda":
        notes.append("compile combinations skipped on CPU by default (minutes of C++ compilation per shape); "
                     "pass --combos to include them")

    model = ffhq256_network(args.weights, args.image_size, args.seed, device)
    fwd_flops, step_flops = count_flops(model, device)

    # Images tiled to the largest batch; ids made unique so each copy gets its own measurement and noise.
    largest = max(*args.batch_sizes, ref_batch)
    base = load_images(args.images, model.image_shape)
    ids = [f"{base.ids[i % len(base)]}~{i // len(base)}" for i in range(largest)]
    truth = base.images[[i % len(base) for i in range(largest)]].to(device)
    op = Operator.create(args.op)
    problems = {}
    for b in sorted({*args.batch_sizes, ref_batch, 1}):
        mgens = [measurement_generator(args.seed, i, op.name, device) for i in ids[:b]]
        physics = op.build(model.image_shape, mgens, device)
        problems[b] = physics, measure(physics, truth[:b], mgens)

    def run_dps(fast: ScoreModel, b: int, steps: int) -> Tensor:
        physics, y = problems[b]
        gens = [solver_generator(args.seed, i, op.name, "dps", device) for i in ids[:b]]
        counted = CountingModel(fast)
        x_hat = SOLVERS.get("dps").create({"steps": steps}).solve(y, physics, counted, gens)
        assert counted.nfe == min(steps, model.num_timesteps), counted.nfe
        return x_hat

    def run_deepinv(steps: int, dtype: str) -> tuple[Tensor, int]:
        physics, y = problems[1]
        gens = [solver_generator(args.seed, ids[0], op.name, "deepinv-dps", device)]
        counted = CountingModel(model)
        solver = SOLVERS.get("deepinv-dps").create({"num_steps": steps, "dtype": dtype})
        return solver.solve(y, physics, counted, gens), counted.nfe

    def measure_row(setting: Acceleration, b: int) -> Row:
        row = Row(setting.label(), b)
        if setting.compile:
            torch._dynamo.reset()  # a fresh cache: combos x batch sizes would pass dynamo's recompile limit
        try:
            with accelerate(model, setting.precision, setting.channels_last, setting.compile, setting.tf32,
                            setting.cuda_graphs) as fast:
                run_dps(fast, b, 3)  # warm-up: compiles, records the CUDA graphs (3rd call), allocates
                row.seconds, row.peak_gib, row.x_hat = timed_solve(partial(run_dps, fast, b, args.steps), b, device)
            row.psnr = psnr(row.x_hat.clamp(0, 1), truth[:b]).cpu()
            row.x_hat = row.x_hat.cpu()
        except torch.cuda.OutOfMemoryError as exc:
            row.error = f"out of memory ({str(exc).splitlines()[0][:80]})"
        except Exception as exc:  # a failing combination is a result; the others still run
            row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"  {row.label} batch {b}: " + (row.error or f"{row.seconds:.3f} s/image"), flush=True)
        return row

    started = time.perf_counter()
    print(f"reference: fp32 (strict) at batch {ref_batch}", flush=True)
    reference = measure_row(Acceleration("fp32"), ref_batch)
    if reference.error:
        raise SystemExit(f"the fp32 reference failed: {reference.error}")
    rows = [reference]
    for setting in settings:
        for b in args.batch_sizes:
            if setting == Acceleration("fp32") and b == ref_batch:
                continue
            rows.append(measure_row(setting, b))

    deepinv_rows = []
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = torch_default_tf32
    for dtype in args.deepinv_dtypes:
        run_deepinv(2, dtype)  # warm-up
        seconds, peak, (x_d, nfe) = timed_solve(partial(run_deepinv, args.steps, dtype), 1, device)
        deepinv_rows.append((dtype, nfe, seconds, peak, float(psnr(x_d.clamp(0, 1), truth[:1]))))
        print(f"  deepinv DPS {dtype}: {seconds:.3f} s/image", flush=True)
    set_tf32(False)
    total = time.perf_counter() - started

    report = render(args, device, ref_batch, fwd_flops, step_flops, rows, deepinv_rows, notes, total)
    publish(report, args.out)


def render(args: argparse.Namespace, device: torch.device, ref_batch: int, fwd_flops: float, step_flops: float,
           rows: list[Row], deepinv_rows: list[tuple[str, int, float, float | None, float]], notes: list[str],
           total: float) -> str:
    """The Markdown report; rows[0] is the fp32 reference."""
    import deepinv

    on_gpu = device.type == "cuda"
    where = (f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
             if on_gpu else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    weights = (f"weights {args.weights}" if args.weights else
               "RANDOM weights, zero-initialised layers included (speed only; PSNRs are not meaningful)")
    # deepinv's s / image per network evaluation at batch 1: its NFE can differ from --steps by one
    deepinv_b1 = deepinv_rows[0][2] / deepinv_rows[0][1] * args.steps if deepinv_rows else None
    gflop = step_flops / 1e9
    lines = [
        "# DPS at GPU speed" + ("" if on_gpu else
                                " -- NOT MEASURED ON A GPU (CPU smoke run: no number here is a GPU number)"),
        "",
        f"- device: {where}",
        f"- torch {torch.__version__}, deepinv {deepinv.__version__}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, total {total:.0f} s",
        "- network: deepinv DiffUNet, FFHQ configuration (128 channels, 1 res block, attention at 16 px), "
        f"{args.image_size}x{args.image_size}, {weights}",
        f"- DPS: ipbench `dps` defaults, {args.steps} steps, operator `{args.op}`, images `{args.images}` tiled, "
        f"seed {args.seed}",
        f"- network FLOPs (FlopCounterMode; matmul, conv, attention): forward {fwd_flops / 1e9:.1f} GFLOP, "
        f"forward + gradient w.r.t. x_t {gflop:.1f} GFLOP ({step_flops / fwd_flops:.2f}x forward: DPS needs no "
        f"weight gradients, so the 3x rule would overstate the work by {3 * fwd_flops / step_flops:.2f}x). "
        f"TFLOP/s uses the counted {gflop:.1f} GFLOP per image per step; at 100% of the peak below, "
        f"{args.steps} steps take {step_flops * args.steps / (args.peak_tflops * 1e12):.3g} s per image.",
        f"- peak used for %: {args.peak_tflops:g} TFLOP/s (--peak-tflops; 989 = H100 SXM dense bf16; the bf16 "
        "peak is used for every row, fp32/TF32 rows included)",
        f"- reference: strict fp32 (TF32 off) at batch {ref_batch}; dPSNR = mean over the images it shares with "
        "the reference of (PSNR - reference PSNR), same measurements and noise (rows at another batch size also "
        "carry the network's own float-level batch dependence)",
        f"- deepinv: ipbench `deepinv-dps` (deepinv.sampling.DPS, {args.steps} steps), "
        "fp32 eager network, PyTorch default TF32 flags, batch 1",
        *[f"- note: {n}" for n in notes],
        "",
        f"| switches | batch | ms / image / step (= s / image at 1000 steps) | s / image ({args.steps} steps) | "
        f"peak GiB | TFLOP/s | % of peak | x deepinv (b1, {deepinv_rows[0][0] if deepinv_rows else '-'}) | PSNR | "
        "dPSNR vs fp32 (images) | max abs diff vs fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    reference = rows[0]
    for row in rows:
        if row.error:
            lines.append(f"| {row.label} | {row.batch} | {row.error} | | | | | | | | |")
            continue
        tflops = step_flops * args.steps / row.seconds / 1e12
        common = min(row.batch, ref_batch)
        dpsnr = float((row.psnr[:common] - reference.psnr[:common]).mean())
        maxdiff = float((row.x_hat[:common] - reference.x_hat[:common]).abs().max())
        speedup = f"{deepinv_b1 / row.seconds:.1f}" if deepinv_b1 else "-"
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        lines.append(f"| {row.label} | {row.batch} | {1000 * row.seconds / args.steps:.2f} | {row.seconds:.3f} | "
                     f"{peak} | "
                     f"{tflops:.3g} | {100 * tflops / args.peak_tflops:.3g} | {speedup} | "
                     f"{float(row.psnr.mean()):.2f} | {dpsnr:+.3f} ({common}) | {maxdiff:.1e} |")
    if deepinv_rows:
        lines += ["", "| deepinv DPS state dtype | batch | NFE | ms / step | s / image | peak GiB | TFLOP/s | PSNR |",
                  "|---|---|---|---|---|---|---|---|"]
        for dtype, nfe, seconds, peak, value in deepinv_rows:
            lines.append(f"| {dtype} | 1 | {nfe} | {1000 * seconds / nfe:.2f} | {seconds:.3f} | "
                         f"{f'{peak:.1f}' if peak is not None else 'n/a'} | "
                         f"{step_flops * nfe / seconds / 1e12:.3g} | {value:.2f} |")
    lines += ["", f"Targets (issue \"DPS at GPU speed\"): {TARGETS}.", ""]
    lines += targets(args, on_gpu, rows, deepinv_b1, ref_batch)
    lines += ["", "Defaults chosen from these measurements: results/gpu_speed.md.", ""]
    return "\n".join(lines)


def targets(args: argparse.Namespace, on_gpu: bool, rows: list[Row], deepinv_b1: float | None,
            ref_batch: int) -> list[str]:
    """One line per target of the issue, with its verdict where this run can give one."""
    reference, ok = rows[0], [r for r in rows if not r.error]
    bf16 = [r for r in ok if r.label.startswith("bf16")]
    full_size = on_gpu and args.image_size == 256
    scale = 1000 / args.steps  # every DPS step runs the same work, so time is linear in the step count
    projected = "" if args.steps == 1000 else f", projected from {args.steps} steps"
    out = []
    if bf16:
        best = min(bf16, key=lambda r: r.seconds)
        verdict = ("met" if best.seconds * scale < 2 else "NOT met") if full_size else \
            "not applicable (not 256 px on a GPU)"
        out.append(f"- < 2 s / image at 1000 steps, bf16, best batch: {best.seconds * scale:.3f} s{projected} "
                   f"({best.label}, batch {best.batch}): "
                   f"{verdict}")

        def lost(r: Row) -> float:
            common = min(r.batch, ref_batch)
            return float((r.psnr[:common] - reference.psnr[:common]).mean())

        worst = min(bf16, key=lost)
        verdict = "not meaningful (random weights)" if args.weights is None else \
            ("met" if lost(worst) >= -0.1 else "NOT met")
        out.append(f"- <= 0.1 dB lost in bf16: worst dPSNR {lost(worst):+.3f} dB ({worst.label}, batch {worst.batch}): "
                   f"{verdict}")
    if deepinv_b1 and ok:
        b1 = [r for r in ok if r.batch == 1]
        if b1:
            best = min(b1, key=lambda r: r.seconds)
            verdict = ("met" if deepinv_b1 / best.seconds >= 5 else "NOT met") if on_gpu else "not applicable (CPU)"
            out.append(f"- >= 5x deepinv at batch 1: {deepinv_b1 / best.seconds:.1f}x ({best.label}): {verdict}")
        best = min(ok, key=lambda r: r.seconds)
        out.append(f"- (throughput at the best batch against deepinv at batch 1: {deepinv_b1 / best.seconds:.1f}x, "
                   f"{best.label}, batch {best.batch})")
    return out


if __name__ == "__main__":
    main()
