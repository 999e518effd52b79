"""ReSample (solvers/resample.py) on a linear autoencoder with a Gaussian latent prior:

- the whole solver against the official sampler (github.com/soominkwon/resample at 3e332b2,
  ldm/models/diffusion/ddim.py, `resample_sampling`) written again here in the code's own terms: one image at a
  time, [-1, 1] data, the code's index arithmetic, torch.optim.AdamW and its list-based stopping rule;
- the hard data consistency: each fit lowers its own image's misfit, alone as in a batch, and stops by the code's
  rules; the masked AdamW of the batch is torch's AdamW per image;
- the stochastic resampling: its moments are the Gaussian posterior of z_t given z0(y) and z', with DDPM's posterior
  variance times gamma;
- the autoencoder and network calls the algorithm makes, and that without consistency it is plain latent DDIM.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

from ipbench.data import load_images
from ipbench.models.base import timesteps
from ipbench.models.counting import CountingModel
from ipbench.models.latent import LatentPrior
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.diffusion import ddim_coefficients, reverse_grid, reverse_process
from ipbench.solvers.resample import (adamw_fit, misfits, resample_moments, resample_variance,
                                      stochastic_resample)
from tests.conftest import SMALL_SHAPE, generators

# A schedule with every branch in a few steps: 12 steps, fits at index 8, 6, 4 (pixel: index >= 12 // 3) and 2
# (latent; its look-ahead is cut to 2 steps by the grid's end), then the final latent fit.
SMALL = {"steps": 12, "skip": 2, "latent_iters": 20, "pixel_iters": 20}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_images("photos", SMALL_SHAPE, num_images=3).images


def fresh(prior: LatentPrior) -> LatentPrior:
    """The prior with an autoencoder of its own, counting from zero."""
    autoencoder = copy.deepcopy(prior.autoencoder)
    autoencoder.reset_counts()
    return LatentPrior(prior.latent, autoencoder)


def measured(op_name: str, x: torch.Tensor, seed: int = 0, **params):
    gens = generators(x.shape[0], seed)
    physics = Operator.create(op_name, params).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return physics, measure(physics, x, gens)


# -- the official sampler, in the code's terms ----------------------------------------------------------------------
def code_resample(prior: LatentPrior, physics, y: torch.Tensor, gen: torch.Generator, steps: int, skip: int,
                  inter_timesteps: int, latent_iters: int, pixel_iters: int, window: int, eps: float,
                  latent_lr: float, pixel_lr: float, gamma: float = 40.0, scale: float = 0.5) -> tuple:
    """ddim.py's resample_sampling for one image (batch size 1, as sample_condition.py runs it), eta = 0, on
    ipbench's grid: alphas[index] and alphas_prev[index] are the grid's (ab, ab_prev) of step i = total - 1 - index.
    The code's data are in [-1, 1]: its decoder's output is 2 D(z) - 1, its operator maps x to 2 A((x + 1) / 2)
    and its measurement is 2 y, so that its residual is twice ipbench's. Returns (image, the fits' iteration counts)."""
    ae = prior.autoencoder
    decode = lambda z: 2 * ae.decode(z) - 1  # noqa: E731
    encode = lambda x: ae.encode((x + 1) / 2)  # noqa: E731
    operator = lambda x: 2 * physics.A((x + 1) / 2)  # noqa: E731
    measurement = 2 * y
    grid = reverse_grid(prior, prior.num_timesteps - 1, steps)
    times = [t for t, _, _ in grid]
    total = len(grid)
    counts: list[tuple[str, int]] = []

    def eps_of(img, step):
        return prior.eps(img, timesteps(step, 1, img.device))

    def latent_optimization(z_init):
        z = z_init.detach().clone().requires_grad_()
        optimizer = torch.optim.AdamW([z], lr=latent_lr)
        losses = []
        for itr in range(latent_iters):
            optimizer.zero_grad()
            output = torch.nn.functional.mse_loss(operator(decode(z)), measurement)
            output.backward()
            optimizer.step()
            cur_loss = output.detach().numpy()
            if itr < window:
                losses.append(cur_loss)
            else:
                losses.append(cur_loss)
                if losses[0] < cur_loss:
                    break
                losses.pop(0)
            if cur_loss < eps ** 2:
                break
        counts.append(("latent", itr + 1))
        return z.detach()

    def pixel_optimization(x_prime):
        x = x_prime.detach().clone().requires_grad_()
        optimizer = torch.optim.AdamW([x], lr=pixel_lr)
        for itr in range(pixel_iters):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(operator(x), measurement)
            loss.backward()
            optimizer.step()
            if loss < eps ** 2:
                break
        counts.append(("pixel", itr + 1))
        return x.detach()

    def stochastic_resample_code(pseudo_x0, x_t, a_t, sigma):
        noise = torch.randn(pseudo_x0.shape[1:], generator=gen).unsqueeze(0)
        return ((sigma * math.sqrt(a_t) * pseudo_x0 + (1 - a_t) * x_t) / (sigma + 1 - a_t)
                + noise * math.sqrt(1 / (1 / sigma + 1 / (1 - a_t))))

    img = torch.randn(prior.image_shape, generator=gen).unsqueeze(0)
    for i, step in enumerate(times):
        index = total - i - 1
        a_t, a_prev = grid[i][1], grid[i][2]
        img = img.detach().requires_grad_()
        e_t = eps_of(img, step)
        pred_x0 = (img - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        out = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e_t
        pseudo_x0 = (img - (1 - a_t) * e_t) / math.sqrt(a_t)
        norm = torch.linalg.norm(measurement - operator(decode(pseudo_x0)))
        (norm_grad,) = torch.autograd.grad(norm, img)
        img = (out - norm_grad * (a_t * scale)).detach()
        index_split = total // 3
        if index <= total - index_split and index > 0:
            x_t = img.clone()
            if index % skip == 0:
                with torch.no_grad():
                    for k in range(i, min(i + inter_timesteps, total - 1)):
                        step_ = times[k + 1]
                        a_k, a_k_prev = grid[k][1], grid[k][2]  # alphas[index_], alphas_prev[index_]
                        e = eps_of(img, step_)
                        p0 = (img - math.sqrt(1 - a_k) * e) / math.sqrt(a_k)
                        pseudo_x0 = (img - (1 - a_k) * e) / math.sqrt(a_k)
                        img = math.sqrt(a_k_prev) * p0 + math.sqrt(1 - a_k_prev) * e
                sigma = gamma * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
                if index >= index_split:
                    with torch.no_grad():
                        start = decode(pseudo_x0.detach())
                    optimized = pixel_optimization(start)
                    with torch.no_grad():
                        fitted = encode(optimized)
                else:
                    fitted = latent_optimization(pseudo_x0.detach())
                img = stochastic_resample_code(fitted, x_t, a_prev, sigma)
    img = latent_optimization(img)
    with torch.no_grad():
        return ae.decode(img), counts


# Per operator, a latent step size at which the window rule stops some latent fits early (with window 5)
STOPPING_LR = {"inpaint-box": 1.0, "deblur-gauss": 0.2}


@pytest.mark.parametrize("op_name", sorted(STOPPING_LR))
def test_resample_is_the_official_sampler(op_name, images, small_latent_prior):
    """The solver on each image of a batch equals the code's loop on that image alone, the fits' iteration counts
    included: the latent step size is one at which the window rule stops some latent fits early."""
    lr = STOPPING_LR[op_name]
    settings = dict(steps=12, skip=2, lookahead=5, latent_iters=60, pixel_iters=30, window=5, tol=1e-3,
                    latent_lr=lr, pixel_lr=1e-2)
    physics, y = measured(op_name, images)
    solver = SOLVERS.get("resample").create(settings)
    x_hat = solver.solve(y, physics, small_latent_prior, generators(3, 100))
    stopped_early = 0
    for i in range(3):
        physics_i, y_i = measured(op_name, images[i:i + 1], seed=i)
        assert torch.equal(y_i, y[i:i + 1])
        reference, counts = code_resample(small_latent_prior, physics_i, y_i, generators(1, 100 + i)[0],
                                          steps=12, skip=2, inter_timesteps=5, latent_iters=60, pixel_iters=30,
                                          window=5, eps=1e-3, latent_lr=lr, pixel_lr=1e-2)
        assert [kind for kind, _ in counts] == ["pixel"] * 3 + ["latent"] * 2  # index 8, 6, 4; 2; the final fit
        stopped_early += sum(kind == "latent" and n < 60 for kind, n in counts)
        torch.testing.assert_close(x_hat[i:i + 1], reference, rtol=0, atol=1e-5)
    assert stopped_early > 0  # the window rule did stop some fits


# -- the hard data consistency -----------------------------------------------------------------------------------
def image_misfit(physics, prior: LatentPrior, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (physics.A(prior.autoencoder.decode(z)) - y).flatten(1).norm(dim=1)


@pytest.mark.parametrize("op_name", ["inpaint-box", "sr"])
def test_the_latent_fit_lowers_each_images_misfit_alone_as_in_a_batch(op_name, images, small_latent_prior):
    """Truth in the decoder's range: each image's ||y - A(D(z))|| falls below a fifth of its random start's and to
    the noise's ||y - A(x)|| or below (SR, with as many measurements as latent entries, fits the noise too); image 1
    fitted alone ends where it ends in the batch, bit for bit."""
    prior = small_latent_prior
    with torch.no_grad():
        truth = prior.autoencoder.decode(prior.autoencoder.encode(images))
    physics, y = measured(op_name, truth)
    start = torch.randn((3, *prior.image_shape), generator=torch.Generator().manual_seed(3))
    solver = SOLVERS.get("resample").create({"latent_iters": 200, "latent_lr": 0.05})
    fitted = solver.latent_fit(start, y, physics, prior.autoencoder)
    before, after = image_misfit(physics, prior, start, y), image_misfit(physics, prior, fitted, y)
    noise = (y - physics.A(truth)).flatten(1).norm(dim=1)
    assert bool((after < 1.1 * noise).all()) and bool((after < 0.2 * before).all()), (before, after, noise)
    physics_1, y_1 = measured(op_name, truth[1:2], seed=1)
    alone = solver.latent_fit(start[1:2], y_1, physics_1, prior.autoencoder)
    assert torch.equal(alone, fitted[1:2])  # its own optimiser and stopping rule: the batch does not enter


def test_the_pixel_fit_fits_y_in_pixel_space_then_encodes(images, small_latent_prior):
    """Denoising: the pixel iterate runs from D(z0~) to y, so the encoded fit is (nearly) the encoding of y, the
    latent whose decoding is closest to y (the photos are not in the decoder's range: that misfit is not 0); one
    decode (the start) and one encode per image."""
    prior = fresh(small_latent_prior)
    physics, y = measured("denoise", images)
    start = torch.randn((3, *prior.image_shape), generator=torch.Generator().manual_seed(4))
    solver = SOLVERS.get("resample").create({"pixel_iters": 400, "pixel_lr": 0.02})
    fitted = solver.pixel_fit(start, y, physics, prior.autoencoder)
    assert (prior.autoencoder.decoded, prior.autoencoder.encoded) == (3, 3)
    with torch.no_grad():
        closest = prior.autoencoder.encode(y)
    before, after = image_misfit(physics, prior, start, y), image_misfit(physics, prior, fitted, y)
    best = image_misfit(physics, prior, closest, y)
    assert bool((after < 0.7 * before).all()) and bool((after < 1.001 * best).all()), (before, after, best)


def test_the_masked_adamw_is_torch_adamw_per_image():
    """adamw_fit on a batch with the stopping rules off equals torch.optim.AdamW (its defaults, the code's) run on
    each image alone; an image that stops is not moved again."""
    target = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    weight = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(1)) + 0.5
    start = torch.zeros_like(target)

    def losses(x, active):
        return (weight * (x - target)).square().flatten(1).mean(1)

    ours = adamw_fit(start, losses, lr=0.05, iters=50, tol=0.0, window=None)
    for i in range(3):
        x = start[i:i + 1].clone().requires_grad_()
        adamw = torch.optim.AdamW([x], lr=0.05)
        for _ in range(50):
            adamw.zero_grad()
            (weight[i:i + 1] * (x - target[i:i + 1])).square().mean().backward()
            adamw.step()
        torch.testing.assert_close(ours[i:i + 1], x.detach(), rtol=0, atol=1e-6)
    assert float((ours - start).abs().min()) > 0  # not vacuous: every entry moved


def code_stop(values: list[float], iters: int, window: int | None, tol: float) -> int:
    """The iterations the code's loop runs on a scripted loss sequence (ddim.py:406-430, :358-368 with no window)."""
    losses: list[float] = []
    for itr in range(iters):
        cur = values[itr]
        if window is not None:
            losses.append(cur)
            if itr >= window:
                if losses[0] < cur:
                    return itr + 1
                losses.pop(0)
        if cur < tol ** 2:
            return itr + 1
    return iters


@pytest.mark.parametrize("window", [None, 3])
def test_each_image_stops_by_the_codes_rules(window):
    """Scripted losses: image 0 falls below tol^2 at iteration 5, image 1 plateaus then rises (the window rule),
    image 2 never stops. The iterations each image takes (those it is active in) and the weight-decay steps its
    iterate shows (zero gradient: each step scales x by 1 - lr 0.01) match the code's loop."""
    scripts = [[1.0, 0.5, 0.1, 0.01, 1e-5, 1e-7] + [1e-8] * 14,
               [1.0, 0.8, 0.7, 0.7, 0.75, 0.9] + [1.0] * 14,
               [1.0 / (k + 1) for k in range(20)]]
    taken = [0, 0, 0]

    def losses(x, active):
        itr = max(taken)
        for j in active.nonzero().flatten().tolist():
            taken[j] += 1
        return x.flatten(1).sum(1) * 0 + torch.tensor([s[itr] for s in scripts])

    lr = 0.5
    x = adamw_fit(torch.ones(3, 1, 2, 2), losses, lr=lr, iters=20, tol=1e-3, window=window)
    expected = [code_stop(s, 20, window, 1e-3) for s in scripts]
    assert taken == expected
    steps = [round(math.log(float(x[j, 0, 0, 0])) / math.log(1 - lr * 0.01)) for j in range(3)]
    assert steps == expected
    assert expected[0] == 6 and expected[2] == 20 and expected[1] == (20 if window is None else 6)


# -- the stochastic resampling ---------------------------------------------------------------------------------------
def test_the_resampling_is_the_posterior_of_z_t_given_z0_and_z_prime():
    """z_t ~ N(sqrt(ab) z0, (1 - ab) I) a priori and z' = z_t + N(0, s^2 I): the posterior's precision is the sum
    1 / (1 - ab) + 1 / s^2 and its mean the precision-weighted average; a draw is that mean plus its std times the
    generator's normal draw, whose sample moments match."""
    ab, s2 = 0.6, 0.2
    z0 = torch.full((1, 3, 64, 64), 0.7)
    z_prime = torch.full((1, 3, 64, 64), -0.3)
    var = 1 / (1 / (1 - ab) + 1 / s2)
    mean = var * (math.sqrt(ab) * 0.7 / (1 - ab) + (-0.3) / s2)
    got_mean, got_var = resample_moments(z0, z_prime, ab, s2)
    torch.testing.assert_close(got_mean, torch.full_like(z0, mean))
    assert got_var == pytest.approx(var, rel=1e-12)
    draw = stochastic_resample(z0, z_prime, ab, s2, generators(1, 7))
    noise = torch.randn((3, 64, 64), generator=generators(1, 7)[0])
    torch.testing.assert_close(draw[0], mean + math.sqrt(var) * noise)
    n = draw.numel()
    assert abs(float(draw.mean()) - mean) < 4 * math.sqrt(var / n)
    assert abs(float(draw.var()) / var - 1) < 4 * math.sqrt(2 / n)


def test_the_resampling_variance_is_gamma_times_ddpms_posterior_variance(small_latent_prior):
    for t, ab, ab_prev in reverse_grid(small_latent_prior, 999, 12)[:-1]:
        ddpm = ddim_coefficients(ab, ab_prev, eta=1.0)[2] ** 2  # DDIM's eta = 1: DDPM's beta_tilde
        assert resample_variance(40.0, ab, ab_prev) == pytest.approx(40.0 * ddpm, rel=1e-12)


# -- what the algorithm calls --------------------------------------------------------------------------------------
def test_network_and_autoencoder_calls_are_the_algorithms(images, small_latent_prior):
    """12 steps, fits at index 8, 6, 4 (pixel) and 2 (latent), the final latent fit; no early stop (tol 0, window
    beyond the iterations). Network: one call per step and the look-aheads (5, 5, 4 and 2 steps: at index k the grid
    has k steps left). Decodes per image: one per step (DPS), one per pixel fit, one per latent iteration, the final
    one; encodes: one per pixel fit. Without the DPS step the per-step decodes go."""
    physics, y = measured("inpaint-box", images)
    for dps_scale, step_decodes in ((0.5, 12), (0.0, 0)):
        prior = fresh(small_latent_prior)
        model = CountingModel(prior)
        solver = SOLVERS.get("resample").create({**SMALL, "tol": 0.0, "window": 1000, "dps_scale": dps_scale})
        solver.solve(y, physics, model, generators(3, 100))
        assert model.images == 3 * (12 + 5 + 5 + 4 + 2)
        assert prior.autoencoder.decoded == 3 * (step_decodes + 3 + 20 + 20 + 1)
        assert prior.autoencoder.encoded == 3 * 3
    prior = fresh(small_latent_prior)
    SOLVERS.get("resample").create({**SMALL, "consistency": "latent", "tol": 0.0, "window": 1000}).solve(
        y, physics, prior, generators(3, 100))
    assert (prior.autoencoder.decoded, prior.autoencoder.encoded) == (3 * (12 + 5 * 20 + 1), 0)


def test_without_consistency_it_is_plain_latent_ddim(images, small_latent_prior):
    """consistency=none, dps_scale=0, final=false: DDIM (eta 0) on the latents from the same z_T, then one decode."""
    physics, y = measured("inpaint-box", images)
    prior = fresh(small_latent_prior)
    solver = SOLVERS.get("resample").create({"steps": 20, "consistency": "none", "dps_scale": 0, "final": False})
    x_hat = solver.solve(y, physics, prior, generators(3, 100))
    assert (prior.autoencoder.decoded, prior.autoencoder.encoded) == (3, 0)
    z_T = torch.stack([torch.randn(prior.image_shape, generator=g) for g in generators(3, 100)])
    with torch.no_grad():
        ddim = prior.autoencoder.decode(reverse_process(prior, z_T, 999, 20, 0.0, generators(3, 100), clip=False))
    torch.testing.assert_close(x_hat, ddim, rtol=0, atol=1e-6)
    with_dc = SOLVERS.get("resample").create({"steps": 20, "skip": 2, "latent_iters": 10, "pixel_iters": 10})
    assert float((with_dc.solve(y, physics, prior, generators(3, 100)) - ddim).abs().max()) > 0.05


def test_the_dps_step_and_the_codes_estimate(images, small_latent_prior):
    """One step: z' = DDIM(z_t) - 0.5 ab_t grad_{z_t} ||2 (y - A(D(z0~)))|| with the code's z0~ = (z_t - (1 - ab_t)
    eps) / sqrt(ab_t) (x0_estimate=code), or Tweedie's (x0_estimate=tweedie)."""
    prior = small_latent_prior
    physics, y = measured("deblur-gauss", images)
    t, ab, ab_prev = reverse_grid(prior, 999, 12)[6]
    z = torch.randn((3, *prior.image_shape), generator=torch.Generator().manual_seed(5))
    for estimate in ("code", "tweedie"):
        solver = SOLVERS.get("resample").create({"x0_estimate": estimate})
        got, z0 = solver.guided_step(z, t, ab, ab_prev, y, physics, prior, prior.autoencoder, None, generators(3))
        z_var = z.clone().requires_grad_()
        eps = prior.eps(z_var, timesteps(t, 3, z.device))
        weight = (1 - ab) if estimate == "code" else math.sqrt(1 - ab)
        estimate_z0 = (z_var - weight * eps) / math.sqrt(ab)
        norm = (2 * (y - physics.A(prior.autoencoder.decode(estimate_z0)))).flatten(1).norm(dim=1)
        (grad,) = torch.autograd.grad(norm.sum(), z_var)
        ddim = math.sqrt(ab_prev) * (z - math.sqrt(1 - ab) * eps.detach()) / math.sqrt(ab) + \
            math.sqrt(1 - ab_prev) * eps.detach()
        torch.testing.assert_close(got, ddim - 0.5 * ab * grad, rtol=0, atol=1e-5)
        torch.testing.assert_close(z0, estimate_z0.detach(), rtol=0, atol=1e-6)


def test_misfits_are_the_codes_mse_on_its_scale(images):
    """The code's loss is MSELoss on [-1, 1] data: 4 times the image-unit mean squared residual, per image."""
    physics, y = measured("sr", images)
    x = torch.rand(images.shape, generator=torch.Generator().manual_seed(2))
    expected = torch.stack([4 * (physics.A(x)[i] - y[i]).square().mean() for i in range(3)])
    torch.testing.assert_close(misfits(physics, x, y), expected)


def test_fits_that_stop_at_different_iterations_leave_each_image_as_alone(images, small_latent_prior):
    """With deblur-gauss's stopping step size (above) the images' latent fits stop after different numbers of
    iterations (their decodes alone differ), yet each image gives what it gives alone, and the batch decodes what
    its images decode alone: the contract's batch invariance, where the contract's few steps run no fit."""
    physics, y = measured("deblur-gauss", images)
    solver = SOLVERS.get("resample").create({**SMALL, "latent_iters": 60, "window": 5,
                                             "latent_lr": STOPPING_LR["deblur-gauss"]})
    batch_prior = fresh(small_latent_prior)
    x_hat = solver.solve(y, physics, batch_prior, generators(3, 100))
    decodes = []
    for i in range(3):
        physics_i, y_i = measured("deblur-gauss", images[i:i + 1], seed=i)
        prior = fresh(small_latent_prior)
        alone = solver.solve(y_i, physics_i, prior, generators(1, 100 + i))
        decodes.append(prior.autoencoder.decoded)
        torch.testing.assert_close(alone, x_hat[i:i + 1], rtol=0, atol=1e-6)
    assert len(set(decodes)) > 1 and min(decodes) < 12 + 3 + 2 * 60 + 1, decodes  # stopped early, unequally
    assert batch_prior.autoencoder.decoded == sum(decodes)
