"""Posterior samplers judged as samplers on the analytic Gaussian prior, where the posterior is known exactly.

For x from the Gaussian prior and y = A x + n, p(x | y) is Gaussian with a mean and per-pixel variance computed
densely (models/gaussian.py `posterior_dense`). Each stochastic solver draws K samples per measurement (the
generators of `bench run --samples`, the measurement fixed), and per solver and operator this reports, over images:
- coverage of the truth by the draws' central t prediction interval at 50/90/95% (results/samples.py; exactly
  nominal for exact posterior draws), ± its standard error over images (pixels of one image are not independent);
- the variance ratio: the draws' per-pixel variance over the exact posterior variance, averaged over pixels (1 for
  a calibrated sampler, below 1 for one whose spread collapses);
- R of the sample mean: its MSE over the exact posterior mean's (>= 1; near 1 + 1/K for exact draws);
- corr(std, abs error) as results/samples.py computes it.
Two references bracket them: exact posterior draws (Matheron's rule) and the same draws shrunk halfway to their mean.
Deterministic solvers (`Solver.deterministic`) have no spread and are listed as such.

    python benchmarks/gaussian_calibration.py --num-images 32 --samples 8 --out results/gaussian_calibration.md
"""
from __future__ import annotations

import argparse
import copy
import math
import shlex
import sys
import time
from typing import Sequence

import torch
from torch import Tensor

from ipbench.checks import gaussian_truth as gm
from ipbench.results.report import publish
from ipbench.results.samples import coverage, std_error_correlation
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.solvers import SOLVERS

OPERATORS = ("inpaint-box", "inpaint-random", "denoise")
LEVELS = (0.5, 0.9, 0.95)


def stochastic_solvers() -> list[str]:
    """The registered pixel-prior solvers that draw (latent solvers have their own prior; deterministic ones no
    spread), except deepinv-dps, whose 1000 float64 steps are too slow for K draws here."""
    return [n for n in SOLVERS.names() if SOLVERS.get(n).prior != "latent" and n != "deepinv-dps"
            and not SOLVERS.get(n).create().deterministic()]


def draws_of(name: str, problem: gm.Problem, model, k: int) -> Tensor:
    """(K, N, C, H, W): K draws of `name` per measurement, draw j from the --samples generators of draw j."""
    solver = SOLVERS.get(name).create()
    out = []
    for j in range(k):
        gens = [solver_generator(problem.seed, i, problem.label, name, sample=j) for i in problem.ids]
        out.append(solver.solve(problem.y, problem.physics, model, gens).detach().double())
    return torch.stack(out)


def judged(draws: Tensor, problem: gm.Problem, variance: Tensor) -> dict[str, tuple[float, float]]:
    """{value: (mean over images, standard error)} for the draws of one solver on one problem."""
    x = problem.x.double()
    n = x.shape[0]
    per: dict[str, list[float]] = {f"coverage {round(100 * p)}%": [] for p in LEVELS}
    per |= {"variance ratio": [], "corr(std, abs error)": []}
    mean = draws.mean(0)
    for i in range(n):
        for p, value in coverage(draws[:, i], x[i], LEVELS).items():
            per[f"coverage {round(100 * p)}%"].append(value)
        per["variance ratio"].append(float((draws[:, i].var(0, unbiased=True) / variance[i]).mean()))
        per["corr(std, abs error)"].append(std_error_correlation(draws[:, i].std(0), (mean[i] - x[i]).abs()))
    e = gm.per_image_mse(mean, x)
    r, r_se = gm.ratio_to_bound(e, problem.mmse)
    out = {key: _mean_se(values) for key, values in per.items()}
    out["R of the sample mean"] = (r, r_se)
    return out


def exact_variance(model, problem: gm.Problem) -> Tensor:
    """The exact posterior's per-pixel variance of each image, densely, with each image's own operator (a random
    mask differs per image: rebuilt from the image's measurement generator, as `gaussian_truth.dense_check` does)."""
    out = []
    for k, image in enumerate(problem.ids):
        physics = problem.operator.build(model.image_shape, [measurement_generator(problem.seed, image, problem.label)],
                                         gm.DEVICE)
        physics = copy.deepcopy(physics).to(torch.float64)
        out.append(model.posterior_dense(problem.y[k:k + 1].double(), physics.A, problem.sigma_y)[1])
    return torch.cat(out)


def _mean_se(values: list[float]) -> tuple[float, float]:
    v = torch.tensor([x for x in values if math.isfinite(x)], dtype=torch.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std() / math.sqrt(len(v))) if len(v) > 1 else math.nan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--solvers", nargs="*", default=None, help="default: every stochastic pixel-prior solver")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.num_images < 2 or args.samples < 2:
        raise SystemExit("error: --num-images and --samples must be at least 2")
    names = args.solvers or stochastic_solvers()
    model = gm.fit_model()
    start = time.perf_counter()
    lines = ["# Posterior samplers on the Gaussian prior: coverage and spread against the exact posterior", "",
             f"`python {shlex.join(['benchmarks/gaussian_calibration.py', *(sys.argv[1:] if argv is None else argv)])}`"
             f": {args.num_images} images from the Gaussian prior fitted to the bundled photos at {gm.SHAPE}, seed 0, "
             f"{args.samples} draws per measurement (the measurement fixed), sigma_y 0.025, every solver at its "
             "registry defaults. Each value: mean over images ± standard error. Coverage: the fraction of pixels whose "
             "truth lies in the draws' central t prediction interval (nominal for exact posterior draws); variance "
             "ratio: the draws' per-pixel variance over the exact posterior's; R: the sample mean's MSE over the exact "
             f"posterior mean's (1 + 1/K = {1 + 1 / args.samples:.3f} for exact draws).", ""]
    for op in OPERATORS:
        problem = gm.make_problem(model, op, op, {}, args.num_images, seed=0)
        variance = exact_variance(model, problem)
        rows = {"exact posterior draws": torch.stack([gm.posterior_sample(model, problem, draw=j)
                                                      for j in range(args.samples)])}
        rows["exact draws shrunk halfway to their mean"] = rows["exact posterior draws"].mean(0) + 0.5 * (
            rows["exact posterior draws"] - rows["exact posterior draws"].mean(0))
        for name in names:
            solver = SOLVERS.get(name).create()
            if solver.unsupported(problem.physics, torch.zeros_like(problem.x)) is None:
                rows[name] = draws_of(name, problem, model, args.samples)
        header = None
        for label, draws in rows.items():
            values = judged(draws, problem, variance)
            if header is None:
                header = list(values)
                lines += [f"## {op}", "", "| sampler | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
            cells = [f"{m:.3f} ± {s:.3f}" if math.isfinite(s) else f"{m:.3f}" for m, s in values.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    deterministic = [n for n in SOLVERS.names() if SOLVERS.get(n).create().deterministic()]
    lines.append(f"Point estimates, no spread (deterministic: run once per measurement): {', '.join(deterministic)}. "
                 f"Latent solvers are judged on the latent Gaussian prior instead (checks/latent_gaussian.py). "
                 f"{time.perf_counter() - start:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
