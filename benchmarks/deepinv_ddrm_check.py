"""ipbench's DDRM against deepinv's DDRM (`deepinv.sampling.DDRM`) on the same model, images and measurements.

deepinv's DDRM takes a denoiser D(x, sigma) on [0, 1] images and a list of noise levels; the network enters
through `ScoreModelDenoiser`. Settings are matched: its `sigmas` are the image-units noise levels
sigma_t / 2 of ipbench's grid (the official code's times 950, 900, ..., 0 for 20 steps), so it calls the
network at the same 20 times, and its output (the denoiser's at the last level, t = 0) is what DDRM returns
for sigma_y > 0; the same eta and eta_b. It needs a `DecomposablePhysics`: masks and the identity
(inpaint-box, inpaint-random, denoise). deepinv draws from the global generator, seeded per operator, seed
and method; it repeats the mask once per image, so per-image masks (inpaint-random) are solved one image
at a time.

deepinv 0.5 draws each step's noise as std * randn / sqrt(2) while its bounds, its third case's std and the
denoiser use sigma_t, so its iterates carry sqrt(2) less noise than the level it denoises at. Three deepinv
rows are run: "sqrt(2)-matched", every sigma (its levels and sigma_y) multiplied by sqrt(2) and the denoiser
told sigma / sqrt(2), which makes each of its updates the paper's (docs/solvers.md); the same with ipbench's
own random draws replayed into it (`replayed_noise`), which then gives ipbench's output image by image up to
where the two start the coordinates A does not see; the same with that start moved onto ipbench's
(`centre_start`); and deepinv as shipped. A first table checks both samplers against DDRM's closed-form error distribution on
the analytic Gaussian prior (denoising). Agreement means that the mean paired difference (deepinv - ipbench,
per image and seed) is within the seed-to-seed spread of ipbench's mean PSNR. Example:

    python benchmarks/deepinv_ddrm_check.py --ops inpaint-box inpaint-random denoise --num-images 16 \\
        --seeds 0 1 2 --out results/deepinv_ddrm_check.md
"""
from __future__ import annotations

import argparse
import copy
import math
from contextlib import contextmanager, nullcontext
from typing import Iterator
import statistics
import time
from datetime import datetime, timezone

import deepinv
import torch
from deepinv.models import Denoiser
from deepinv.physics import GaussianNoise
from deepinv.sampling import DDRM as DeepinvDDRM
from torch import Tensor

from ipbench.checks import gaussian_truth as gm
from ipbench.checks.ddrm_gaussian import error_variance_denoising, whitened_energy
from ipbench.benchmark.check_setup import add_problem_options, agreement, load_problem
from ipbench.models.deepinv_adapter import ScoreModelDenoiser
from ipbench.operators import Operator, measure, noise_level
from ipbench.operators.base import DEFAULT_SIGMA_Y
from ipbench.results.metrics import psnr
from ipbench.results.paired import t_interval
from ipbench.results.report import publish
from ipbench.seeding import measurement_generator, seed_for, solver_generator
from ipbench.solvers import SOLVERS
from ipbench.solvers.ddrm import ddrm_grid, ve_sigma
from ipbench.solvers.deepinv_dps import _select

ROOT2 = math.sqrt(2.0)
SAME_DRAWS = "deepinv DDRM, sqrt(2)-matched, ipbench's draws"
SAME_START = "deepinv DDRM, sqrt(2)-matched, ipbench's draws and start"


class ScaledSigma(Denoiser):
    """D(x, sigma / factor): the denoiser told a noise level `factor` times smaller than it is given."""

    def __init__(self, inner: Denoiser, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x: Tensor, sigma: float | Tensor, *args: object, **kwargs: object) -> Tensor:
        return self.inner(x, sigma / self.factor)


@contextmanager
def replayed_noise(draws: list[list[Tensor]]) -> Iterator[None]:
    """While active, the k-th call of torch.randn_like returns (draws[i][k] for each image i), stacked.

    deepinv's DDRM draws all its noise through torch.randn_like, one call at the start and one per step, as
    ipbench's DDRM draws one per image from its generator; replaying ipbench's draws makes the two samplers
    comparable image by image instead of only in distribution."""
    calls = iter(range(len(draws[0])))
    original = torch.randn_like

    def replay(like: Tensor, *args: object, **kwargs: object) -> Tensor:
        k = next(calls)
        return torch.stack([d[k] for d in draws]).to(dtype=like.dtype, device=like.device).reshape(like.shape)

    torch.randn_like = replay
    try:
        yield
    finally:
        torch.randn_like = original


