"""Latent priors (models/latent.py): the linear autoencoder, the exact latent posterior, where solvers apply, and
the latent solvers against the MMSE bound of a Gaussian latent prior (checks/latent_gaussian.py)."""
from __future__ import annotations

import copy

import pytest
import torch

from ipbench.checks import gaussian_truth as gm
from ipbench.checks import latent_gaussian as lg
from ipbench.models.base import to_model
from ipbench.models.latent import autoencoder_of, pixel_shape
from ipbench.models.counting import CountingModel
from ipbench.models.linear_autoencoder import LinearAutoencoder
from ipbench.solvers import SOLVERS
from ipbench.solvers.base import prior_problem

N = 24  # images per problem: enough for R's standard error to be a few percent

LATENT_SOLVERS = [name for name in SOLVERS.names() if SOLVERS.get(name).prior == "latent"]


@pytest.fixture(scope="module")
def prior():
    return lg.fit_latent_prior()


_problems: dict = {}


def problem(prior, op: str):
    if op not in _problems:
        _problems[op] = lg.make_latent_problem(prior, op, op, {}, N, seed=0)
    return _problems[op]


def test_the_linear_autoencoder_is_an_orthogonal_projection():
    """encode(decode(z)) = z, and decode(encode(x)) is idempotent: the projection onto the decoder's range."""
    ae = LinearAutoencoder.random((1, 8, 8), (1, 4, 4), seed=3)
    z = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ae.encode(ae.decode(z)), z)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    once = ae.decode(ae.encode(x))
    torch.testing.assert_close(ae.decode(ae.encode(once)), once)
    assert float((once - x).abs().max()) > 0.1  # a 16-dimensional range does not hold a random 64-pixel image
    assert (ae.decoded, ae.encoded) == (3 * 5, 3 * 5)  # the counts a row reports


def test_a_basis_that_is_not_orthonormal_is_refused():
    with pytest.raises(ValueError, match="orthonormal"):
        LinearAutoencoder(torch.ones(64, 16, dtype=torch.float64), (1, 8, 8), (1, 4, 4))


def test_the_exact_posterior_mean_is_the_dense_gaussian_conditional(prior):
    """E[x | y] from the latent CG against the textbook Gaussian conditional computed densely in image space:
    x = M u + c with u ~ N(mu, S), so E[x | y] = mu_x + S_x A^T (A S_x A^T + sigma^2 I)^-1 (y - A mu_x)."""
    p = problem(prior, "inpaint-box")
    latent, ae = prior.latent, prior.autoencoder
    d = int(torch.Size(ae.latent_shape).numel())
    eye = torch.eye(d, dtype=torch.float64).view(d, *ae.latent_shape)
    mean_u, cov_u, _ = latent.image_prior()
    S_u = cov_u(eye).reshape(d, d)
    mu_u = mean_u.expand(*ae.latent_shape).reshape(d)
    M = ae.basis
    c = (1 - M.sum(1)) / 2
    S_x, mu_x = M @ S_u @ M.T, M @ mu_u + c
    P = S_x.shape[0]
    one = gm._slice_physics(p.physics64, 1)  # the box is the same for every image: one matrix serves
    A = torch.cat([one.A(e.view(1, *ae.image_shape)).reshape(1, -1) for e in torch.eye(P, dtype=torch.float64)]).T
    gain = S_x @ A.T @ torch.linalg.inv(A @ S_x @ A.T + p.sigma_y ** 2 * torch.eye(A.shape[0], dtype=torch.float64))
    dense = mu_x + (p.y.double().flatten(1) - mu_x @ A.T) @ gain.T
    torch.testing.assert_close(p.posterior_mean.flatten(1), dense, atol=1e-6, rtol=0)


def test_pixel_solvers_are_not_applied_to_latent_priors_nor_latent_solvers_to_pixel_ones(prior, small_model):
    """A pixel solver would treat latents as pixels; a latent solver needs a decoder: both are n/a with a reason.
    Classical solvers do not use the prior and run on either. Wrappers (the run's counter) are looked through."""
    counted = CountingModel(prior)
    assert autoencoder_of(counted) is prior.autoencoder and pixel_shape(counted) == prior.autoencoder.image_shape
    assert "latent prior" in prior_problem(SOLVERS.get("dps").create(), counted)
    assert "needs a latent prior" in prior_problem(SOLVERS.get("latent-dps").create(), small_model)
    assert prior_problem(SOLVERS.get("latent-dps").create(), counted) is None
    assert prior_problem(SOLVERS.get("tikhonov").create(), counted) is None
    assert prior_problem(SOLVERS.get("dps").create(), small_model) is None


