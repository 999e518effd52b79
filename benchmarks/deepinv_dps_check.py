"""ipbench's DPS against deepinv's DPS on the same model, operator and measurements.

Runs `dps normalize=residual zeta=Z` (ipbench), `deepinv-dps step=paper weight=Z` (deepinv's sampler
with its guidance weight set per step so that its step is the paper's, see docs/solvers.md) and
`deepinv-dps` with deepinv's own defaults for the weight, each over the same images for several seeds.
Agreement means the difference of the mean PSNRs is within the spread between seeds. Example:

    python benchmarks/deepinv_dps_check.py --model fashion32 --op inpaint-box --num-images 8 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone


from ipbench.benchmark.check_setup import add_problem_options, agreement, load_problem
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.operators import Operator, measure
from ipbench.results.metrics import psnr
from ipbench.solvers import SOLVERS
from ipbench.results.report import publish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_options(parser, num_images=8, seeds=[0, 1, 2])
    parser.add_argument("--op", default="inpaint-box")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--zeta", type=float, default=1.0)
    args = parser.parse_args()

    device, model, images, x = load_problem(args)
    op = Operator.create(args.op)
    methods = {
        f"ipbench dps normalize=residual zeta={args.zeta}":
            ("dps", {"normalize": "residual", "zeta": args.zeta, "steps": args.steps, "clip": False}),
        f"deepinv DPS step=paper weight={args.zeta}":
            ("deepinv-dps", {"step": "paper", "weight": args.zeta, "num_steps": args.steps}),
        "deepinv DPS, deepinv's weight=1.0": ("deepinv-dps", {"num_steps": args.steps}),
    }
    table = {name: [] for name in methods}
    seconds = {name: 0.0 for name in methods}
    for seed in args.seeds:
        mgens = [measurement_generator(seed, i, op.name, device) for i in images.ids]
        physics = op.build(model.image_shape, mgens, device)
        y = measure(physics, x, mgens)
        for name, (solver_name, params) in methods.items():
            solver = SOLVERS.get(solver_name).create(params)
            gens = [solver_generator(seed, i, op.name, name, device) for i in images.ids]
            start = time.perf_counter()
            x_hat = solver.solve(y, physics, model, gens)
            seconds[name] += time.perf_counter() - start
            table[name].append(float(psnr(x_hat.clamp(0, 1), x).mean()))
            print(f"seed {seed}: {name}: {table[name][-1]:.2f} dB", flush=True)

    names = list(methods)
    reference = table[names[0]]
    spread = statistics.stdev(reference) if len(reference) > 1 else float("nan")
    lines = [f"DPS check: model `{args.model}`, operator `{args.op}` (sigma_y {op.sigma_y}), {len(images)} images of "
             f"`{images.source}`, {args.steps} steps, seeds {args.seeds}, device {device}, "
             f"{datetime.now(timezone.utc):%Y-%m-%d}.", "",
             "| method | mean PSNR per seed (dB) | mean ± std over seeds | difference to ipbench | s / image |",
             "|---|---|---|---|---|"]
    for name in names:
        values = table[name]
        diff = statistics.mean(values) - statistics.mean(reference)
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        lines.append(f"| {name} | {' / '.join(f'{v:.2f}' for v in values)} | {statistics.mean(values):.2f} ± {std:.2f} | "
                     f"{diff:+.2f} | {seconds[name] / (len(images) * len(args.seeds)):.2f} |")
    paired = [b - a for a, b in zip(reference, table[names[1]])]
    verdict = agreement(statistics.mean(paired), 2 * spread)
    lines += ["", f"ipbench vs deepinv (paper step): mean paired difference {statistics.mean(paired):+.2f} dB, "
              f"seed-to-seed std of ipbench's mean PSNR {spread:.2f} dB: {verdict} (criterion |diff| <= 2 std).", ""]
    publish("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