def deepinv_ddrm(y: Tensor, physics: deepinv.physics.Physics, denoiser: Denoiser, sigmas: list[float], eta: float,
                 eta_b: float, matched: bool, seed: int, draws: list[list[Tensor]] | None = None) -> Tensor:
    """deepinv's DDRM; `matched` scales every sigma by sqrt(2) (module docstring); `draws` (per image, per call)
    replaces its random numbers. deepinv repeats the mask once per image and indexes y with it, so a batch
    whose images have different masks is solved one image at a time and the mask is given y's channels."""
    factor = ROOT2 if matched else 1.0
    net = ScaledSigma(denoiser, factor) if matched else denoiser
    sampler = DeepinvDDRM(net, sigmas=[s * factor for s in sigmas], eta=eta, etab=eta_b)
    mask = getattr(physics, "mask", None)
    shared = not isinstance(mask, Tensor) or mask.ndim < 4 or bool((mask == mask[:1]).all())
    groups = [slice(0, y.shape[0])] if shared else [slice(i, i + 1) for i in range(y.shape[0])]
    torch.manual_seed(seed)  # deepinv draws from the global generator
    out = []
    for group in groups:
        single = copy.deepcopy(_select(physics, group.start))
        if isinstance(mask, Tensor) and mask.ndim == 4:
            single.mask = single.mask[:1].expand(1, y.shape[1], -1, -1)
        single.noise_model = GaussianNoise(sigma=noise_level(physics) * factor)
        with replayed_noise(draws[group]) if draws is not None else nullcontext():
            out.append(sampler(y[group], single))
    return torch.cat(out)


def ipbench_draws(generators: list[torch.Generator], shape: tuple[int, ...], calls: int) -> list[list[Tensor]]:
    """The standard normals ipbench's DDRM draws from each image's generator, in its order."""
    return [[torch.randn(shape, generator=g, device=g.device) for _ in range(calls)] for g in generators]


def gaussian_section(draws: int, steps: int, eta: float, eta_b: float) -> list[str]:
    """Denoising on the analytic Gaussian prior, where DDRM's error distribution is known in closed form
    (ipbench/checks/ddrm_gaussian.py): each sampler's whitened error energy (1 if it is that distribution)
    and z-score, and R = MSE / MMSE."""
    model = gm.fit_model()
    p = gm.make_problem(model, "denoise", "denoise", {"sigma_y": DEFAULT_SIGMA_Y}, draws, 1)
    variance = error_variance_denoising(model, steps, eta, eta_b, p.sigma_y)
    sigmas = [ve_sigma(ab) / 2 for _, ab, _ in ddrm_grid(model, steps)]
    solver = SOLVERS.get("ddrm").create({"steps": steps, "eta": eta, "eta_b": eta_b})
    lines = [f"Gaussian prior ({draws} draws of {'x'.join(map(str, gm.SHAPE))}, denoise, sigma_y {p.sigma_y}): "
             "DDRM's error has a closed-form distribution; z = (energy - 1) / SE.", "",
             "| method | whitened error energy | z | R = MSE / MMSE |", "|---|---|---|---|"]
    for name in ("ipbench ddrm", "deepinv DDRM, sqrt(2)-matched", "deepinv DDRM as shipped"):
        with torch.no_grad():
            if name == "ipbench ddrm":
                gens = [solver_generator(p.seed, i, p.label, name) for i in p.ids]
                x_hat = solver.solve(p.y, p.physics, model, gens)
            else:
                x_hat = deepinv_ddrm(p.y, p.physics, ScoreModelDenoiser(model), sigmas, eta, eta_b, "matched" in name,
                                     seed_for("deepinv-ddrm-gaussian", name) % 2**31)
        energy = whitened_energy(model, 2 * (x_hat.double() - p.x.double()), variance)
        z = (float(energy.mean()) - 1) / (float(energy.std()) / math.sqrt(len(energy)))
        lines.append(f"| {name} | {float(energy.mean()):.4f} | {z:+.2f} | {gm.score(name, p, x_hat).ratio:.3f} |")
    return lines + [""]


