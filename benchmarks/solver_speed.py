"""Speed of the solvers against the bare network (the eager floor) and deepinv's DPS, in one run.

For one model, one batch of images and one operator it measures, per image and per step:
  floor           the network's forward + backward w.r.t. x_t alone (what any DPS step must pay), eager
  compiled floor  the same through torch.compile'd network (`bench run --compile`)
  dps             ipbench's `dps` (and the other solvers), eager
  dps, compiled   ipbench's `dps` on the compiled network, with its differences from eager dps
  deepinv         deepinv.sampling.DPS on the same network through ScoreModelDenoiser, with its defaults
                  (float64 state) and with float32
and the PSNR of each at the same number of steps. The timings are interleaved: every repeat runs each
candidate once (in a shuffled order), so that a machine that slows down or speeds up during the run (other jobs, clock
changes) moves all of them alike; a ratio is the median over repeats of (candidate / floor of the same
repeat). Example:

    python benchmarks/solver_speed.py --model fashion32 --steps 50 --batch-size 8 --repeats 7 --out results/solver_speed.md
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from ipbench.models.counting import CountingModel
from ipbench.device import resolve_device
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.data import load_images
from ipbench.models import load_model
from ipbench.models.compile import CompiledModel
from ipbench.operators import Operator, measure
from ipbench.results.metrics import psnr
from ipbench.solvers import SOLVERS
from ipbench.results.report import publish


def interleaved(candidates: dict[str, Callable[[], Any]], repeats: int, device: torch.device
                ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times of `repeats` rounds, each round calling every candidate once, in a fresh random order (so
    that no candidate always follows the same one), after one warm-up call each (which also compiles); and
    each candidate's last result."""
    results = {name: fn() for name, fn in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = random.Random(0)
    for _ in range(repeats):
        for name in order.sample(list(candidates), len(candidates)):
            fn = candidates[name]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            results[name] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion32")
    parser.add_argument("--images", default=None)
    parser.add_argument("--op", default="inpaint-box")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--solvers", default="dps,score-ald,score-ald-ddpm,ddnm,sdedit,ddpm,tweedie,tikhonov,hole-fill,gaussian-filter")
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
    compiled = None if args.no_compile else CompiledModel(model)

    def gens(name: str) -> list[torch.Generator]:
        return [solver_generator(0, i, op.name, name, device) for i in images.ids]

    # The eager floor: one forward with grad w.r.t. x_t and one backward per step, nothing else.
    x_t = torch.randn(x.shape, generator=torch.Generator(device=device).manual_seed(0), device=device)
    t = torch.full((n,), model.num_timesteps // 2, device=device, dtype=torch.long)

    def floor(network: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            for _ in range(steps):
                xv = x_t.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(network.eps(xv, t).square().sum(), xv)
            return grad
        return run

    def solve(name: str, network: torch.nn.Module, params: dict[str, str]) -> Callable[[], tuple[torch.Tensor, int]]:
        solver = SOLVERS.get(name).create(params)

        def run() -> tuple[torch.Tensor, int]:
            counted = CountingModel(network)
            return solver.solve(y, physics, counted, gens(name)), counted.images // n  # NFE per image
        return run

    candidates: dict[str, Callable[[], Any]] = {"network forward+backward (eager floor)": floor(model)}
    if compiled is not None:
        candidates["network forward+backward, compiled"] = floor(compiled)
    for name in args.solvers.split(","):
        has_steps = "steps" in {p.name for p in SOLVERS.get(name).params()}
        candidates[f"ipbench {name}"] = solve(name, model, {"steps": str(steps)} if has_steps else {})
    if compiled is not None and "dps" in args.solvers.split(","):
        candidates["ipbench dps, compiled network"] = solve("dps", compiled, {"steps": str(steps)})
    if not args.no_deepinv:
        for dtype, label in (("float64", "defaults (float64 state)"), ("float32", "float32")):
            candidates[f"deepinv DPS, {label}"] = solve("deepinv-dps", model, {"num_steps": str(steps), "dtype": dtype})
    floor_name = next(iter(candidates))

    times, results = interleaved(candidates, args.repeats, device)
    floor_times = times[floor_name]
    lines = []
    for name, seconds in times.items():
        result = results[name]
        nfe = result[1] if isinstance(result, tuple) else steps
        per_step = statistics.median(seconds) / max(nfe, 1) / n
        ratio = statistics.median(s / f for s, f in zip(seconds, floor_times)) * steps / max(nfe, 1)
        label = name + (f" ({nfe} NFE)" if isinstance(result, tuple) else "")
        quality = f"{psnr(result[0].clamp(0, 1), x).mean():.2f}" if isinstance(result, tuple) else ""
        total = f"{statistics.median(seconds) / n:.3f}" if isinstance(result, tuple) else ""
        lines.append(f"| {label} | {per_step * 1e3:.3f} | {ratio:.3f} | {total} | {quality} |")

    notes = []
    if compiled is not None and "ipbench dps, compiled network" in results:
        eager_dps, compiled_dps = results["ipbench dps"][0], results["ipbench dps, compiled network"][0]
        again = solve("dps", model, {"steps": str(steps)})()[0]
        x_probe = x_t.detach().requires_grad_(True)
        eps_eager, eps_compiled = model.eps(x_probe, t), compiled.eps(x_probe, t)
        (g_eager,) = torch.autograd.grad(eps_eager.square().sum(), x_probe)
        (g_compiled,) = torch.autograd.grad(eps_compiled.square().sum(), x_probe)
        notes.append(
            "compiled against eager, largest absolute difference: one network call "
            f"{float((eps_compiled - eps_eager).detach().abs().max()):.1e} on eps (std ~1), "
            f"{float((g_compiled - g_eager).abs().max() / g_eager.abs().max()):.1e} on its gradient (relative to "
            f"its largest entry); after the whole {steps}-step DPS run {float((compiled_dps - eager_dps).abs().max()):.1e} "
            f"(mean {float((compiled_dps - eager_dps).abs().mean()):.1e}) on the [0, 1] image, where eager DPS run "
            f"twice differs by {float((again - eager_dps).abs().max()):.1e}")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    report = "\n".join([
        f"Solver speed: model `{args.model}` {tuple(model.image_shape)}, operator `{args.op}`, batch {n}, "
        f"{steps} steps, {where}, torch {torch.__version__}, {datetime.now(timezone.utc):%Y-%m-%d}.",
        f"{args.repeats} interleaved repeats; time = median; ratio = median over repeats of (time per step / eager "
        "floor time per step of the same repeat).", "",
        "| what | ms / image / step | ratio to floor | s / image | PSNR |", "|---|---|---|---|---|", *lines, "",
        *[f"- {note}" for note in notes], ""])
    publish(report, args.out)


if __name__ == "__main__":
    main()
