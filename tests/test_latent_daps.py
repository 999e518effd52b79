"""Latent DAPS (solvers/latent_daps.py): on the identity autoencoder it is `daps` where the two algorithms coincide,
its HMC chain against the exact law of the discretised chain on a Gaussian target, the clamped data gradient in the
code's units, the preset's step conversion, its decoder calls, and finite answers on phase retrieval."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from ipbench.checks import latent_gaussian as lg
from ipbench.data import load_images
from ipbench.errors import UsageError
from ipbench.models import GaussianScoreModel
from ipbench.models.base import to_image, to_model
from ipbench.models.counting import CountingModel
from ipbench.models.latent import LatentPrior
from ipbench.models.linear_autoencoder import LinearAutoencoder
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.daps import OFFICIAL_TAU, posterior_chain
from ipbench.solvers.latent_daps import CODE_CLIP, PAPER_PRESET, decoder_misfit_gradient
from tests.conftest import generators

SHAPE = (3, 16, 16)
N = 8  # images: 8 x 3 x 16 x 16 = 6144 coordinates per chain statistic


@pytest.fixture(scope="module")
def pixel_prior() -> GaussianScoreModel:
    return GaussianScoreModel.fit(load_images("photos", SHAPE).images)


def identity_autoencoder() -> LinearAutoencoder:
    """decode(z) = to_image(z), encode(x) = to_model(x): a square orthonormal basis (the identity), latents = images."""
    size = int(torch.Size(SHAPE).numel())
    return LinearAutoencoder(torch.eye(size, dtype=torch.float64), SHAPE, SHAPE)


@pytest.fixture(scope="module")
def identity_prior(pixel_prior) -> LatentPrior:
    """The pixel Gaussian as a latent prior through the identity autoencoder: the same prior over the same images."""
    return LatentPrior(pixel_prior, identity_autoencoder())


def _measured(op: str, n: int = 3, seed: int = 0):
    x = load_images("photos", SHAPE, num_images=n).images
    gens = generators(n, seed)
    physics = Operator.create(op).build(SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


SCHEDULE = {"steps": 6, "ode_steps": 2, "langevin_steps": 8, "lr": 1.0, "lr_min_ratio": 0.03, "sigma_max": 10.0}


@pytest.mark.parametrize("op", ["inpaint-box", "deblur-gauss", "phase-retrieval"])
def test_on_the_identity_autoencoder_latent_daps_with_langevin_and_no_clamp_is_daps(pixel_prior, identity_prior, op):
    """With decode = to_image the latent chain's data term is daps's (grad_z ||A to_image(z) - y||^2 = A^T r), so at
    momentum 0 (the code's Langevin update) and without the code's clamp the two algorithms coincide: the same
    levels, ODE, steps, noise draws and answer, also for a nonlinear A. The reported steps are the same too."""
    physics, y = _measured(op)
    seen = {"daps": [], "latent-daps": []}
    answers = {}
    for name, extra in [("daps", {}), ("latent-daps", {"momentum": 0.0, "grad_clip": None})]:
        solver = SOLVERS.get(name).create({**SCHEDULE, **extra})
        solver.step_hook = lambda t, x_t, x0, name=name: seen[name].append((t, x_t, x0))
        model = pixel_prior if name == "daps" else identity_prior
        answers[name] = solver.solve(y, physics, model, generators(3, 50))
    torch.testing.assert_close(answers["latent-daps"], answers["daps"], rtol=0, atol=1e-6)
    assert len(seen["daps"]) == len(seen["latent-daps"]) == SCHEDULE["steps"]
    for (t, x_t, x0), (t_l, z_t, z0) in zip(seen["daps"], seen["latent-daps"]):
        assert t == t_l
        torch.testing.assert_close(z_t, x_t, rtol=0, atol=1e-6)
        torch.testing.assert_close(z0, x0, rtol=0, atol=1e-6)


def test_where_the_algorithms_differ_the_answers_differ(pixel_prior, identity_prior):
    """The code's HMC (momentum > 0) and its clamp are what latent DAPS adds: each one alone changes the answer, by
    far more than the 1e-6 of the test above (the clamp acts only where z0_hat misses y by more than 1/4, on the
    first steps of a level's chain, so its trace in the answer is small)."""
    physics, y = _measured("inpaint-box")
    daps = SOLVERS.get("daps").create(SCHEDULE).solve(y, physics, pixel_prior, generators(3, 50))
    for extra, least in [({"momentum": 0.8, "grad_clip": None}, 1e-2),
                         ({"momentum": 0.0, "grad_clip": CODE_CLIP}, 1e-4)]:
        latent = SOLVERS.get("latent-daps").create({**SCHEDULE, **extra}).solve(y, physics, identity_prior,
                                                                                generators(3, 50))
        assert float((latent - daps).abs().max()) > least, extra


def _hmc_law(e0: torch.Tensor, c: torch.Tensor, step: float, momentum: float, steps: int, v0_var: float = 1.0):
    """Mean and variance of z_K - mu for the damped HMC chain on a Gaussian target of precision c, exactly: with
    e = z - mu, v' = m v - h c e + s n and e' = e + h v' (h = sqrt(step), s = sqrt(2 (1 - m))), the state (e, v)
    is a linear Gaussian recursion from (e0, v0 ~ N(0, v0_var)); its moments follow (M mean, M C M^T + b b^T).
    At momentum 0 it is the Langevin chain's law (v0 then has no effect)."""
    h, s, m = math.sqrt(step), math.sqrt(2 * (1 - momentum)), momentum
    mean_e, mean_v = e0.double(), torch.zeros_like(e0, dtype=torch.float64)
    c_ee, c_ev, c_vv = torch.zeros_like(mean_e), torch.zeros_like(mean_e), torch.full_like(mean_e, v0_var)
    a11, a12, a21, a22, b1, b2 = 1 - h * h * c, h * m, -h * c, m, h * s, s
    for _ in range(steps):
        mean_e, mean_v = a11 * mean_e + a12 * mean_v, a21 * mean_e + a22 * mean_v
        c_ee, c_ev, c_vv = (a11 * a11 * c_ee + 2 * a11 * a12 * c_ev + a12 * a12 * c_vv + b1 * b1,
                            a11 * a21 * c_ee + (a11 * a22 + a12 * a21) * c_ev + a12 * a22 * c_vv + b1 * b2,
                            a21 * a21 * c_ee + 2 * a21 * a22 * c_ev + a22 * a22 * c_vv + b2 * b2)
    return mean_e, c_ee


def test_the_hmc_chain_through_the_decoder_has_the_exact_law_of_the_discretised_chain():
    """The code's damped HMC (cores/mcmc.py:82-83, 89-92) on N(z; z0_hat, r^2) N(y; m to_image(z), tau^2) through
    the identity decoder: per coordinate a Gaussian target of precision c = 1/r^2 + m/(2 tau)^2 and mean
    (z0_hat/r^2 + m to_model(y)/(2 tau)^2) / c, so from a fixed z0_hat the chain after K steps is Gaussian with the
    moments of `_hmc_law`. Standardised by them, the output must be N(0, 1) over 6144 coordinates (3 SE). The test
    tells the code's chain from near misses: the Langevin chain's law, or HMC's without the initial velocity draw
    (a chain with either would be standardised by the wrong moments, as the true chain is here by them)."""
    gens = generators(N, 3)
    physics = Operator.create("inpaint-box", {"sigma_y": 0.0}).build(SHAPE, gens, torch.device("cpu"))
    y = measure(physics, torch.rand(N, *SHAPE, generator=torch.Generator().manual_seed(5)), gens)
    z0_hat = 0.3 * torch.randn(N, *SHAPE, generator=torch.Generator().manual_seed(6))
    r, tau, steps, momentum = 0.05, 0.025, 10, 0.9  # observed c = 800, hidden c = 400; the start still shows
    step = 0.5 / 800
    ae = identity_autoencoder()
    score = lambda z: -decoder_misfit_gradient(z, y, physics, ae, None) / (2 * tau**2)  # noqa: E731
    z = posterior_chain(z0_hat, r, score, step, steps, generators(N, 9), momentum)
    mask = physics.mask.expand_as(y).double()
    c = 1 / r**2 + mask / (2 * tau) ** 2
    mu = (z0_hat.double() / r**2 + mask * to_model(y).double() / (2 * tau) ** 2) / c
    n = z.numel()

    def standardised(momentum: float, v0_var: float = 1.0) -> torch.Tensor:
        mean, var = _hmc_law(z0_hat.double() - mu, c, step, momentum, steps, v0_var)
        return (z.double() - mu - mean) / var.sqrt()

    exact = standardised(momentum)
    assert abs(float(exact.mean())) < 3 / math.sqrt(n)
    assert abs(float(exact.var()) - 1) < 3 * math.sqrt(2 / n)
    for wrong in (standardised(0.0), standardised(momentum, v0_var=0.0)):
        assert abs(float(wrong.var()) - 1) > 2 * 3 * math.sqrt(2 / n)


def test_the_data_gradient_is_the_codes_clamped_one_in_image_units():
    """Through the identity decoder grad_z ||m to_image(z) - y||^2 = m (to_image(z) - y); the code's gradient of its
    [-1, 1] residual is 4 times that, clamped to [-1, 1], over tau_code^2 = 0.01^2: the same data term as
    ipbench's clamp to [-1/4, 1/4] over 2 tau^2 with tau = 0.01 / (2 sqrt 2)."""
    physics, y = _measured("inpaint-box", n=2)
    z = 0.8 * torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(1))
    ae = identity_autoencoder()
    mask = physics.mask.expand_as(y)
    raw = decoder_misfit_gradient(z, y, physics, ae, None)
    torch.testing.assert_close(raw, mask * (to_image(z) - y), rtol=1e-6, atol=1e-7)
    clipped = decoder_misfit_gradient(z, y, physics, ae, CODE_CLIP)
    assert float(raw.abs().max()) > 2 * CODE_CLIP and float(clipped.abs().max()) <= CODE_CLIP
    code_grad = 2 * mask * (z - to_model(y))  # d/dz ||m z - m (2 y - 1)||^2, the code's [-1, 1] residual
    code_term = -code_grad.clamp(-1, 1) / 0.01**2
    ipbench_term = -clipped / (2 * OFFICIAL_TAU**2)
    torch.testing.assert_close(ipbench_term, code_term, rtol=1e-3, atol=1e-3)
    assert ae.decoded == 2 * 2 and ae.encoded == 0  # one decode per gradient


def test_the_presets_step_is_the_codes_absolute_lr():
    """eta = lr / (1 / sigma^2 + 1 / (2 tau)^2) at the preset's lr is the code's absolute lr (configs/task/*.yaml,
    ldm sections) to within 1% over the annealing range sigma in [0.1, 10] (0.5% the prior's 1 / sigma^2, 0.5% the
    rounding to 3 digits; 2.5% for phase retrieval's tau), and
    each value keeps the HMC stable (lr <= 2 (1 + momentum))."""
    code_lr = {"inpaint-box": 9.02e-6, "inpaint-random": 8.4e-6, "deblur-gauss": 2.7e-6, "deblur-motion": 2.4e-5,
               "sr": 1.35e-4, "phase-retrieval": 2.1e-5, "hdr": 4.52e-6, "deblur-nonlinear": 3.71e-6}
    assert set(PAPER_PRESET.operators) == set(code_lr)
    for family, settings in PAPER_PRESET.operators.items():
        lr, tau = settings["lr"].value, settings["tau"].value
        bound = 0.025 if family == "phase-retrieval" else 0.01
        for sigma in (0.1, 1.0, 10.0):
            eta = lr / (1 / sigma**2 + 1 / (2 * tau) ** 2)
            assert abs(eta / code_lr[family] - 1) < bound, (family, sigma)
        assert lr <= 2 * (1 + settings["momentum"].value)
        SOLVERS.get("latent-daps").create({f: s.value for f, s in settings.items()})


def test_decoder_calls_are_one_per_chain_step_and_one_for_the_answer():
    """NFE = steps x ode_steps latent network calls; decodes = steps x langevin_steps (each with a backward) + 1 per
    image, no encodes: the code's extra decodes for its evaluation records are not spent."""
    prior = lg.fit_latent_prior()
    ae = copy.deepcopy(prior.autoencoder)
    ae.reset_counts()
    model = CountingModel(LatentPrior(prior.latent, ae))
    gens = generators(3, 4)
    physics = Operator.create("inpaint-box").build(lg.IMAGE_SHAPE, gens, torch.device("cpu"))
    y = measure(physics, lg.sample_images(prior, 3, generators(3, 2)).float(), gens)
    solver = SOLVERS.get("latent-daps").create({"steps": 5, "ode_steps": 3, "langevin_steps": 4})
    x_hat = solver.solve(y, physics, model, generators(3, 7))
    assert model.nfe == 5 * 3
    assert (ae.decoded, ae.encoded) == (3 * (5 * 4 + 1), 0)
    assert x_hat.shape == (3, *lg.IMAGE_SHAPE) and x_hat.dtype == torch.float32
    # the answer is a decoding: the autoencoder keeps it
    torch.testing.assert_close(ae.decode_latents(ae.encode_images(x_hat.double())), x_hat.double(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset", [False, True])
def test_phase_retrieval_gives_finite_images(preset):
    """A only through autograd: phase retrieval (nonlinear) runs at the defaults and at the preset's phase-retrieval
    values (clamp 1, tau 0.01 / sqrt 2, convention daps), to finite images that fit |F x| better than the start."""
    prior = lg.fit_latent_prior()
    params = {"convention": "daps"} if preset else {}
    gens = generators(2, 8)
    physics = Operator.create("phase-retrieval", params).build(lg.IMAGE_SHAPE, gens, torch.device("cpu"))
    x = lg.sample_images(prior, 2, generators(2, 3)).float()
    y = measure(physics, x, gens)
    values = {f: s.value for f, s in PAPER_PRESET.operators["phase-retrieval"].items()} if preset else {}
    solver = SOLVERS.get("latent-daps").create({**values, "steps": 8, "langevin_steps": 10})
    assert solver.unsupported(physics, x) is None
    x_hat = solver.solve(y, physics, prior, generators(2, 9))
    assert x_hat.shape == x.shape and torch.isfinite(x_hat).all()
    prior_mean = prior.autoencoder.decode_latents(torch.zeros(2, *lg.LATENT_SHAPE)).float()
    assert float((physics.A(x_hat) - y).norm()) < float((physics.A(prior_mean) - y).norm())


def test_a_pixel_prior_and_an_unstable_step_are_refused(pixel_prior):
    physics, y = _measured("denoise", n=1)
    with pytest.raises(ValueError, match="needs a latent prior"):
        SOLVERS.get("latent-daps").create({"steps": 2}).solve(y, physics, pixel_prior, generators(1))
    with pytest.raises(UsageError, match=r"latent-daps.lr=3: must be at most 2 \(1 \+ momentum\) = 2.4"):
        SOLVERS.get("latent-daps").create({"lr": "3", "momentum": "0.2"})
    assert SOLVERS.get("latent-daps").create({"lr": "3"}).lr == 3.0  # under 2 (1 + 0.8)
    with pytest.raises(UsageError, match="sigma_max > sigma_min > ode_sigma_min"):
        SOLVERS.get("latent-daps").create({"sigma_max": "0.05"})
