"""Solvers against the MMSE bound on the analytic Gaussian prior (ipbench.checks.gaussian_truth, small n).

For x drawn from the prior and y = A x + n, the exact posterior mean E[x | y] minimises the expected
squared error over every estimator, so R = mean(e) / mean(m) >= 1 up to Monte-Carlo error for every
solver (e_i, m_i: per-image MSE of the solver and of E[x|y_i]). The bounds below are derived in comments;
none is a number the code produced. "3 SE" bounds are three-standard-error bounds (one-sided false
alarm about 0.13% under the normal approximation), with the SE computed from the same draws. Seeds are
fixed, so each test is deterministic. Images are 3 x 16 x 16 (D = 768); the whole file runs in well
under a minute on two loaded cores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.models.gaussian_flow import GaussianFlowModel
from ipbench.solvers import SOLVERS, Solver

SEED = 1  # not the benchmark's seed 0: the tests draw their own data
SIGMA_Y = 0.025
N = 32  # images per operator; the per-test SE is computed, not assumed


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)  # the benchmark's setting; tiny tensors gain nothing from more
    return gm.fit_model()


_PROBLEMS: dict[tuple[str, int], object] = {}


def problem(model, op: str, n: int = N):
    """The operator's batch (truth, y, exact posterior mean), cached across tests."""
    if (op, n) not in _PROBLEMS:
        _PROBLEMS[(op, n)] = gm.make_problem(model, op, op, {"sigma_y": SIGMA_Y}, n, SEED)
    return _PROBLEMS[(op, n)]


def beats_mmse(s) -> bool:
    """R < 1 - 3 SE: the solver does better than the MMSE bound allows (statistically)."""
    return s.ratio < 1 - 3 * s.se


# -- (1) the ground truth itself ------------------------------------------------------------------------
def test_dense_posterior_variance_is_the_closed_form_for_denoising(model):
    """For A = I the posterior covariance is diagonal in the prior's eigenbasis (eigenvalues lam of the
    image-units prior covariance, spectrum / 4): tr(Cov[x|y]) = sum lam s^2 / (lam + s^2). Exact algebra."""
    p = problem(model, "denoise")
    _, variance = model.posterior_dense(p.y[:1], p.physics64.A, SIGMA_Y)
    lam = model.spectrum / 4
    closed_form = float((lam * SIGMA_Y**2 / (lam + SIGMA_Y**2)).mean())
    assert float(variance.mean()) == pytest.approx(closed_form, rel=1e-9)  # float64 round-off only


@pytest.mark.parametrize("op,n", [("denoise", 64), ("inpaint-box", 64), ("inpaint-random", 12)])
def test_posterior_mean_error_matches_dense_posterior_trace(model, op, n):
    """E[m] = E[tr(Cov[x|y])] / D: the conjugate-gradient posterior mean's empirical MSE on prior draws
    must match the dense posterior's trace within 3 SE of the paired differences m_i - tr_i / D. This
    checks sampling, measurement, CG and the dense posterior against one another. inpaint-random needs
    one dense solve per image (its masks differ), hence the smaller n."""
    check = gm.dense_check(model, problem(model, op, n))
    assert abs(check["z"]) < 3, check
    # The two posterior means agree to CG's tolerance (relative residual 1e-7 on a system with
    # eigenvalues in [1, 1 + max lam / sigma_y^2]; 1e-5 is far above it and far below the posterior std 0.02).
    assert check["dense_vs_cg"] < 1e-5, check


