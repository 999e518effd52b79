"""Every solver against the MMSE bound on the analytic Gaussian prior.

For x drawn from the Gaussian prior and y = A x + n (n ~ N(0, sigma_y^2 I)), the exact posterior mean
E[x | y] minimises the expected squared error over all estimators, so for every solver

    R = mean_i ||x_hat_i - x_i||^2 / mean_i ||E[x | y_i] - x_i||^2  >=  1   (up to Monte-Carlo error).

An exact posterior sample has R = 2, and ||A x_hat - y||^2 / sigma_y^2 ~ chi^2_m (see `THEORY`). This script
draws the ground truth from the prior, measures it with each operator, runs each solver, and writes a
Markdown table of R +- SE and the residual ratio ||A x_hat - y|| / (sigma_y sqrt(m)) per solver and
operator. The ground truth (problems, exact posterior, scores) is ipbench.checks.gaussian_truth, which
tests/test_gaussian_mmse.py checks; this script chooses the solvers and operators and renders the table.

    python benchmarks/gaussian_mmse.py --num-images 512 --out results/gaussian_mmse.md   # about 8 minutes on 1 core
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ipbench.checks.gaussian_truth import (DIVERGED, SHAPE, Score, dense_check, fit_model, make_problem,
                                          posterior_sample, prior_references, run_solver, score, tweedie_mismatch)
from ipbench.results.report import publish
from ipbench.solvers import SOLVERS, Solver


# (label, operator name, operator parameters). At 16 px the default deblur-gauss kernel is the DPS kernel
# scaled to the image (3 x 3, sigma 0.1875 px): its off-centre taps are 7e-7, so it is the identity to
# float32 precision. The extra column is a real blur at this size.
OPERATORS: list[tuple[str, str, dict[str, Any]]] = [
    ("denoise", "denoise", {}),
    ("inpaint-box", "inpaint-box", {}),
    ("inpaint-random", "inpaint-random", {}),
    ("deblur-gauss", "deblur-gauss", {}),
    ("deblur-gauss(k=7,s=1)", "deblur-gauss", {"kernel_size": 7, "sigma": 1.0}),
]

# Every registered solver at its defaults (clip=false where it has `clip`), plus informative variants.
# deepinv-dps runs at num_steps=100 on --deepinv-images images only (its default 1000 steps, one image at a
# time, is too slow here).
DEFAULT_SOLVERS = ["hole-fill", "gaussian-filter", "tikhonov", "tweedie", "ddpm", "sdedit", "sdedit:guide=back-projection",
                   "dps", "dps:normalize=residual", "dps:clip=true", "ddnm", "ddrm", "diffpir", "diffpir:clip=true",
                   "pigdm", "reddiff", "daps", "repaint", "score-ald", "score-ald:likelihood=normalized",
                   "score-ald-ddpm", "score-ald-ddpm:weighting=unit", "deepinv-dps:num_steps=100",
                   "deepinv-dps:num_steps=100,step=paper"]

THEORY = """\
- **MMSE bound.** E[x | y] minimises E||x_hat - x||^2 over all estimators x_hat(y) (with or without
  independent randomness), so E[e] >= E[m] and R >= 1 for every solver. An R below 1 - 3 SE means the
  solver sees the truth, or the metric is wrong.
- **Posterior samples.** If x_hat ~ p(x | y) independently of x given y, then x_hat - x = (x_hat - E[x|y]) -
  (x - E[x|y]) is a sum of two independent, identically distributed errors, so E[e] = 2 E[m] (R = 2).
  The row *exact posterior sample* draws such samples by Matheron's rule (x_hat = E[x|y] + x' - E[x'|y'],
  x' ~ prior, y' = A x' + n') and checks this.
- **Residuals.** For an exact posterior sample, r = A x_hat - y restricted to the m measurements that A
  sees (rows of A that are not zero, e.g. the observed pixels x channels of an inpainting mask) is exactly
  N(0, sigma_y^2 I_m): in the eigenbasis of A Sigma A^T (eigenvalues s), the posterior-mean residual has
  variance sigma_y^4 / (s + sigma_y^2) and the posterior spread adds s sigma_y^2 / (s + sigma_y^2), independently.
  So ||r||^2 / sigma_y^2 ~ chi^2_m and the ratio ||r|| / (sigma_y sqrt(m)) is 1 - O(1/m) with per-image std
  about 1/sqrt(2 m). The truth itself has the same residual (r = -n); the posterior mean has a smaller one.
  (Rows of A that are zero, e.g. masked pixels, carry pure noise and are left out of m and of ||r||.)
