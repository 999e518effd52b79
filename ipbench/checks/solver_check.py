"""`bench check`: what the project runs on its own solvers, run on one solver (a plugin's, say).

Two parts, on the analytic Gaussian prior fitted to the bundled photos at 3 x 16 x 16 (instant, exact), or for a
latent solver on the Gaussian latent prior of a linear autoencoder over the same images (latent_gaussian.py):
- the contract, per operator: a real float tensor of the images' shape on their device, finite values,
  the same output from the same generators, each image's output independent of the batch it is in (to
  1e-5: a norm over the batch, or a draw from another image's generator, breaks it), and an NFE per image
  that does not depend on the batch either;
- the ground truth (gaussian_truth.py): the ratio R of the solver's MSE to the exact posterior mean's,
  which no estimator of x from y can beat (R >= 1 up to Monte-Carlo error: failing means the solver saw
  more than y, e.g. the truth), with built-in solvers' ratios on the same problems beside it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from ipbench.checks import gaussian_truth as gt
from ipbench.checks import latent_gaussian as lg
from ipbench.errors import UsageError, first_line
from ipbench.models import ScoreModel
from ipbench.models.counting import CountingModel
from ipbench.models.latent import LatentPrior
from ipbench.operators import Operator, measure
from ipbench.seeding import measurement_generator, solver_generator
from ipbench.solvers import SOLVERS, Solver
from ipbench.solvers.base import SOLVER_FAILURES, output_problem, prior_problem

CONTRACT_OPERATORS = ("inpaint-box", "inpaint-random", "deblur-gauss", "deblur-motion", "sr", "denoise")
TRUTH_OPERATORS = ("denoise", "inpaint-box", "inpaint-random")  # where the exact posterior is cheap
CONTRACT_IMAGES = 3
TRUTH_IMAGES = 16
BATCH_TOLERANCE = 1e-5
# built-in solvers whose ratios are printed beside the checked one's (those defined on its prior)
REFERENCES = ("tweedie", "dps", "ddnm", "latent-dps")


@dataclass
class Check:
    """One line of the report: what was checked, on which operator, whether it passed, and the evidence."""

    what: str
    operator: str
    passed: bool
    detail: str


def check_solver(solver: Solver, label: str, operators: Sequence[Operator] | None = None,
                 log: Callable[[str], None] = print) -> list[Check]:
    """Every contract and ground-truth check of `solver` on `operators` (with their parameters; by default
    CONTRACT_OPERATORS at their defaults)."""
    operators = [Operator.create(o) for o in CONTRACT_OPERATORS] if operators is None else list(operators)
    model = lg.fit_latent_prior() if solver.prior == "latent" else gt.fit_model()
    checks = []
    try:
        solver.check_model(model)  # field values this model cannot run as set: the user's to fix (UsageError)
    except UsageError:
        raise
    except SOLVER_FAILURES as exc:
        checks.append(Check("fits-model", "-", False, f"check_model() raised {first_line(exc)}"))
    for operator in operators:
        checks += contract(solver, label, operator, model)
    for operator in [o for o in operators if o.name in TRUTH_OPERATORS]:
        checks.append(ground_truth(solver, label, operator, model))
    for check in checks:
        log(f"{'PASS' if check.passed else 'FAIL'}  {check.what:<16} {check.operator:<15} {check.detail}")
    return checks


def _measure(operator: Operator, x: Tensor, ids: list[str]) -> tuple[object, Tensor]:
    generators = [measurement_generator(0, i, operator.label) for i in ids]
    physics = operator.build(tuple(x.shape[1:]), generators, gt.DEVICE)
    return physics, measure(physics, x, generators)


def _solve(solver: Solver, label: str, operator: Operator, x: Tensor, ids: list[str],
           model: CountingModel) -> tuple[object, float]:
    """The solver's output on these images (or the exception it raised) and its NFE per image."""
    physics, y = _measure(operator, x, ids)
    model.reset()
    generators = [solver_generator(0, i, operator.label, label) for i in ids]
    try:
        return solver.solve(y, physics, model, generators), model.images / len(ids)
    except SOLVER_FAILURES as exc:  # a result to report, not a crash
        return exc, math.nan


def _unsupported(solver: Solver, physics: object, like: Tensor) -> tuple[str | None, str | None]:
    """(the solver's reason not to apply, None), or (None, what its `unsupported` raised)."""
    try:
        return solver.unsupported(physics, like), None  # type: ignore[arg-type]
    except SOLVER_FAILURES as exc:
        return None, f"unsupported() raised {first_line(exc)}"


def _prior_images(prior: ScoreModel, ids: list[str]) -> Tensor:
    """Images drawn from the check's prior (a latent prior's are decodings of its latent samples)."""
    if isinstance(prior, LatentPrior):
        return lg.sample_images(prior, len(ids), gt.prior_generators(0, ids)).float().clamp(0, 1)
    return prior.sample(len(ids), gt.prior_generators(0, ids)).clamp(0, 1)