# -- (2) tweedie is the MMSE estimator for denoising ------------------------------------------------------
def test_tweedie_on_denoise_attains_the_mmse_bound(model):
    """Tweedie at the matched t is E[x|y] for noise s' = sqrt((1 - ab_t) / ab_t) / 2 instead of sigma_y.
    Per prior eigenvalue lam its excess error over the MMSE, relative to the MMSE, is
    (w' - w)^2 (lam + s^2) / (lam s^2 / (lam + s^2)) <= delta^2 (w = lam / (lam + s^2), delta = s'/s - 1,
    first order; the maximum is at lam = s^2). So 1 <= E[R] <= 1 + delta^2. On top of that the solver's
    float32 arithmetic moves each e_i by at most 2 eps_i sqrt(e_i) + eps_i^2 (Cauchy-Schwarz), eps_i the
    per-pixel RMS distance between tweedie and the float64 exact posterior mean for s'."""
    p = problem(model, "denoise", 64)
    delta = gm.tweedie_mismatch(model, SIGMA_Y)
    assert abs(delta) < 0.01  # the grid of 1000 times matches sigma_y to 1% (else the bound below is loose)
    s = gm.run_solver("tweedie", SOLVERS.get("tweedie").create(), p, model)

    x_hat = SOLVERS.get("tweedie").create().solve(p.y, p.physics, model, gm.prior_generators(SEED, p.ids, "unused"))
    exact = model.posterior_mean(p.y, p.physics64.A, p.physics64.A_adjoint, SIGMA_Y * (1 + delta))
    eps = gm.per_image_mse(x_hat, exact).sqrt()
    assert float(eps.max()) < 1e-5  # float32 round-off, not a different estimator
    e = gm.per_image_mse(x_hat, p.x)
    rounding = float((2 * eps * e.sqrt() + eps**2).mean() / p.mmse.mean())

    assert abs(s.ratio - 1) <= delta**2 + 3 * s.se + rounding, (s, delta, rounding)
    assert abs(s.ratio - 1) < 1e-3  # what the bound above amounts to here: tight, not a 1% tolerance


# -- (3) no solver beats the bound ------------------------------------------------------------------------
def _solver(name: str) -> tuple[Solver, int]:
    """Registry defaults. deepinv-dps: num_steps=50 on 8 images, because at its default (1000 steps in
    float64) it takes minutes; the MMSE bound holds for any estimator, whatever its steps."""
    if name == "deepinv-dps":
        return SOLVERS.get(name).create({"num_steps": 50}), 8
    return SOLVERS.get(name).create(), N


@pytest.mark.parametrize("parametrisation", ["vp", "flow"])
@pytest.mark.parametrize("op", ["denoise", "inpaint-box", "inpaint-random"])
# latent solvers have their own bound, on a Gaussian latent prior: tests/test_latent_prior.py
@pytest.mark.parametrize("name", [n for n in SOLVERS.names() if SOLVERS.get(n).prior != "latent"])
def test_no_solver_beats_the_mmse_bound(model, name, op, parametrisation):
    """E[x|y] minimises E||x_hat(y, independent noise) - x||^2, so R >= 1 - 3 SE for every solver
    (at its registry defaults, clip included: the bound holds for any function of y), whether the solver sees
    the prior as the VP eps model or as the same prior written natively as a flow (models/gaussian_flow.py)."""
    solver, n = _solver(name)
    if solver.unsupported(problem(model, op).physics, torch.zeros_like(problem(model, op).x)) is not None:
        return  # declared n/a for this operator (tests/test_solvers.py checks the reason)
    prior = model if parametrisation == "vp" else GaussianFlowModel(model)
    s = gm.run_solver(name, solver, problem(model, op), prior, n)
    assert s.finite == s.n, s
    assert not beats_mmse(s), s


