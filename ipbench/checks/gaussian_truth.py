"""Ground truth for solvers on the analytic Gaussian prior: the exact posterior and the MMSE bound.

For x drawn from a Gaussian prior and y = A x + n, the posterior p(x | y) is Gaussian and known in closed
form, so E[x | y] (conjugate gradients, float64) is the estimator of least expected squared error. Every
solver's ratio R = mean(e) / mean(m) of its per-image MSE to E[x | y]'s is therefore >= 1 up to
Monte-Carlo error; exact posterior samples (Matheron's rule) have R = 2 and a residual
||A x_hat - y|| / (sigma_y sqrt(m)) near 1 over the m coordinates of y that A sees. This module draws
the truth, measures it, computes the exact posterior (by CG and, as a check, densely), runs solvers with
ipbench's per-image generators and scores them, with R's delta-method standard error. The derivations
are THEORY in benchmarks/gaussian_mmse.py, which renders the table; tests/test_gaussian_mmse.py checks
the bound on every registered solver.
"""
from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.data import load_images
from ipbench.models import GaussianScoreModel, time_for_sigma
from ipbench.operators import Operator, measure
from ipbench.seeding import measurement_generator, seed_for, solver_generator
from ipbench.solvers import Solver

SHAPE = (3, 16, 16)
DIVERGED = 1e3  # |x_hat| beyond this (image units; the prior's samples lie in about [-0.5, 1.5]) counts as diverged
DEVICE = torch.device("cpu")


# -- problems: ground truth, measurement, exact posterior ---------------------------------------------
@dataclass
class Problem:
    """One operator's batch: truth x, measurement y, and the exact posterior mean (the MMSE estimate)."""

    label: str
    operator: Operator
    physics: Physics  # as solvers get it (deepinv, float32 buffers)
    physics64: Physics  # a float64 copy for the exact posterior
    ids: list[str]
    seed: int
    x: Tensor
    y: Tensor
    posterior_mean: Tensor  # float64
    seen: Tensor  # 1 where a coordinate of y has a non-zero row of A (what the residual counts)
    mmse: Tensor  # per-image ||E[x|y] - x||^2 / D

    @property
    def sigma_y(self) -> float:
        return self.operator.sigma_y


def fit_model(shape: tuple[int, int, int] = SHAPE) -> GaussianScoreModel:
    return GaussianScoreModel.fit(load_images("photos", shape).images)


def image_ids(n: int) -> list[str]:
    return [f"g{i:04d}" for i in range(n)]


def prior_generators(seed: int, ids: Sequence[str], stream: str = "prior") -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed_for(stream, seed, i)) for i in ids]


def per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() - b.double()).flatten(1).square().mean(1)


def make_problem(model: GaussianScoreModel, label: str, op_name: str, op_params: dict[str, Any], n: int,
                 seed: int) -> Problem:
    """Truth from the prior (one generator per image), y measured with per-image generators, E[x|y] by CG."""
    ids = image_ids(n)
    x = model.sample(n, prior_generators(seed, ids))
    operator = Operator.create(op_name, op_params)
    gens = [measurement_generator(seed, i, label) for i in ids]
    physics = operator.build(model.image_shape, gens, DEVICE)
    y = measure(physics, x, gens)
    physics64 = copy.deepcopy(physics).to(torch.float64)
    mean = model.posterior_mean(y, physics64.A, physics64.A_adjoint, operator.sigma_y)
    seen = (physics64.A(physics64.A_adjoint(torch.ones_like(y, dtype=torch.float64))).abs() > 1e-9).double()
    return Problem(label, operator, physics, physics64, ids, seed, x, y, mean, seen, per_image_mse(mean, x))


