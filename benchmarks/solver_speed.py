"""Speed of the solvers against the bare network (the eager floor) and deepinv's DPS, in one run.

For one model, one batch of images and one operator it measures, per image and per step:
  floor      the network's forward + backward w.r.t. x_t alone (what any DPS step must pay), eager
  dps        ipbench's `dps` (and the other solvers), eager
  compiled   ipbench's `dps` on a torch.compile'd network (`bench run --compile`), and its largest
             difference from the eager output
  deepinv    deepinv.sampling.DPS on the same network through ScoreModelDenoiser, with its defaults
             (float64 state) and with float32
and the PSNR of dps and deepinv's DPS at the same number of steps. Ratios are against the floor
measured in the same run. Example:

    python benchmarks/solver_speed.py --model fashion32 --steps 50 --batch-size 8 --out results/solver_speed.md
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ipbench.benchmark.runner import CountingModel, resolve_device
from ipbench.benchmark.seeding import measurement_generator, solver_generator
from ipbench.data import load_images
from ipbench.models import load_model
from ipbench.models.compile import CompiledModel
from ipbench.operators import Operator, measure
from ipbench.results.metrics import psnr
from ipbench.solvers import SOLVERS


def timed(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    """Median wall time of `repeats` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion32")
    parser.add_argument("--images", default=None)
    parser.add_argument("--op", default="inpaint-box")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solvers", default="dps,score-ald,ddnm,sdedit,ddpm,tweedie,tikhonov,blur")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-deepinv", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="also write the report (Markdown) here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = load_model(args.model, device)
    images = load_images(args.images or model.default_image_set, model.image_shape, args.batch_size)
    x = images.images.to(device)
    op = Operator.create(args.op)
    mgens = [measurement_generator(0, i, op.name, device) for i in images.ids]
    physics = op.build(model.image_shape, mgens, device)
    y = measure(physics, x, mgens)
    n, steps = x.shape[0], args.steps
    gens = lambda name: [solver_generator(0, i, op.name, name, device) for i in images.ids]  # noqa: E731

    # The eager floor: one forward with grad w.r.t. x_t and one backward per step, nothing else.
    x_t = torch.randn(x.shape, generator=torch.Generator(device=device).manual_seed(0), device=device)
    t = torch.full((n,), model.num_timesteps // 2, device=device, dtype=torch.long)

    def floor() -> None:
        for _ in range(steps):
            xv = x_t.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(model.eps(xv, t).square().sum(), xv)

    lines = []
    floor_s, _ = timed(floor, args.repeats, device)
    per_step_floor = floor_s / steps / n
    lines.append(f"| network forward+backward (eager floor) | {per_step_floor * 1e3:.3f} | 1.00 | | |")

    results = {}
    for name in args.solvers.split(","):
        solver = SOLVERS.get(name).create({"steps": str(steps)} if "steps" in {p.name for p in SOLVERS.get(name).params()} else {})
        counted = CountingModel(model)
        seconds, x_hat = timed(lambda: solver.solve(y, physics, counted, gens(name)), args.repeats, device)
        nfe = counted.nfe // (args.repeats + 1)
        results[name] = x_hat
        per_step = seconds / max(nfe, 1) / n
        lines.append(f"| ipbench {name} ({nfe} NFE) | {per_step * 1e3:.3f} | {per_step / per_step_floor:.2f} | "
                     f"{seconds / n:.3f} | {psnr(x_hat.clamp(0, 1), x).mean():.2f} |")

    if not args.no_compile and "dps" in results:
        compiled = CompiledModel(model)
        dps = SOLVERS.get("dps").create({"steps": str(steps)})
        seconds, x_c = timed(lambda: dps.solve(y, physics, compiled, gens("dps")), args.repeats, device)
        diff = float((x_c - results["dps"]).abs().max())
        per_step = seconds / steps / n
        lines.append(f"| ipbench dps, compiled network (max diff to eager {diff:.1e}) | {per_step * 1e3:.3f} | "
                     f"{per_step / per_step_floor:.2f} | {seconds / n:.3f} | {psnr(x_c.clamp(0, 1), x).mean():.2f} |")

    if not args.no_deepinv:
        for dtype in ("float64", "float32"):
            solver = SOLVERS.get("deepinv-dps").create({"num_steps": str(steps), "dtype": dtype})
            seconds, x_d = timed(lambda: solver.solve(y, physics, model, gens("deepinv-dps")), max(1, args.repeats - 1), device)
            per_step = seconds / steps / n
            label = "defaults (float64 state)" if dtype == "float64" else "float32"
            lines.append(f"| deepinv DPS, {label} | {per_step * 1e3:.3f} | {per_step / per_step_floor:.2f} | "
                         f"{seconds / n:.3f} | {psnr(x_d.clamp(0, 1), x).mean():.2f} |")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    report = "\n".join([
        f"Solver speed: model `{args.model}` {tuple(model.image_shape)}, operator `{args.op}`, batch {n}, "
        f"{steps} steps, {where}, torch {torch.__version__}, {datetime.now(timezone.utc):%Y-%m-%d}.",
        "Median of the timed repeats; ratio = per-step time / eager floor per-step time (same run).", "",
        "| what | ms / image / step | ratio to floor | s / image | PSNR |", "|---|---|---|---|---|", *lines, ""])
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