# -- (4) the bound check can fail ----------------------------------------------------------------------------
@dataclass
class Oracle(Solver):
    """Not registered: peeks at the truth. x_hat = x + noise of variance `fraction` x (MMSE per pixel),
    so E[e] = fraction E[m] and R = fraction < 1."""

    name = "oracle"
    fraction: float = 0.5

    def solve(self, y, op, model, generators):
        p = self.problem
        noise = torch.stack([torch.randn(p.x.shape[1:], generator=g) for g in generators])
        return p.x + math.sqrt(self.fraction * float(p.mmse.mean())) * noise


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.8])
def test_an_estimator_that_peeks_at_the_truth_fails_the_bound(model, fraction):
    """The same pipeline and criterion as test_no_solver_beats_the_mmse_bound, applied to an oracle with
    R = fraction: the check is not vacuous, down to a 20% gain over the MMSE with 32 images."""
    p = problem(model, "inpaint-random")
    oracle = Oracle(fraction)
    oracle.problem = p
    s = gm.run_solver(f"oracle-{fraction}", oracle, p, model)
    assert beats_mmse(s), s
    # ... while the exact posterior mean (R = 1, SE = 0) and exact posterior samples (R = 2) pass
    assert not beats_mmse(gm.score("mmse", p, p.posterior_mean))
    assert not beats_mmse(gm.score("sample", p, gm.posterior_sample(model, p)))


# -- (5) residuals -------------------------------------------------------------------------------------------
def test_exact_posterior_samples_have_chi_square_residuals(model):
    """For an exact posterior sample, A x_hat - y on the m coordinates that A sees is N(0, sigma_y^2 I_m)
    (THEORY in benchmarks/gaussian_mmse.py), so rho_i^2 = ||r_i||^2 / (sigma_y^2 m_i) has mean 1
    and variance 2 / m_i exactly; the mean over images is within 3 SE of 1. Also E[x|y] fits y more closely
    (E rho^2 = sigma_y^2 tr(K^-1) / m < 1) and a prior sample, which ignores y, far less closely."""
    p = problem(model, "inpaint-random")
    rho2 = gm.residual_ratio(p, gm.posterior_sample(model, p)).square()
    m = p.seen.flatten(1).sum(1)
    se = float((2 / m).sum().sqrt() / len(m))
    assert abs(float(rho2.mean()) - 1) < 3 * se, (float(rho2.mean()), se)
    assert float(gm.residual_ratio(p, p.posterior_mean).mean()) < 1 - 3 * se


RESIDUAL_BAND_HIGH = 1.5


@pytest.mark.parametrize("name", ["dps", "ddnm", "score-ald", "score-ald-ddpm"])
def test_posterior_samplers_agree_with_the_measurement(model, name):
    """rho = ||A x_hat - y|| / (sigma_y sqrt(m)), mean over images, on inpaint-random at defaults.

    Band, justified from both ends (the samplers are approximate, so the exact-sample value 1 +- 3 SE,
    about 1 +- 0.01 here, is not required of them):
    - lower: rho of E[x|y] (computed) minus 3 SE. Any estimator E[x|y] + independent zero-mean spread,
      exact posterior samples included, has E||r||^2 >= E||y - A E[x|y]||^2 (the cross term vanishes); a
      sampler below it fits the noise more closely than the Bayes estimate does.
    - upper: 1.5, i.e. a misfit at most 1.5 times the noise level sigma_y sqrt(m) (the issue's "near
      sigma_y sqrt(m)"). Estimators that do not use y are far outside: a prior sample has rho ~ 10,
      asserted below so that the band is not vacuous.
    Measured (seed 1, n = 32, defaults): dps 0.82, ddnm 1.00, score-ald 1.03 (annealed Langevin with the exact
    score samples the posterior, whose value is 1), score-ald-ddpm 1.20 (1.37 with its former clip=true);
    E[x|y] 0.50.
    """
    p = problem(model, "inpaint-random")
    s = gm.run_solver(name, SOLVERS.get(name).create(), p, model)
    mean_fit = gm.residual_ratio(p, p.posterior_mean)
    low = float(mean_fit.mean()) - 3 * math.hypot(float(mean_fit.std()) / math.sqrt(N), s.residual_se)
    assert low <= s.residual <= RESIDUAL_BAND_HIGH, (s, low)

    ignores_y = gm.score("prior sample", p, gm.prior_references(model, p)["prior sample (ignores y)"])
    assert ignores_y.residual > 2 * RESIDUAL_BAND_HIGH