@pytest.mark.parametrize("op", ["denoise", "inpaint-box"])
@pytest.mark.parametrize("name", LATENT_SOLVERS)
def test_no_latent_solver_beats_the_mmse_bound(prior, name, op):
    """E[x|y] minimises the expected squared error over all functions of y, so R >= 1 - 3 SE; and the solver uses
    the data: its R is below that of a prior sample that ignores y (twice the prior mean's)."""
    p = problem(prior, op)
    score = gm.run_solver(name, SOLVERS.get(name).create(), p, prior)
    assert score.finite == score.n, score
    assert score.ratio >= 1 - 3 * score.se, score
    ignores_y = lg.sample_images(prior, N, gm.prior_generators(1, p.ids, "ignores-y"))
    assert score.ratio < gm.score("prior sample", p, ignores_y.float()).ratio, score


def test_the_bound_check_fails_an_estimator_that_peeks_at_the_truth(prior):
    """The truth plus noise of half the MMSE's variance has R = 0.5: the check above would reject it."""
    p = problem(prior, "inpaint-box")
    noise = torch.randn(p.x.shape, generator=torch.Generator().manual_seed(0))
    peek = p.x + (0.5 * float(p.mmse.mean())) ** 0.5 * noise
    score = gm.score("peek", p, peek)
    assert score.ratio < 1 - 3 * score.se, score


def test_latent_dps_steps_through_the_decoder(prior):
    """One decode per step with a backward, and the final decode: a row's `decodes` is steps + 1 per image."""
    p = problem(prior, "denoise")
    ae = copy.deepcopy(prior.autoencoder)
    ae.reset_counts()  # the shared prior has counted the other tests' calls
    model = type(prior)(prior.latent, ae)
    solver = SOLVERS.get("latent-dps").create({"steps": "7"})
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    x_hat = solver.solve(p.y[:3], gm._slice_physics(p.physics, 3), model, gens)
    assert ae.decoded == 3 * 8 and ae.encoded == 0
    assert x_hat.shape == (3, *ae.image_shape)
    torch.testing.assert_close(ae.decode(ae.encode(x_hat.double())), x_hat.double(), atol=1e-5, rtol=0)  # decoded


def test_a_run_on_the_built_in_latent_prior_records_autoencoder_calls_and_n_a(tmp_path):
    from ipbench.benchmark.runner import run
    from ipbench.benchmark.spec import build_spec
    from ipbench.results.rows import run_rows
    import json

    spec = build_spec(["latent-dps", "dps", "tikhonov"], ["inpaint"], ["latent-dps.steps=3"], model="gaussian-latent",
                      num_images=2)
    out = run(spec, out=tmp_path / "r", batch_size=2, progress=False).out
    rows = {r["solver"]: r for r in run_rows(out)}
    assert rows["latent-dps"]["status"] == "ok" and rows["latent-dps"]["decodes"] == 4
    assert rows["dps"]["status"] == "skipped" and "latent prior" in rows["dps"]["error"]
    assert rows["tikhonov"]["status"] == "ok" and "decodes" in rows["tikhonov"]
    meta = json.loads((out / "run.json").read_text())
    assert meta["model"]["image_shape"] == [3, 32, 32] and meta["model"]["latent_shape"] == [3, 16, 16]


def test_sample_images_are_decodings(prior):
    x = lg.sample_images(prior, 4, gm.prior_generators(0, gm.image_ids(4)))
    ae = prior.autoencoder
    torch.testing.assert_close(ae.decode_latents(ae.encode_images(x)), x)
    assert to_model(x).abs().max() < 10  # a sane scale: pixel values of the order of the images fitted


def test_bench_check_checks_a_latent_solver_on_the_latent_gaussian():
    """`bench check` gives a latent solver the latent prior: its contract and ground truth pass, nothing n/a."""
    from ipbench.checks.solver_check import check_solver

    checks = check_solver(SOLVERS.get("latent-dps").create({"steps": "10"}), "latent-dps", log=lambda line: None)
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    truth = [c for c in checks if c.what == "ground-truth"]
    assert len(truth) == 3 and all(c.detail.startswith("R = MSE / MMSE") for c in truth)