def centre_start(draws: list[list[Tensor]], physics: deepinv.physics.Physics, sigma_start: float) -> None:
    """Shift the first draw so that deepinv's start is ipbench's (the code's) where A sees nothing.

    There deepinv starts at sigma_T xi in image units (mean 0, i.e. -1 in model units); ipbench and the official
    code at sigma_T xi in model units (mean 0, image units 0.5). xi + 0.5 / sigma_T (image units) moves the
    one onto the other; the other coordinates and draws are left as they are."""
    mask = getattr(physics, "mask", None)
    if not isinstance(mask, Tensor) or mask.ndim < 4:
        return
    for i, image in enumerate(draws):
        unseen = (mask[min(i, mask.shape[0] - 1)] == 0).to(image[0].dtype).expand_as(image[0])
        image[0] = image[0] + unseen * 0.5 / sigma_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_options(parser, num_images=16, seeds=[0, 1, 2])
    parser.add_argument("--ops", nargs="+", default=["inpaint-box", "inpaint-random", "denoise"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eta", type=float, default=0.85)
    parser.add_argument("--eta-b", type=float, default=1.0)
    parser.add_argument("--gaussian-draws", type=int, default=512, help="prior draws of the closed-form check; 0: skip")
    args = parser.parse_args()

    device, model, images, x = load_problem(args)
    denoiser = ScoreModelDenoiser(model)
    grid = ddrm_grid(model, args.steps)
    sigmas = [ve_sigma(ab) / 2 for _, ab, _ in grid]  # image units, the network's times 950, ..., 0
    ipbench_ddrm = SOLVERS.get("ddrm").create({"steps": args.steps, "eta": args.eta, "eta_b": args.eta_b})
    methods = ["ipbench ddrm", SAME_DRAWS, SAME_START, "deepinv DDRM, sqrt(2)-matched", "deepinv DDRM as shipped"]

    lines = [f"DDRM check: model `{args.model}`, {len(images)} images of `{images.source}`, {args.steps} steps "
             f"(times {grid[0][0]}, {grid[1][0]}, ..., {grid[-1][0]}), eta {args.eta}, eta_b {args.eta_b}, seeds "
             f"{args.seeds}, deepinv {deepinv.__version__}, device {device}, {datetime.now(timezone.utc):%Y-%m-%d}.",
             "Differences are deepinv - ipbench per (image, seed), with their 95% t-interval; spread: the std "
             "over seeds of ipbench's mean PSNR; max |diff|: the largest pixel difference to ipbench's output.", "",
             "| operator | method | mean PSNR per seed (dB) | mean ± std over seeds | paired difference [95% CI] | "
             "max \\|diff\\| | s / image |", "|---|---|---|---|---|---|---|"]
    gaussian = gaussian_section(args.gaussian_draws, args.steps, args.eta, args.eta_b) if args.gaussian_draws else []
    for line in gaussian:
        print(line, flush=True)
    verdicts = []
    for op_name in args.ops:
        op = Operator.create(op_name)
        per_image = {m: [] for m in methods}  # PSNR per (seed, image), same order for every method
        per_seed = {m: [] for m in methods}
        seconds = {m: 0.0 for m in methods}
        largest = {m: 0.0 for m in methods}
        for seed in args.seeds:
            mgens = [measurement_generator(seed, i, op.label, device) for i in images.ids]
            physics = op.build(model.image_shape, mgens, device)
            y = measure(physics, x, mgens)
            reference = None
            for name in methods:
                gens = [solver_generator(seed, i, op.label, methods[0], device) for i in images.ids]
                start = time.perf_counter()
                with torch.no_grad():
                    if name == methods[0]:
                        x_hat = reference = ipbench_ddrm.solve(y, physics, model, gens)
                    else:
                        draws = ipbench_draws(gens, model.image_shape, len(grid) + 1) if "draws" in name else None
                        if name == SAME_START:
                            centre_start(draws, physics, sigmas[0])
                        x_hat = deepinv_ddrm(y, physics, denoiser, sigmas, args.eta, args.eta_b, "matched" in name,
                                             seed_for("deepinv-ddrm", seed, op.label, name) % 2**31, draws)
                seconds[name] += time.perf_counter() - start
                largest[name] = max(largest[name], float((x_hat - reference).abs().max()))
                values = psnr(x_hat.clamp(0, 1), x).tolist()
                per_image[name] += values
                per_seed[name].append(statistics.mean(values))
                print(f"{op_name} seed {seed}: {name}: {per_seed[name][-1]:.2f} dB", flush=True)
        spread = statistics.stdev(per_seed[methods[0]]) if len(args.seeds) > 1 else float("nan")
        for name in methods:
            values = per_seed[name]
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            if name == methods[0]:
                diff_text, largest_text = "reference", ""
            else:
                mean, half = t_interval([b - a for a, b in zip(per_image[methods[0]], per_image[name])])
                diff_text, largest_text = f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]", f"{largest[name]:.1e}"
                verdicts.append(f"{op_name}, {name}: {mean:+.2f} dB vs spread {spread:.2f} dB: "
                                f"{agreement(mean, spread)}; the interval "
                                f"{'contains' if abs(mean) <= half else 'excludes'} 0.")
            lines.append(f"| {op_name} (sigma_y {op.sigma_y}) | {name} | {' / '.join(f'{v:.2f}' for v in values)} | "
                         f"{statistics.mean(values):.2f} ± {std:.2f} | {diff_text} | {largest_text} | "
                         f"{seconds[name] / (len(images) * len(args.seeds)):.2f} |")
    lines += ["", "Agreement (criterion: |mean paired difference| <= seed-to-seed spread of ipbench):", ""]
    lines += [f"- {v}" for v in verdicts]
    publish("\n".join(gaussian + lines), args.out)


if __name__ == "__main__":
    main()