- **tweedie on denoise.** One Tweedie step at the matched time t is the exact posterior mean for noise
  sigma' = sqrt((1 - ab_t) / ab_t) / 2 instead of sigma_y. Per prior eigenvalue lam the excess error of the
  shrinkage lam / (lam + sigma'^2) over lam / (lam + sigma_y^2) is (w' - w)^2 (lam + sigma_y^2), which relative to
  the MMSE lam sigma_y^2 / (lam + sigma_y^2) is at most delta^2 (delta = sigma'/sigma_y - 1, to first order;
  the maximum is at lam = sigma_y^2). So 1 <= E[R] <= 1 + delta^2.
- **Ground-truth check.** mean_i tr(Cov[x | y_i]) / D from the dense posterior is E[m]; the empirical
  mean(m) from the conjugate-gradient posterior mean must agree within its Monte-Carlo error.
- **SE** of R = mean(e) / mean(m): delta method on the paired per-image values,
  SE = sd(e_i - R m_i) / (sqrt(n) mean(m)).
"""


# -- solver specs -------------------------------------------------------------------------------------------
def parse_solver(spec: str) -> tuple[str, Solver]:
    """'name' or 'name:key=value,key=value' -> (label, solver); clip=false unless the spec sets clip."""
    name, _, rest = spec.partition(":")
    values = dict(item.split("=", 1) for item in rest.split(",") if item)
    cls = SOLVERS.get(name)
    if "clip" in {p.name for p in cls.params()} and "clip" not in values:
        values["clip"] = "false"
    solver = cls.create(values)
    shown = {k: v for k, v in values.items() if not (k == "clip" and v == "false")}
    label = cls.name + (" " + " ".join(f"{k}={v}" for k, v in shown.items()) if shown else "")
    return label, solver


# -- the table ---------------------------------------------------------------------------------------------
def cell(s: Score | None) -> tuple[str, str]:
    if s is None:
        return "", ""
    if s.finite < s.n:
        return f"diverged ({s.n - s.finite}/{s.n})", "-"
    if not math.isfinite(s.ratio):
        return "diverged", "-"
    if s.ratio >= 100:
        r = f"{s.ratio:.3g} ± {s.se:.2g}"
    elif s.se < 5e-4:  # tweedie on denoise: show the digits that the theory speaks about
        r = f"{s.ratio:.5f} ± {s.se:.5f}"
    else:
        r = f"{s.ratio:.3f} ± {s.se:.3f}"
    flag = " **<1**" if s.ratio < 1 - 3 * s.se else ""
    res = f"{s.residual:.3g}" if s.residual >= 100 else f"{s.residual:.3f}"
    return r + flag, res


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ipbench"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        return commit + (" (+ uncommitted changes in ipbench/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(args: argparse.Namespace, scores: list[Score], checks: dict[str, dict[str, float]], delta: float,
           labels: list[str], solver_labels: list[str], problems: list[str], seconds: float, model_note: str,
           not_applicable: set[tuple[str, str]] = frozenset()) -> str:
    by = {(s.label, s.problem): s for s in scores}
    head = ["solver", *[f"{p} {what}" for p in problems for what in ("R", "res")]]
    lines = [
        "# Solvers against the MMSE bound on the analytic Gaussian prior",
        "",
        f"- Command: `{args.command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; ipbench commit "
        f"{git_commit()}; torch {torch.__version__}; {torch.get_num_threads()} thread(s); total {seconds:.0f} s.",
        f"- Model: {model_note}",
        f"- Data: n = {args.num_images} prior samples per operator (image units, *not* clamped to [0, 1]); "
        f"seed {args.seed} (truth: seed_for('prior', seed, id); measurement/solver generators: "
        "ipbench.seeding with the column label as the operator name).",
        f"- Operators: sigma_y = {args.sigma_y} (image units) for all; defaults otherwise, plus "
        "deblur-gauss with kernel_size=7, sigma=1 px (the default kernel at 16 px is 3 x 3 with sigma 0.1875 px, "
        "i.e. the identity to 7e-7).",
        "- Solvers: registry defaults, **with clip=false** for every solver that has a `clip` field (the truth "
        "is not in [0, 1], so clipping would be a bias), except the row that says clip=true. "
        f"deepinv-dps runs with num_steps=100 on the first {args.deepinv_images} images only (its default "
        "1000 steps in float64 is too slow here); deepinv clips its guidance x0 to [-1, 1].",
        "- **R** = mean_i e_i / mean_i m_i, e_i = ||x_hat_i - x_i||^2 / D, m_i the same for the exact posterior "
        "mean E[x|y_i] (conjugate gradients, float64). ± is one standard error (delta method). "
        f"**<1** marks R < 1 - 3 SE. *diverged (k/n)*: k of n reconstructions non-finite or beyond {DIVERGED:g} in "
        "absolute value (image units). n/a: the solver does not apply to the operator (`Solver.unsupported`).",
        "- Reference rows: the exact posterior mean (R = 1 by definition), exact posterior samples (Matheron's "
        "rule; theory R = 2, res = 1), and two estimators that ignore y (the prior mean and a prior sample).",
        "- **res** = mean_i ||A x_hat_i - y_i|| / (sigma_y sqrt(m_i)) over the m_i coordinates of y that A sees "
        "(1 for exact posterior samples and for the truth, up to O(1/m); below 1 for the posterior mean).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label in labels:
        cells = [("n/a", "") if (label, p) in not_applicable else cell(by.get((label, p))) for p in problems]
        lines.append("| " + " | ".join([label, *[part for c in cells for part in c]]) + " |")
    lines += ["", "Seconds per solver and operator (all images, one thread):", "",
              "| solver | " + " | ".join(problems) + " |", "|" + "---|" * (len(problems) + 1)]
    for label in solver_labels:
        lines.append("| " + " | ".join([label, *[f"{by[(label, p)].seconds:.1f}" if (label, p) in by else ""
                                                  for p in problems]]) + " |")
    lines += ["", "Ground-truth checks (dense posterior, D = 768):", "",
              "| operator | mean(m) (CG) | mean tr(Cov)/D (dense) | z | max abs(dense mean - CG mean) | dense solves |",
              "|---|---|---|---|---|---|"]
    for p in problems:
        c = checks[p]
        lines.append(f"| {p} | {c['mmse_empirical']:.6f} | {c['mmse_dense']:.6f} | {c['z']:+.2f} | "
                     f"{c['dense_vs_cg']:.1e} | {c['dense_solves']} |")
    lines += ["", f"tweedie's matched noise: delta = sigma'/sigma_y - 1 = {delta:+.5f}, so its expected R on denoise "
              f"is in [1, 1 + {delta**2:.1e}].", "", "## Theory", "", THEORY]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("results/gaussian_mmse.md"))
    parser.add_argument("--solvers", nargs="+", default=DEFAULT_SOLVERS,
                        help="solver specs: NAME or NAME:key=value,key=value (clip=false is added where it exists)")
    parser.add_argument("--operators", nargs="+", default=[label for label, *_ in OPERATORS],
                        help="column labels from OPERATORS")
    parser.add_argument("--deepinv-images", type=int, default=32, help="images for deepinv-dps (slow)")
    parser.add_argument("--sigma-y", type=float, default=0.025)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    args.command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *given])
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    model = fit_model()
    model_note = (f"GaussianScoreModel.fit(load_images('photos', {SHAPE}).images) (8 bundled photos), radial spectrum, "
                  f"linear DDPM schedule (T = {model.num_timesteps}); D = {math.prod(SHAPE)}.")
    solvers = [parse_solver(spec) for spec in args.solvers]
    known = {label: (name, params) for label, name, params in OPERATORS}
    scores: list[Score] = []
    checks: dict[str, dict[str, float]] = {}
    references = ["exact posterior mean (MMSE)", "exact posterior sample (Matheron)", "prior mean (ignores y)",
                  "prior sample (ignores y)"]
    labels = [*references, *[label for label, _ in solvers]]
    not_applicable: set[tuple[str, str]] = set()
    for op_label in args.operators:
        name, params = known[op_label]
        problem = make_problem(model, op_label, name, {**params, "sigma_y": args.sigma_y}, args.num_images, args.seed)
        checks[op_label] = dense_check(model, problem)
        print(f"[{time.perf_counter() - start:6.0f} s] {op_label}: {checks[op_label]}", flush=True)
        scores.append(score(references[0], problem, problem.posterior_mean))
        scores.append(score(references[1], problem, posterior_sample(model, problem)))
        scores += [score(label, problem, x_hat) for label, x_hat in prior_references(model, problem).items()]
        for label, solver in solvers:
            reason = solver.unsupported(problem.physics, torch.zeros_like(problem.x))
            if reason is not None:  # outside the solver's scope (RePaint on denoising): n/a, not a score
                not_applicable.add((label, op_label))
                print(f"[{time.perf_counter() - start:6.0f} s]   {label:32s} n/a: {reason}", flush=True)
                continue
            n = min(args.deepinv_images, args.num_images) if solver.name == "deepinv-dps" else None
            s = run_solver(label, solver, problem, model, n)
            scores.append(s)
            print(f"[{time.perf_counter() - start:6.0f} s]   {label:32s} R = {s.ratio:.4f} ± {s.se:.4f}  "
                  f"res = {s.residual:.3f}  ({s.seconds:.1f} s, n = {s.n})", flush=True)
    text = render(args, scores, checks, tweedie_mismatch(model, args.sigma_y), labels, [label for label, _ in solvers],
                  list(args.operators), time.perf_counter() - start, model_note, not_applicable)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