def contract(solver: Solver, label: str, operator: Operator, prior: ScoreModel) -> list[Check]:
    """Shape/dtype/device, finiteness, determinism, batch invariance and NFE of `solver` on one operator."""
    op = operator.label
    ids = gt.image_ids(CONTRACT_IMAGES)
    x = _prior_images(prior, ids)
    reason, broken = _unsupported(solver, _measure(operator, x, ids)[0], torch.zeros_like(x))
    if broken is not None:
        return [Check("applies", op, False, broken)]
    if reason is not None:  # outside the solver's declared scope: nothing to check, not a failure
        return [Check("applies", op, True, f"n/a: {reason}")]
    model = CountingModel(prior)
    x_hat, nfe = _solve(solver, label, operator, x, ids, model)
    if isinstance(x_hat, BaseException):
        return [Check("runs", op, False, f"raised {first_line(x_hat)}")]
    problem = output_problem(x_hat, x)
    if problem is not None:
        return [Check("output", op, False, problem)]
    checks = [Check("output", op, True, f"{tuple(x_hat.shape)} {x_hat.dtype}")]
    finite = torch.isfinite(x_hat).flatten(1).all(1)
    checks.append(Check("finite", op, bool(finite.all()),
                        "all finite" if bool(finite.all()) else f"{int((~finite).sum())} of {len(ids)} images "
                        "have NaN or inf"))
    again, _ = _solve(solver, label, operator, x, ids, model)
    same = isinstance(again, Tensor) and again.shape == x_hat.shape and \
        bool(torch.isclose(again, x_hat, rtol=0, atol=0, equal_nan=True).all())  # NaN where NaN was: the same
    checks.append(Check("deterministic", op, same, "same generators, same output" if same else
                        "two calls with the same generators differ (global randomness or state kept between calls?)"))
    alone, nfe_alone = _solve(solver, label, operator, x[1:2], ids[1:2], model)
    if isinstance(alone, Tensor) and alone.shape == x_hat[1:2].shape:
        gap = float((alone - x_hat[1:2]).abs().max())
        invariant = gap <= BATCH_TOLERANCE or (math.isnan(gap) and not bool(finite[1]))
        checks.append(Check("batch-invariant", op, invariant, f"image 1 alone vs in a batch of {len(ids)}: max "
                            f"difference {gap:.1e} (tolerance {BATCH_TOLERANCE:g})" +
                            ("" if invariant else "; per-image norms and generators[i] only")))
    else:
        checks.append(Check("batch-invariant", op, False, f"a batch of one gave {alone!r:.80}"))
    nfe_same = nfe == nfe_alone
    if solver.nfe_depends_on_data():  # declared: a line search's calls depend on the image
        checks.append(Check("nfe", op, True, f"depends on the image (declared): {nfe:g} per image in a batch of "
                            f"{len(ids)}, {nfe_alone:g} for image 1 alone"))
    else:
        checks.append(Check("nfe", op, nfe_same, f"{nfe:g} network evaluations per image" if nfe_same else
                            f"{nfe:g} per image in a batch of {len(ids)} but {nfe_alone:g} alone"))
    return checks


def ground_truth(solver: Solver, label: str, operator: Operator, prior: ScoreModel) -> Check:
    """R = MSE / MMSE on exact-posterior problems, with the bound R >= 1 - 3 SE and references beside it; n/a
    under Poisson noise, whose posterior the Gaussian prior does not give in closed form."""
    if operator.noise != "gaussian":
        return Check("ground-truth", operator.label, True, f"n/a: the exact posterior is for Gaussian noise, "
                     f"not {operator.noise}")
    make = lg.make_latent_problem if isinstance(prior, LatentPrior) else gt.make_problem
    problem = make(prior, operator.label, operator.name, operator.params, TRUTH_IMAGES, 0)
    op = operator.label
    reason, broken = _unsupported(solver, problem.physics, torch.zeros_like(problem.x))
    if broken is not None:
        return Check("ground-truth", op, False, broken)
    if reason is not None:
        return Check("ground-truth", op, True, f"n/a: {reason}")
    start = time.perf_counter()
    try:
        score = gt.run_solver(label, solver, problem, prior)
    except SOLVER_FAILURES as exc:
        return Check("ground-truth", op, False, f"raised {first_line(exc)}")
    references = []
    for name in REFERENCES:
        reference = SOLVERS.get(name).create()
        if name != getattr(solver, "name", None) and prior_problem(reference, prior) is None:
            ref = gt.run_solver(name, reference, problem, prior)
            references.append(f"{name} {ref.ratio:.2f}")
    seconds = time.perf_counter() - start
    if score.finite < score.n:
        return Check("ground-truth", op, False, f"{score.n - score.finite} of {score.n} reconstructions "
                     f"diverged (beyond {gt.DIVERGED:g} image units)")
    beats = score.ratio < 1 - 3 * score.se
    detail = (f"R = MSE / MMSE = {score.ratio:.3f} +- {score.se:.3f} over {score.n} images "
              f"(built-in: {', '.join(references) or 'none other on this prior'}; {seconds:.1f} s)")
    if beats:
        detail += "; below the exact posterior mean's error: the solver used more than y (the truth?)"
    return Check("ground-truth", op, not beats, detail)
