"""Speed of the solvers against their own floor (the network and the operator alone) and deepinv's DPS, in one run.

For one model, one batch of images and one operator (`--op NAME`, its parameters by `--param NAME=VALUE` in
`bench run`'s grammar) it measures, per image:
  forward floor   `steps` network forwards alone (what a step of a gradient-free solver must pay), eager
  fwd+bwd floor   `steps` forwards with grad w.r.t. x_t plus the backward (what a DPS-type step pays)
  compiled floor  the same through torch.compile'd network (`bench run --compile`)
  operator floors `steps` calls of the operator alone on the batch of images: A forward (no graph), A forward
                  with the backward of ||A(x)||^2 to x (what a gradient through A costs), and A^T on A(x)
                  where the operator has one
  each solver     at `--steps` (every solver with a `steps` field), eager, on a counting copy of the operator
                  (ipbench/operators/counting.py): its network calls counted as before (forward-only, and
                  with a backward through the network) and its operator calls counted per image: A forward-only,
                  A with gradient (a backward through A's output, or an A_vjp), A^T, the operator's own A^+ and
                  SVD. Its floor is its network calls priced at the network floors of the same repeat,
                  NFE_forward-only x forward + NFE_backward x (forward + backward), plus its operator calls
                  priced at the operator floors of the same repeat, A forward-only x A forward + A with gradient
                  x A forward+backward + A^T x A^T; "ratio to floor" 1.00 means the solver costs nothing beyond
                  its network and operator calls, and the ratio to the network floor alone is kept beside it
  dps, compiled   ipbench's `dps` on the compiled network, with its differences from eager dps
  deepinv         deepinv.sampling.DPS on the same network through ScoreModelDenoiser, with its defaults
                  (float64 state) and with float32
and the PSNR of each. A solver that does not apply to the operator (its `unsupported`) is listed as n/a with
its reason. The timings are interleaved: every repeat runs each candidate once (in a shuffled order), so that
a machine that slows down or speeds up during the run (other jobs, clock changes) moves all of them alike; a
ratio is the median over repeats of (candidate / floor of the same repeat).

Not priced (their cost stays in the solver's remainder above its floor): the operator's own A^+ and SVD calls
(counted and shown; CT's dense SVD is cached per geometry, so after the warm-up run it costs nothing), A^T
with a backward through its output, and deepinv's closed forms that bypass A (operators/counting.py says what
is not counted). An A call in a graph that no backward goes through is priced as a forward (JPEG's A computes
kornia's smooth codec beside libjpeg's value whenever its input requires grad, so such a call costs more).
The operator floors run on the true images; an operator whose cost depends on its input (JPEG's entropy
coding) may cost a solver's iterates somewhat differently. Examples:

    python benchmarks/solver_speed.py --model fashion32 --steps 50 --batch-size 8 --repeats 7 --out results/solver_speed.md
    python benchmarks/solver_speed.py --op jpeg --param quality=30 --steps 10 --batch-size 4 --repeats 3
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from ipbench.benchmark.spec import SolverEntry, apply_params
from ipbench.data import load_images
from ipbench.device import resolve_device
from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.compile import CompiledModel
from ipbench.models.counting import CountingModel
from ipbench.operators import Operator, measure
from ipbench.operators.counting import OperatorCounts, count_calls
from ipbench.results.metrics import psnr
from ipbench.results.report import publish
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.solvers import SOLVERS


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


@dataclass
class Outcome:
    """One solver run: its reconstruction, network calls per image (all, with a backward) and operator calls."""

    x_hat: torch.Tensor
    nfe: int
    backward: int
    operator: OperatorCounts


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


def median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def shown(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion32")
    parser.add_argument("--images", default=None)
    parser.add_argument("--op", default="inpaint-box", help="an operator name (`bench list`), e.g. jpeg, ct, mri")
    parser.add_argument("--param", action="append", default=[], metavar="[TARGET.]NAME=VALUE",
                        help="a parameter of the operator or of a selected solver, in `bench run --param`'s grammar "
                             "(quality=30, jpeg.quality=30, dps.scale=0.5); repeatable")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--solvers", default="all", help="comma list, or all (every registered one but deepinv-dps)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-deepinv", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--note", default=None, help="a line on the conditions of the measurement, for the report")
    parser.add_argument("--out", default=None, help="also write the report (Markdown) here")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = "python " + shlex.join(["benchmarks/solver_speed.py", *given])
    try:
        return measure_speed(args, command)
    except UsageError as exc:
        raise SystemExit(f"error: {exc}") from None


def measure_speed(args: argparse.Namespace, command: str) -> int:
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.steps < 1 or args.batch_size < 1 or args.repeats < 1:
        raise UsageError("--steps, --batch-size and --repeats must be at least 1")
    steps = args.steps
    names = ([m for m in SOLVERS.names() if m != "deepinv-dps"] if args.solvers == "all"
             else [SOLVERS.canonical(s.strip()) for s in args.solvers.split(",")])
    entries = [SolverEntry(SOLVERS.get(name).create(
        {"steps": str(steps)} if "steps" in {p.name for p in SOLVERS.get(name).params()} else {}), name)
        for name in names]
    entries, (operator,) = apply_params(entries, [Operator.create(args.op)], args.param)

    device = resolve_device(args.device)
    model = load_model(args.model, device)
    images = load_images(args.images or model.default_image_set, model.image_shape, args.batch_size)
    x = images.images.to(device)
    mgens = [measurement_generator(0, i, operator.name, device) for i in images.ids]
    physics = operator.build(model.image_shape, mgens, device)
    y = measure(physics, x, mgens)
    n, like = x.shape[0], torch.zeros_like(x)
    compiled = None if args.no_compile else CompiledModel(model)

    def gens(name: str) -> list[torch.Generator]:
        return [solver_generator(0, i, operator.name, name, device) for i in images.ids]

    # The network floors: `steps` network calls on the batch and nothing else, forward only or forward + backward.
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

    # The operator floors: `steps` calls of the operator alone on the batch (module docstring).
    with torch.no_grad():
        clean = physics.A(x)
    with torch.enable_grad():
        probe = physics.A(x.detach().requires_grad_(True))
    differentiable = isinstance(probe, torch.Tensor) and probe.requires_grad
    has_adjoint = hasattr(physics, "A_adjoint")

    def operator_floor(kind: str) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            for _ in range(steps):
                if kind == "backward":
                    xv = x.detach().requires_grad_(True)
                    (out,) = torch.autograd.grad(physics.A(xv).square().sum(), xv)
                    continue
                with torch.no_grad():
                    out = physics.A(x) if kind == "forward" else physics.A_adjoint(clean)
            return out
        return run

    def solve(solver: Any, network: torch.nn.Module) -> Callable[[], Outcome]:
        def run() -> Outcome:
            counted = BackwardCountingModel(network)
            op, counts = count_calls(physics)
            x_hat = solver.solve(y, op, counted, gens(solver.name))
            return Outcome(x_hat, counted.images // n, counted.backward_images // n, counts)  # network: per image
        return run

    forward_floor, backward_floor = "network forward (eager floor)", "network forward+backward (eager floor)"
    a_forward, a_backward, a_adjoint = "operator A forward", "operator A forward+backward", "operator A^T"
    candidates: dict[str, Callable[[], Any]] = {forward_floor: floor(model, backward=False),
                                                backward_floor: floor(model)}
    if compiled is not None:
        candidates["network forward+backward, compiled"] = floor(compiled)
    candidates[a_forward] = operator_floor("forward")
    if differentiable:
        candidates[a_backward] = operator_floor("backward")
    if has_adjoint:
        candidates[a_adjoint] = operator_floor("adjoint")
    not_applicable: dict[str, str] = {}

    def add(label: str, solver: Any, network: torch.nn.Module) -> None:
        solver.check_model(model)
        reason = solver.unsupported(physics, like)
        if reason:
            not_applicable[label] = reason
        else:
            candidates[label] = solve(solver, network)

    solvers = {entry.name: entry.solver for entry in entries}
    for name, solver in solvers.items():
        add(f"ipbench {name}", solver, model)
    if compiled is not None and "dps" in solvers and "ipbench dps" in candidates:
        candidates["ipbench dps, compiled network"] = solve(solvers["dps"], compiled)
    if not args.no_deepinv:
        for dtype, label in (("float64", "defaults (float64 state)"), ("float32", "float32")):
            add(f"deepinv DPS, {label}", SOLVERS.get("deepinv-dps").create({"num_steps": str(steps), "dtype": dtype}),
                model)

    times, results = interleaved(candidates, args.repeats, device)
    zeros = [0.0] * args.repeats
    unit = {kind: times.get(name, fallback) for kind, name, fallback in (
        ("forward", a_forward, zeros), ("backward", a_backward, times[a_forward]), ("adjoint", a_adjoint, zeros))}

    floor_lines, solver_lines = [], []
    for name, seconds in times.items():
        result = results[name]
        if not isinstance(result, Outcome):  # a floor
            floor_lines.append(f"| {name} | {steps} | {statistics.median(seconds) / steps / n * 1e3:.3f} |")
            continue
        nfe, backward, c = result.nfe, result.backward, result.operator
        per = {k: v / n for k, v in (("forward", c.forward_only), ("backward", c.with_gradient),
                                     ("adjoint", c.adjoint), ("dagger", c.dagger))}
        # the floors of each repeat: the network calls at the network floors, the operator calls at the operator's
        network = [((nfe - backward) * f + backward * b) / steps
                   for f, b in zip(times[forward_floor], times[backward_floor])]
        own = [(per["forward"] * f + per["backward"] * b + per["adjoint"] * a) / steps
               for f, b, a in zip(unit["forward"], unit["backward"], unit["adjoint"])]
        full = [w + o for w, o in zip(network, own)]
        ratio = median_or_nan([s / f for s, f in zip(seconds, full) if f > 0]) if any(full) else math.nan
        ratio_network = median_or_nan([s / w for s, w in zip(seconds, network)]) if nfe else math.nan
        share = median_or_nan([o / f for o, f in zip(own, full)]) if any(full) else math.nan
        calls = f"{per['forward']:g}, {per['backward']:g}"
        others = f"{per['adjoint']:g}, {per['dagger']:g}, {c.svd}"
        solver_lines.append(
            f"| {name} | {nfe} ({backward}) | {calls} | {others} | {statistics.median(network) / n * 1e3:.4g} | "
            f"{statistics.median(own) / n * 1e3:.4g} | {shown(share)} | {shown(ratio)} | {shown(ratio_network)} | "
            f"{statistics.median(seconds) / n:.3f} | {psnr(result.x_hat.clamp(0, 1), x).mean():.2f} |")
    solver_lines += [f"| {name} | n/a: {reason} |" + " |" * 9 for name, reason in not_applicable.items()]

    notes = []
    if "ipbench dps, compiled network" in results:
        eager_dps, compiled_dps = results["ipbench dps"].x_hat, results["ipbench dps, compiled network"].x_hat
        again = solve(solvers["dps"], model)().x_hat
        x_probe = x_t.detach().requires_grad_(True)
        eps_eager, eps_compiled = model.eps(x_probe, t), compiled.eps(x_probe, t)
        (g_eager,) = torch.autograd.grad(eps_eager.square().sum(), x_probe)
        (g_compiled,) = torch.autograd.grad(eps_compiled.square().sum(), x_probe)
        notes.append(
            "compiled against eager, largest absolute difference: one network call "
            f"{float((eps_compiled - eps_eager).detach().abs().max()):.1e} on eps (std ~1), "
            f"{float((g_compiled - g_eager).abs().max() / g_eager.abs().max()):.1e} on its gradient (relative to "
            f"its largest entry); after the whole {steps}-step DPS run "
            f"{float((compiled_dps - eager_dps).abs().max()):.1e} "
            f"(mean {float((compiled_dps - eager_dps).abs().mean()):.1e}) on the [0, 1] image, where eager DPS run "
            f"twice differs by {float((again - eager_dps).abs().max()):.1e}")
    if not differentiable:
        notes.append("A's output does not require grad here: A with gradient is priced at A forward")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    load = (f"- Load average (1 min) at the start and at the end: {load_before[0]:.2f}, {load_after[0]:.2f}, on "
            f"{os.cpu_count()} logical CPUs" if load_before and load_after else "- Load average: not available here")
    values = ", ".join(f"{k}={v}" for k, v in operator.params.items())
    report = "\n".join([
        f"Solver speed: model `{args.model}` {tuple(model.image_shape)}, operator `{operator.name}` ({values}), "
        f"batch {n}, {steps} steps, {where}, torch {torch.__version__}, {datetime.now(timezone.utc):%Y-%m-%d}.", "",
        f"- Command: `{command}`",
        *([f"- Note: {args.note}"] if args.note else []),
        load,
        f"- {args.repeats} interleaved repeats; time = median. A solver's floor = its counted network calls priced at "
        "the eager network floors of the same repeat (forward-only calls at the forward floor, calls with a backward "
        "through the network at the forward+backward floor) plus its counted operator calls priced at the operator "
        "floors of the same repeat (A forward-only at A forward, A with gradient at A forward+backward, A^T at A^T). "
        "Ratio to floor, to the network floor and the operator share of the floor are medians over repeats. Calls are "
        "per image (per batch of the batch size); A^+ and SVD calls are counted, not priced.", "",
        "| floor | calls | ms / image / call |", "|---|---|---|", *floor_lines, "",
        "| what | NFE / image (with backward) | A / image: forward-only, with gradient | A^T, A^+ / image, SVD calls "
        "| network floor ms / image | operator floor ms / image | operator share of floor | ratio to floor "
        "| ratio to network floor | s / image | PSNR |",
        "|" + "---|" * 11, *solver_lines, "",
        *[f"- {note}" for note in notes], ""])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
