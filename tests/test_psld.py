"""PSLD (solvers/psld.py): with gamma = 0 it is latent-dps under the same step rule; one step is the official code's
step written on its [-1, 1] scale; the gluing term is the closed form it has on a linear autoencoder and changes the
result; each step decodes and encodes once; nonlinear operators are n/a."""
from __future__ import annotations

import copy

import pytest
import torch

from ipbench.data import load_images
from ipbench.models.base import timesteps, tweedie_x0
from ipbench.models.counting import CountingModel
from ipbench.models.latent import LatentPrior
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.base import randn_per_image
from ipbench.solvers.psld import PSLD
from tests.conftest import SMALL_SHAPE, generators


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("photos", SMALL_SHAPE, num_images=3).images


def _measured(name: str, x: torch.Tensor):
    gens = generators(x.shape[0], 0)
    physics = Operator.create(name).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


def _fresh(prior: LatentPrior) -> LatentPrior:
    """The prior with an autoencoder of its own, counts at zero (the session's prior counts every test's calls)."""
    autoencoder = copy.deepcopy(prior.autoencoder)
    autoencoder.reset_counts()
    return LatentPrior(prior.latent, autoencoder)


@pytest.mark.parametrize("normalize", ["residual", "grad"])
@pytest.mark.parametrize("eta", ["0", "1"])
@pytest.mark.parametrize("op_name", ["inpaint-box", "deblur-gauss"])
def test_gamma_zero_is_latent_dps_under_the_same_rule(small_latent_prior, images, normalize, eta, op_name):
    """gamma = 0 leaves latent-dps's update: same outputs from the same generators (omega = zeta), both rules, the
    DDIM and the DDPM step; the grad rule takes the very same arithmetic, the residual rule one backward of the
    weighted misfit, equal to float rounding."""
    physics, y = _measured(op_name, images)
    psld = SOLVERS.get("psld").create({"gamma": "0", "omega": "0.5", "normalize": normalize, "eta": eta, "steps": "12"})
    dps = SOLVERS.get("latent-dps").create({"zeta": "0.5", "normalize": normalize, "eta": eta, "steps": "12"})
    ours = psld.solve(y, physics, small_latent_prior, generators(3, 100))
    theirs = dps.solve(y, physics, small_latent_prior, generators(3, 100))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    glued = SOLVERS.get("psld").create({"gamma": "0.3", "omega": "0.5", "normalize": normalize, "eta": eta,
                                        "steps": "12"}).solve(y, physics, small_latent_prior, generators(3, 100))
    assert float((glued - theirs).abs().max()) > 1e-3  # not vacuous: with gluing the result moves


def test_one_step_is_the_codes_step_on_its_scale(small_latent_prior, images):
    """One step (t = T-1 down to alpha_bar = 1, eta = 0, so z' = z0_hat) against the official code's update written
    on its [-1, 1] images (psld.py:248-265 at d734647): with D' = 2 D - 1, E'(x') = E((x' + 1) / 2) and
    y' = 2 y - A 1, error = gamma ||E'(A^T y' + D' - A^T A D') - z0_hat|| + omega ||A D' - y'|| (plain norms,
    per image) and z_{t-1} = z0_hat - grad_{z_t} error; the answer is D(z_{t-1})."""
    prior = small_latent_prior
    ae = prior.autoencoder
    physics, y = _measured("inpaint-random", images)
    omega, gamma = 2000.0, 1000.0  # at t = T-1 z0_hat hardly depends on z_t: large weights make the step visible
    x_hat = SOLVERS.get("psld").create({"omega": str(omega), "gamma": str(gamma), "steps": "1"}).solve(
        y, physics, prior, generators(3, 100))

    decode = lambda z: 2 * ae.decode(z) - 1  # noqa: E731  the code's decoder output, on [-1, 1]
    encode = lambda x: ae.encode((x + 1) / 2)  # noqa: E731  its encoder, reading [-1, 1] images
    y_code = 2 * y - physics.A(torch.ones_like(images))
    t = prior.num_timesteps - 1
    z = randn_per_image((3, *prior.image_shape), generators(3, 100), y.device).requires_grad_(True)
    z0 = tweedie_x0(z, prior.eps(z, timesteps(t, 3, z.device)), float(prior.alphas_cumprod[t]))
    image = decode(z0)
    meas = (physics.A(image) - y_code).flatten(1).norm(dim=1)
    glued = physics.A_adjoint(y_code) + image - physics.A_adjoint(physics.A(image))
    glue = (encode(glued) - z0).flatten(1).norm(dim=1)
    (grad,) = torch.autograd.grad((gamma * glue + omega * meas).sum(), z)
    expected = ae.decode((z0 - grad).detach())
    torch.testing.assert_close(x_hat, expected, rtol=1e-4, atol=1e-4)
    moved = ae.decode(z0.detach())
    assert float((expected - moved).abs().max()) > 0.05  # not vacuous: the step moves the answer


