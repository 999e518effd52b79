"""Speed of the solvers against their own floor (the network alone) and deepinv's DPS, in one run.

For one model, one batch of images and one operator it measures, per image:
  forward floor   `steps` network forwards alone (what a step of a gradient-free solver must pay), eager
  fwd+bwd floor   `steps` forwards with grad w.r.t. x_t plus the backward (what a DPS-type step pays)
  compiled floor  the same through torch.compile'd network (`bench run --compile`)
  each solver     at `--steps` (every solver with a `steps` field), eager; its own floor is its counted
                  network calls priced at the floors of the same repeat: NFE_forward-only x forward +
                  NFE_backward x (forward + backward), so "ratio to own floor" 1.00 means the solver costs
                  nothing beyond its network calls
  dps, compiled   ipbench's `dps` on the compiled network, with its differences from eager dps
  deepinv         deepinv.sampling.DPS on the same network through ScoreModelDenoiser, with its defaults
                  (float64 state) and with float32
and the PSNR of each. The timings are interleaved: every repeat runs each
candidate once (in a shuffled order), so that a machine that slows down or speeds up during the run (other jobs, clock
changes) moves all of them alike; a ratio is the median over repeats of (candidate / floor of the same
repeat). Example:

    python benchmarks/solver_speed.py --model fashion32 --steps 50 --batch-size 8 --repeats 7 --out results/solver_speed.md
"""
from __future__ import annotations

import argparse
import math
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


class BackwardCountingModel(CountingModel):
    """CountingModel that also counts the images whose eps output a backward pass went through."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__(inner)
        self.backward_images = 0

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = super().eps(x_t, t)
        if out.requires_grad:
            def count(grad: torch.Tensor, images: int = x_t.shape[0]) -> None:
                self.backward_images += images
            out.register_hook(count)
        return out


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
    parser.add_argument("--solvers", default="all", help="comma list, or all (every registered one but deepinv-dps)")
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

    # The floors: `steps` network calls on the batch and nothing else, forward only or forward + backward.
    x_t = torch.randn(x.shape, generator=torch.Generator(device=device).manual_seed(0), device=device)
    t = torch.full((n,), model.num_timesteps // 2, device=device, dtype=torch.long)

    def floor(network: torch.nn.Module, backward: bool = True) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            for _ in range(steps):
                if not backward:
                    with torch.no_grad():
                        out = network.eps(x_t, t)
                    continue
                xv = x_t.detach().requires_grad_(True)
                (out,) = torch.autograd.grad(network.eps(xv, t).square().sum(), xv)
            return out
        return run

    def solve(name: str, network: torch.nn.Module, params: dict[str, str]) -> Callable[[], tuple[torch.Tensor, int, int]]:
        solver = SOLVERS.get(name).create(params)

        def run() -> tuple[torch.Tensor, int, int]:
            counted = BackwardCountingModel(network)
            x_hat = solver.solve(y, physics, counted, gens(name))
            return x_hat, counted.images // n, counted.backward_images // n  # per image
        return run

    forward_floor, backward_floor = "network forward (eager floor)", "network forward+backward (eager floor)"
    candidates: dict[str, Callable[[], Any]] = {forward_floor: floor(model, backward=False),
                                                backward_floor: floor(model)}
    if compiled is not None:
        candidates["network forward+backward, compiled"] = floor(compiled)
    names = [m for m in SOLVERS.names() if m != "deepinv-dps"] if args.solvers == "all" else args.solvers.split(",")
    for name in names:
        has_steps = "steps" in {p.name for p in SOLVERS.get(name).params()}
        candidates[f"ipbench {name}"] = solve(name, model, {"steps": str(steps)} if has_steps else {})
    if compiled is not None and "dps" in names:
        candidates["ipbench dps, compiled network"] = solve("dps", compiled, {"steps": str(steps)})
    if not args.no_deepinv:
        for dtype, label in (("float64", "defaults (float64 state)"), ("float32", "float32")):
            candidates[f"deepinv DPS, {label}"] = solve("deepinv-dps", model, {"num_steps": str(steps), "dtype": dtype})

    times, results = interleaved(candidates, args.repeats, device)
    lines = []
    for name, seconds in times.items():
        result = results[name]
        if not isinstance(result, tuple):  # a floor
            per_call = statistics.median(seconds) / steps / n
            lines.append(f"| {name} | {steps} | {per_call * 1e3:.3f} | | | |")
            continue
        x_hat, nfe, backward = result
        # own floor of each repeat: its forward-only calls at the forward floor, the others at forward+backward
        own = [((nfe - backward) * f + backward * b) / steps
               for f, b in zip(times[forward_floor], times[backward_floor])]
        ratio = statistics.median(s / o for s, o in zip(seconds, own)) if nfe else math.nan
        per_call = statistics.median(seconds) / max(nfe, 1) / n
        lines.append(f"| {name} | {nfe} ({backward} with backward) | {per_call * 1e3:.3f} | "
                     f"{'-' if math.isnan(ratio) else f'{ratio:.3f}'} | {statistics.median(seconds) / n:.3f} | "
                     f"{psnr(x_hat.clamp(0, 1), x).mean():.2f} |")

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
        f"{args.repeats} interleaved repeats; time = median; ratio to own floor = median over repeats of (solver time / "
        "its counted network calls priced at the eager floors of the same repeat: forward-only calls at the forward "
        "floor, calls with a backward through the network at the forward+backward floor).", "",
        "| what | NFE / image | ms / image / network call | ratio to own floor | s / image | PSNR |",
        "|---|---|---|---|---|---|", *lines, "",
        *[f"- {note}" for note in notes], ""])
    publish(report, args.out)


if __name__ == "__main__":
    main()