def dense_check(model: GaussianScoreModel, problem: Problem) -> dict[str, float]:
    """E[m] from the dense posterior (mean trace / D per image) against the empirical mean(m).

    Images whose operators act identically (tested on a random probe) share one dense solve; a random
    mask gives each image its own (rebuilt from the image's measurement generator, as in `make_problem`).
    """
    groups: dict[bytes, list[int]] = {}
    physics_of: dict[bytes, Physics] = {}
    probe = torch.randn((1, *model.image_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k, image in enumerate(problem.ids):
        physics = problem.operator.build(model.image_shape, [measurement_generator(problem.seed, image, problem.label)],
                                         DEVICE)
        physics = copy.deepcopy(physics).to(torch.float64)
        key = hashlib.sha256(physics.A(probe).numpy().tobytes()).digest()
        groups.setdefault(key, []).append(k)
        physics_of.setdefault(key, physics)
    trace = torch.empty(len(problem.ids), dtype=torch.float64)
    dense_vs_cg = 0.0
    for key, members in groups.items():
        index = torch.tensor(members)
        mean, variance = model.posterior_dense(problem.y[index], physics_of[key].A, problem.sigma_y)
        trace[index] = variance.flatten(1).mean(1)
        dense_vs_cg = max(dense_vs_cg, float((mean - problem.posterior_mean[index]).abs().max()))
    diff = problem.mmse - trace
    n = len(problem.ids)
    se = float(diff.std() / math.sqrt(n))
    return {"mmse_empirical": float(problem.mmse.mean()), "mmse_dense": float(trace.mean()),
            "z": float(diff.mean()) / se, "se": se, "dense_vs_cg": dense_vs_cg, "dense_solves": len(groups)}


# -- estimators and their scores -------------------------------------------------------------------------
def residual_ratio(problem: Problem, x_hat: Tensor) -> Tensor:
    """||A x_hat - y|| / (sigma_y sqrt(m)) per image, over the m coordinates of y that A sees."""
    r = (problem.physics64.A(x_hat.double()) - problem.y.double()) * problem.seen
    m = problem.seen.flatten(1).sum(1)
    return r.flatten(1).norm(dim=1) / (problem.sigma_y * m.sqrt())


def ratio_to_bound(e: Tensor, m: Tensor) -> tuple[float, float]:
    """R = mean(e) / mean(m) and its delta-method SE from the paired per-image values."""
    n = e.numel()
    r = float(e.mean() / m.mean())
    se = float((e - r * m).std() / (math.sqrt(n) * m.mean()))
    return r, se


@dataclass
class Score:
    label: str
    problem: str
    n: int
    ratio: float
    se: float
    residual: float
    residual_se: float
    seconds: float
    finite: int  # images whose reconstruction is finite and within DIVERGED image units


def score(label: str, problem: Problem, x_hat: Tensor, seconds: float = 0.0) -> Score:
    """R +- SE and the mean residual ratio of x_hat, the reconstructions of the problem's first len(x_hat)
    images (R = nan when any of them diverged)."""
    n = x_hat.shape[0]
    finite = torch.isfinite(x_hat.flatten(1)).all(1) & (x_hat.flatten(1).abs() <= DIVERGED).all(1)
    e = per_image_mse(x_hat, problem.x[:n])
    rho = residual_ratio(_head(problem, n), x_hat)
    if not bool(finite.all()):
        return Score(label, problem.label, n, math.nan, math.nan, math.nan, math.nan, seconds, int(finite.sum()))
    r, se = ratio_to_bound(e, problem.mmse[:n])
    return Score(label, problem.label, n, r, se, float(rho.mean()), float(rho.std() / math.sqrt(n)), seconds, n)


def _head(problem: Problem, n: int) -> Problem:
    """The problem's first n images (deepinv physics with per-image masks are sliced too)."""
    if n == len(problem.ids):
        return problem
    return Problem(problem.label, problem.operator, _slice_physics(problem.physics, n),
                   _slice_physics(problem.physics64, n), problem.ids[:n], problem.seed, problem.x[:n],
                   problem.y[:n], problem.posterior_mean[:n], problem.seen[:n], problem.mmse[:n])


def _slice_physics(physics: Physics, n: int) -> Physics:
    out = copy.deepcopy(physics)
    for name in ("mask", "filter"):
        value = getattr(out, name, None)
        if isinstance(value, Tensor) and value.ndim == 4 and value.shape[0] > 1:
            setattr(out, name, value[:n])
    return out


def run_solver(label: str, solver: Solver, problem: Problem, model: GaussianScoreModel, n: int | None = None) -> Score:
    """Solve the first n images with per-image solver generators and score them."""
    sub = _head(problem, len(problem.ids) if n is None else n)
    gens = [solver_generator(problem.seed, i, problem.label, label) for i in sub.ids]
    start = time.perf_counter()
    x_hat = solver.solve(sub.y, sub.physics, model, gens)  # no no_grad(): DPS-type solvers need autograd
    return score(label, sub, x_hat, time.perf_counter() - start)


def posterior_sample(model: GaussianScoreModel, problem: Problem, draw: int = 0) -> Tensor:
    """Exact posterior samples by Matheron's rule: E[x|y] + x' - E[x'|y'], (x', y') a fresh prior draw; `draw` k
    gives the k-th independent sample of the same posteriors."""
    ids = problem.ids
    stream = "matheron" if not draw else f"matheron-{draw}"
    x_prime = model.sample(len(ids), prior_generators(problem.seed, ids, f"{stream}-prior"))
    noise_gens = [torch.Generator().manual_seed(seed_for(f"{stream}-noise", problem.seed, i, problem.label))
                  for i in ids]
    y_prime = problem.physics64.A(x_prime.double()) + problem.sigma_y * torch.stack(
        [torch.randn(problem.y.shape[1:], generator=g, dtype=torch.float64) for g in noise_gens])
    mean_prime = model.posterior_mean(y_prime, problem.physics64.A, problem.physics64.A_adjoint, problem.sigma_y)
    return problem.posterior_mean + x_prime.double() - mean_prime


def prior_references(model: GaussianScoreModel, problem: Problem) -> dict[str, Tensor]:
    """Estimators that ignore y: the prior mean (R = tr(Sigma) / (D E[m])) and a fresh prior sample (twice that)."""
    mean = model.image_prior()[0].expand(len(problem.ids), *model.image_shape)
    return {"prior mean (ignores y)": mean,
            "prior sample (ignores y)": model.sample(len(problem.ids),
                                                     prior_generators(problem.seed, problem.ids, "reference-prior"))}


def tweedie_mismatch(model: GaussianScoreModel, sigma_y: float) -> float:
    """delta = sigma'/sigma_y - 1 for tweedie's matched time (THEORY in benchmarks/gaussian_mmse.py)."""
    ab = model.alphas_cumprod[time_for_sigma(model.alphas_cumprod, sigma_y)]
    return float(((1 - ab) / ab).sqrt() / 2) / sigma_y - 1