def test_the_gluing_term_is_its_closed_form_on_a_linear_autoencoder(small_latent_prior, images):
    """E(x) = W^T to_model(x) and E(D(z)) = z, so z0 - E(A^T y + (I - A^T A) D(z0)) = -2 W^T A^T (y - A D(z0)):
    the gluing residual is the back-projected misfit seen in the latent space."""
    ae = small_latent_prior.autoencoder
    physics, y = _measured("sr", images)
    z0 = torch.randn(3, *ae.latent_shape, generator=torch.Generator().manual_seed(5))  # any latents
    image = ae.decode(z0)
    glue = PSLD._gluing(ae, physics, image, physics.A(image) - y, z0)
    misfit = physics.A_adjoint(y - physics.A(image)).flatten(1)
    expected = (2 * misfit.double() @ ae.basis).norm(dim=1).float()
    torch.testing.assert_close(glue, expected, rtol=1e-5, atol=1e-5)
    assert float(expected.min()) > 0.1


def test_each_step_decodes_and_encodes_once(small_latent_prior, images):
    """Per step: one latent network evaluation, one decode of z0_hat, one encode of the glued image (none when
    gamma = 0), both with a backward; then the final decode: decodes = steps + 1, encodes = steps per image."""
    physics, y = _measured("inpaint-box", images)
    for values, encodes in (({"steps": "7"}, 7), ({"steps": "7", "normalize": "grad"}, 7),
                            ({"steps": "7", "gamma": "0"}, 0)):
        prior = _fresh(small_latent_prior)
        model = CountingModel(prior)
        x_hat = SOLVERS.get("psld").create(values).solve(y, physics, model, generators(3, 100))
        assert (prior.autoencoder.decoded, prior.autoencoder.encoded) == (3 * 8, 3 * encodes), values
        assert model.nfe == 7 and model.images == 3 * 7, values
        assert x_hat.shape == images.shape and torch.isfinite(x_hat).all()


def test_gluing_alone_pulls_the_answer_toward_the_measurement(small_latent_prior, images):
    """Without the measurement term (omega = 0), gluing is a data term of its own: its residual is the back-projected
    misfit (the closed form above), so gamma > 0 lowers ||y - A x_hat|| against gamma = 0, image by image."""
    physics, y = _measured("inpaint-box", images)
    misfit = {}
    for gamma in ("0", "2"):
        x_hat = SOLVERS.get("psld").create({"steps": "20", "omega": "0", "gamma": gamma}).solve(
            y, physics, small_latent_prior, generators(3, 100))
        misfit[gamma] = (physics.A(x_hat) - y).flatten(1).norm(dim=1)
    assert (misfit["2"] < 0.93 * misfit["0"]).all(), misfit


def test_nonlinear_operators_are_n_a_with_a_reason(images):
    solver = SOLVERS.get("psld").create()
    physics, _ = _measured("phase-retrieval", images)
    reason = solver.unsupported(physics, torch.zeros_like(images))
    assert reason is not None and "A^T" in reason and "nonlinear" in reason, reason
    for name in ("inpaint-box", "deblur-gauss", "sr", "denoise"):
        assert solver.unsupported(_measured(name, images)[0], torch.zeros_like(images)) is None


def test_psld_needs_a_latent_prior(small_model, images):
    physics, y = _measured("denoise", images)
    with pytest.raises(ValueError, match="latent prior"):
        SOLVERS.get("psld").create({"steps": "2"}).solve(y, physics, small_model, generators(3))
