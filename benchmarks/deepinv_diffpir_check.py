"""ipbench's DiffPIR against deepinv's (`deepinv.sampling.DiffPIR`) on the same model, images and measurements.

deepinv's DiffPIR runs the official code's loop (quad time grid, rho_t = lambda sigma_y^2 / sigma_bar_t^2, zeta
noise step, clipped x0, the state at t = 0 returned) with an ipbench model as its denoiser
(`ScoreModelDenoiser`). Its data step is `L2().prox(x0, y, physics, gamma=1 / (2 rho_t))`, i.e.
argmin ||A x - y||^2 + 2 rho_t ||x - x0||^2: twice the official code's rho, so deepinv's lambda L is
ipbench's lambda 2 L (tests/test_diffpir.py checks both steps). The matched run gives deepinv lambda / 2.

Two parts, per operator:
1. Same trajectory: zeta = 0 and the same x_T (deepinv started at x_init = 0.5 with sigma = 0, which makes
   its x_T sqrt(1 - ab_T) z, z from the seeded global generator; ipbench's generator seeded alike), on a
   few images; the largest difference between ipbench's state at t = 0 and deepinv's output. What is
   left is round-off, deepinv's float32 schedule, its CG data step for blur and SR (ipbench: exact SVD),
   and the last step (ipbench returns the data step of t = 0, deepinv the state before it).
2. Same distribution: each method over all images for several seeds, each seed measuring y afresh;
   mean PSNR per seed and paired differences (per image and seed) with their 95% intervals. deepinv, like
   the code, returns the state at t = 0; ipbench returns the data step after it, and its step hook records
   the state too, so deepinv is compared like for like with that state. Agreement: |paired difference|
   <= the seed-to-seed std of the state's mean PSNR.

    python benchmarks/deepinv_diffpir_check.py --ops inpaint-box deblur-gauss denoise --num-images 16 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import torch
from deepinv.optim import L2
from deepinv.sampling import DiffPIR as DeepinvDiffPIR

from ipbench.benchmark.check_setup import add_problem_options, agreement, load_problem
from ipbench.models.deepinv_adapter import ScoreModelDenoiser
from ipbench.operators import Operator, measure
from ipbench.results.metrics import psnr
from ipbench.results.paired import t_interval
from ipbench.results.report import publish
from ipbench.seeding import measurement_generator, seed_for, solver_generator
from ipbench.solvers import SOLVERS

def deepinv_sampler(model, sigma: float, steps: int, lambda_: float, zeta: float, device) -> DeepinvDiffPIR:
    return DeepinvDiffPIR(model=ScoreModelDenoiser(model), data_fidelity=L2(), sigma=sigma, max_iter=steps,
                          zeta=zeta, lambda_=lambda_, device=device)


def same_trajectory(model, op, x, ids, steps: int, lambda_: float, device) -> float:
    """Largest |ipbench state at t = 0 - deepinv output| over images, both with zeta = 0 and the same x_T."""
    worst = 0.0
    for i, image in enumerate(ids):
        gens = [measurement_generator(0, image, op.name, device)]
        physics = op.build(model.image_shape, gens, device)
        y = measure(physics, x[i:i + 1], gens)
        seed = seed_for("trajectory", image, op.name)
        torch.manual_seed(seed)
        theirs = deepinv_sampler(model, 0.0, steps, lambda_ / 2, 0.0, device)(y, physics, x_init=torch.full_like(x[i:i + 1], 0.5))
        solver = SOLVERS.get("diffpir").create({"steps": steps, "lambda_": lambda_, "zeta": 0.0})
        states = []
        solver.step_hook = lambda t, x_t, x0: states.append(x_t)
        solver.solve(y, physics, model, [torch.Generator(device=device).manual_seed(seed)])
        worst = max(worst, float(((states[-1] + 1) / 2 - theirs).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_options(parser, num_images=16, seeds=[0, 1, 2])
    parser.add_argument("--ops", nargs="+", default=["inpaint-box", "deblur-gauss", "denoise"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lambda", dest="lambda_", type=float, default=7.0, help="ipbench's lambda (deepinv gets half)")
    parser.add_argument("--zeta", type=float, default=0.3)
    parser.add_argument("--trajectory-images", type=int, default=4, help="images for part 1 (0: skip it)")
    parser.add_argument("--deepinv-defaults", action="store_true",
                        help="also run deepinv at its own defaults (lambda 7, zeta 0.1)")
    parser.add_argument("--pure-noise-start", action="store_true",
                        help="also run deepinv (matched) from x_T = sqrt(1 - ab_T) z, without its sqrt(ab_T) (2 A^T y - 1) term")
    args = parser.parse_args()

    device, model, images, x = load_problem(args)
    ours, state = f"ipbench diffpir lambda={args.lambda_:g} zeta={args.zeta:g}", "ipbench, its state at t = 0"
    matched = f"deepinv DiffPIR lambda_={args.lambda_ / 2:g} zeta={args.zeta:g} (matched)"
    methods = {ours: ("ipbench", args.lambda_, args.zeta), matched: ("deepinv", args.lambda_ / 2, args.zeta)}
    if args.deepinv_defaults:
        methods["deepinv DiffPIR at its defaults, lambda_=7 zeta=0.1"] = ("deepinv", 7.0, 0.1)
    if args.pure_noise_start:
        methods[matched.replace("(matched)", "(matched), x_T pure noise")] = ("deepinv-noise-start", args.lambda_ / 2, args.zeta)
    names = [ours, state, *list(methods)[1:]]  # the state comes from ipbench's run (its step hook), at no cost

    started = time.perf_counter()
    lines = [f"DiffPIR check: model `{args.model}`, {len(images)} images of `{images.source}`, {args.steps} steps, "
             f"seeds {args.seeds}, device {device}, {datetime.now(timezone.utc):%Y-%m-%d}. "
             f"`python benchmarks/deepinv_diffpir_check.py --ops {' '.join(args.ops)} --num-images {args.num_images} "
             f"--seeds {' '.join(map(str, args.seeds))}{' --deepinv-defaults' if args.deepinv_defaults else ''}"
             f"{' --pure-noise-start' if args.pure_noise_start else ''}"
             f"{' --trajectory-images 0' if not args.trajectory_images else ''}`.", ""]
    summary = ["| operator | method | mean PSNR per seed (dB) | mean ± std over seeds | paired diff. to ipbench "
               "[95% CI] | paired diff. to ipbench's state at t = 0 [95% CI] | s / image |",
               "|---|---|---|---|---|---|---|"]
    verdicts = []
    trajectory = []
    for op_name in args.ops:
        op = Operator.create(op_name)
        if args.trajectory_images:
            k = min(args.trajectory_images, len(images))
            worst = same_trajectory(model, op, x[:k], images.ids[:k], args.steps, args.lambda_, device)
            trajectory.append(f"| {op_name} | {worst:.1e} |")
            print(f"{op_name}: same-trajectory max |difference| {worst:.2e}", flush=True)
        per_seed = {name: [] for name in names}
        per_image = {name: [] for name in names}  # (seed, image) pairs in one order for every method
        seconds = {name: 0.0 for name in names}
        for seed in args.seeds:
            mgens = [measurement_generator(seed, i, op.name, device) for i in images.ids]
            physics = op.build(model.image_shape, mgens, device)
            y = measure(physics, x, mgens)
            for name, (kind, lambda_, zeta) in methods.items():
                start = time.perf_counter()
                outputs = {}
                if kind == "ipbench":
                    solver = SOLVERS.get("diffpir").create({"steps": args.steps, "lambda_": lambda_, "zeta": zeta})
                    states = []
                    solver.step_hook = lambda t, x_t, x0: states.append(x_t)
                    gens = [solver_generator(seed, i, op.name, "diffpir", device) for i in images.ids]
                    outputs[name] = solver.solve(y, physics, model, gens)
                    outputs[state] = (states[-1] + 1) / 2  # x_t of the last step (t = 0): what the code returns
                elif kind == "deepinv":  # deepinv draws from the global generator, one batch per seed
                    torch.manual_seed(seed_for("deepinv-diffpir", seed, op.name, name))
                    outputs[name] = deepinv_sampler(model, op.sigma_y, args.steps, lambda_, zeta, device)(y, physics)
                else:  # x_init = 0.5 and sigma = 0 make deepinv's x_T = sqrt(1 - ab_T) z, as in part 1
                    torch.manual_seed(seed_for("deepinv-diffpir", seed, op.name, name))
                    sampler = deepinv_sampler(model, 0.0, args.steps, lambda_, zeta, device)
                    outputs[name] = sampler(y, physics, x_init=torch.full_like(x, 0.5))
                seconds[name] += time.perf_counter() - start
                for label, x_hat in outputs.items():
                    values = psnr(x_hat.clamp(0, 1), x).tolist()
                    per_image[label] += values
                    per_seed[label].append(statistics.mean(values))
                    print(f"{op_name} seed {seed}: {label}: {per_seed[label][-1]:.2f} dB", flush=True)

        def paired(name: str, reference: str) -> tuple[float, str]:
            diffs = [b - a for a, b in zip(per_image[reference], per_image[name])]
            mean, half = t_interval(diffs)
            return mean, f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"

        for name in names:
            values = per_seed[name]
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            to_ours = "-" if name == ours else paired(name, ours)[1]
            to_state = "-" if name in (ours, state) else paired(name, state)[1]
            timing = f"{seconds[name] / (len(images) * len(args.seeds)):.2f}" if name != state else "-"
            summary.append(f"| {op_name} | {name} | {' / '.join(f'{v:.2f}' for v in values)} | "
                           f"{statistics.mean(values):.2f} ± {std:.2f} | {to_ours} | {to_state} | {timing} |")
        # like for like: deepinv's output is the state at t = 0, so it is compared with ipbench's state
        spread = statistics.stdev(per_seed[state]) if len(args.seeds) > 1 else float("nan")
        mean, text = paired(matched, state)
        verdicts.append(f"- {op_name}: deepinv (matched) - ipbench's state at t = 0: {text} dB; seed-to-seed std of "
                        f"the latter's mean PSNR {spread:.2f} dB: {agreement(mean, spread)}. "
                        f"ipbench's output - its state (the last data step and denoising, deviation 1): "
                        f"{paired(ours, state)[1]} dB.")
    if trajectory:
        lines += ["Part 1, same trajectory (zeta = 0, same x_T, ipbench lambda = 2 x deepinv's lambda_): largest |ipbench "
                  f"state at t = 0 - deepinv output| over {min(args.trajectory_images, len(images))} images, image units.",
                  "", "| operator | max abs difference |", "|---|---|", *trajectory, ""]
    lines += ["Part 2, same distribution: paired differences (method - reference, PSNR per image and seed), mean and "
              "95% t interval. ipbench returns the data step of its last time (t = 0); the code and deepinv return "
              "the state at t = 0 before it, which ipbench's step hook also records (second row). Agreement: "
              "|deepinv - ipbench's state| <= the seed-to-seed std of the state's mean PSNR.", "", *summary, "",
              *verdicts, "", f"Wall time {time.perf_counter() - started:.0f} s.", ""]
    publish("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
