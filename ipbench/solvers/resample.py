"""ReSample (Song, Kwon, Zhang, Hu, Qu & Shen 2024, ICLR, "Solving Inverse Problems with Latent Diffusion Models via
Hard Data Consistency", Algorithm 1): latent DDIM in which, at some of the steps, the clean-latent estimate is
replaced by one that fits the measurement (hard data consistency) and z_t is redrawn around it (stochastic
resampling).

This follows the authors' code, github.com/soominkwon/resample at 3e332b2 (`DDIMSampler.resample_sampling`,
ldm/models/diffusion/ddim.py, "ddim.py" below), in which every step also takes a DPS step besides Algorithm 1's hard
data consistency. On the grid of n steps, step i runs from time t_i (alpha-bar ab_i) to t_{i+1} (ab_{i+1}; 1 after
the last step), index = n - 1 - i:

1. one network evaluation gives eps_hat(z_{t_i}); DDIM (eta, sample_condition.py:34) gives z' from Tweedie's
   z0_hat = (z - sqrt(1 - ab_i) eps_hat) / sqrt(ab_i) (ddim.py:530-538);
2. DPS step (ddim.py:255-261, ldm_inverse/condition_methods.py:29-33, 58-64):
   z' <- z' - dps_scale ab_i grad_{z_{t_i}} ||y - A(D(z0~))||, the residual's norm (not squared) on the code's
   [-1, 1] image scale, with the code's estimate z0~ = (z - (1 - ab_i) eps_hat) / sqrt(ab_i) (ddim.py:541: 1 - ab,
   not its square root; `x0_estimate=tweedie` takes Tweedie's instead); dps_scale ab_i is the code's
   `scale=a_t*.5` (ddim.py:260), which replaces the task configs' `scale` (configs/tasks/*.yaml:5, unused);
3. hard data consistency, where 0 < index <= n - n // 3 and index % skip == 0 (ddim.py:264-273):
   a. look-ahead ("time travel", ddim.py:274-285): `lookahead` more DDIM steps from z' (no DPS step), each
      network call at the next grid time t_{k+1} but with the alpha-bars (ab_k, ab_{k+1}) of step k, as the code
      indexes them (ddim.py:275, 277); z0~ of the last one starts the fit (the one of step 1 if lookahead = 0);
   b. the fit, per image, from that start (consistency=both, the code's: pixel space in the middle third,
      index >= n // 3, latent space below, ddim.py:294, 310):
        pixel  x0 = argmin_x ||y - A(x)||^2 by AdamW (lr pixel_lr) from D(z0~), then z0(y) = E(x0)
               (ddim.py:297-304, 337-370);
        latent z0(y) = argmin_z ||y - A(D(z))||^2 by AdamW (lr latent_lr) from z0~ (ddim.py:313-315, 373-432);
      the loss is the mean squared residual on the code's [-1, 1] scale (4 x the image-unit one); each stops
      after at most pixel_iters / latent_iters iterations, or once a loss is below tol^2 (ddim.py:367, 428),
      the latent one also once the loss is above the one `window` iterations before (ddim.py:419-426);
   c. stochastic resampling back to t_{i+1} (ddim.py:288-291, 306, 318-320, 435-441):
        z_{t_{i+1}} ~ N((s^2 sqrt(ab) z0(y) + (1 - ab) z') / (s^2 + 1 - ab), s^2 (1 - ab) / (s^2 + 1 - ab) I),
        ab = ab_{i+1},  s^2 = gamma (1 - ab_{i+1}) / (1 - ab_i) (1 - ab_i / ab_{i+1}),
      the posterior of z_t given z0(y) (prior N(sqrt(ab) z0(y), (1 - ab) I)) and the unconditional z' read as z_t
      plus N(0, s^2 I) noise: gamma times DDPM's posterior variance;
4. after the last step, one more latent fit of z_0 (ddim.py:329-332), decoded (sample_condition.py:121).

`consistency=latent` or `pixel` fits in that space wherever the schedule runs a fit (the README's faster option is
pixel space only, README.md:81; the code's other choice of split is an edit of ddim.py:264), `none` never; the final
latent fit is `final`, whatever `consistency` says, as the code's is unconditional. With consistency=none,
dps_scale=0 and final=False it is plain latent DDIM.

Cost per image: `steps` network evaluations with a backward (the DPS step; none when dps_scale = 0) plus
`lookahead` per consistency step; decodes: one per step with a backward (DPS), one per latent fit iteration with a
backward, one per pixel fit (and one encode), and the final decode. The fits' iteration counts depend on the data
(their stopping rules), so a row's `decodes` is its batch's mean; the network evaluations do not
(`nfe_depends_on_data` is False).

Defaults, the code's unless said: eta 0 (sample_condition.py:34), dps_scale 0.5 (ddim.py:260), gamma 40 (ddim.py:
289, 318, whose comment asks for a value per task; the repository sets no other), skip 10 (ddim.py:273),
lookahead 5 (ddim.py:206, which replaces the argument's 10), thirds (ddim.py:264), latent_lr 5e-3 (ddim.py:394),
pixel_lr 1e-2 (ddim.py:353), tol 1e-3 (ddim.py:337, 373), window 200 (ddim.py:419), AdamW with torch's other
defaults (weight decay 0.01; ddim.py:353, 399), the final fit (ddim.py:329), the code's z0~ (ddim.py:541). Scaled
down for CPU runs: 100 steps (the code: 500, sample_condition.py:33), latent_iters 100 (the code: 500,
ddim.py:373; its docstring, :385, finds 500 best and 200 for inpainting) and pixel_iters 200 (the code: 2000,
ddim.py:337). With latent_iters <= window the window rule never fires, as in the code with fewer than 200
iterations. The scaled counts were checked (not tuned) on the latent Gaussian problems of checks/latent_gaussian.py
(24 images drawn from that prior, seed 0; no image a results table evaluates): R = MSE / MMSE 1.011 / 1.017 on
denoise / inpaint-box, as with the code's 500 / 2000 iterations (docs/solvers.md, ReSample).

Deviations: the fits run per image (the code runs batch size 1, sample_condition.py:89): each image's loss is its
own mean, AdamW is elementwise, so one update of the batch is each image's own update, and each image has its own
stopping rule, after which it is neither updated nor decoded again (`adamw_fit`); a result does not depend on its
batch (on CPU, bit for bit). The DPS step's norm is per image (the code's is the batch's). The time grid is
ipbench's, T-1 down to 0 with the last step to ab = 1 (the code's 500 steps are t = 999, 997, ..., 1, the last to
alpha-bar[0]: make_ddim_timesteps and make_ddim_sampling_parameters, ldm/modules/diffusionmodules/util.py:46-74,
on the DDIM grid, since posterior_sampler passes ddim_use_original_steps=False, ddim.py:172, whatever
sample_condition.py:70 asks), so the thirds and `skip` count ipbench's steps. Randomness (z_T, DDIM's noise at
eta > 0, the resampling noise) is drawn per image from its generator. D and E are the prior's autoencoder (the code's
are its LDM's first stage, the FFHQ model's VQ-f4 by default, sample_condition.py:28). Under Poisson noise the DPS
step is the code's Poisson one (condition_methods.py:34-39, as DPS's: solvers/dps.py); the fits ignore the noise
model, as the code's do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, timesteps, to_image, to_model, tweedie_x0
from ipbench.models.latent import Autoencoder, autoencoder_of
from ipbench.params import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, reverse_grid
from ipbench.solvers.dps import poisson_factor

SPLITS = 3  # the schedule's thirds (ddim.py:264, hard-coded there)


def code_x0(z: Tensor, eps: Tensor, ab: float) -> Tensor:
    """The code's clean estimate (z - (1 - ab) eps) / sqrt(ab) (ddim.py:541), which it names Tweedie's."""
    return (z - (1.0 - ab) * eps) / math.sqrt(ab)


def resample_variance(gamma: float, ab: float, ab_prev: float) -> float:
    """s^2 = gamma (1 - ab_prev) / (1 - ab) (1 - ab / ab_prev) for the step from ab to ab_prev (ddim.py:289, 318)."""
    return gamma * (1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)


def resample_moments(z0: Tensor, z_prime: Tensor, ab: float, variance: float) -> tuple[Tensor, float]:
    """Mean and variance of the stochastic resampling of z_t at alpha-bar `ab` around z0 (ddim.py:441):
    ((s^2 sqrt(ab) z0 + (1 - ab) z') / (s^2 + 1 - ab), s^2 (1 - ab) / (s^2 + 1 - ab))."""
    mean = (variance * math.sqrt(ab) * z0 + (1.0 - ab) * z_prime) / (variance + 1.0 - ab)
    return mean, variance * (1.0 - ab) / (variance + 1.0 - ab)


def stochastic_resample(z0: Tensor, z_prime: Tensor, ab: float, variance: float,
                        generators: Sequence[torch.Generator]) -> Tensor:
    """A draw of z_t from `resample_moments`, image i's noise from generators[i]."""
    mean, var = resample_moments(z0, z_prime, ab, variance)
    return mean + math.sqrt(var) * randn_per_image(mean.shape, generators, mean.device, mean.dtype)


@register_solver
@dataclass
class ReSample(Solver):
    """Latent DDIM with a DPS step, and at scheduled steps a latent- or pixel-space fit of z0 and resampling."""

    name = "resample"
    prior: ClassVar[str] = "latent"
    steps: int = param(100, range=STEPS)  # DDIM steps from T-1 (the code: 500, sample_condition.py:33)
    eta: float = param(0.0, range=UNIT)  # DDIM's eta (sample_condition.py:34)
    dps_scale: float = param(0.5, range=NON_NEGATIVE, tune=Tune(0.01, 5.0, log=True))  # x ab_t (ddim.py:260)
    gamma: float = param(40.0, range=POSITIVE, tune=Tune(1.0, 1000.0, log=True))  # resampling's s^2 factor (:289)
    consistency: str = param("both", choices=("both", "latent", "pixel", "none"))  # the fits' space (:294, 310)
    skip: int = param(10, range=AT_LEAST_ONE)  # a fit every `skip` steps (ddim.py:273)
    lookahead: int = param(5, range=NON_NEGATIVE)  # DDIM steps of the time travel (ddim.py:206)
    latent_iters: int = param(100, range=AT_LEAST_ONE)  # AdamW iterations at most (the code: 500, ddim.py:373)
    pixel_iters: int = param(200, range=AT_LEAST_ONE)  # AdamW iterations at most (the code: 2000, ddim.py:337)
    latent_lr: float = param(5e-3, range=POSITIVE, tune=Tune(1e-4, 0.1, log=True))  # ddim.py:394
    pixel_lr: float = param(1e-2, range=POSITIVE, tune=Tune(1e-4, 0.1, log=True))  # ddim.py:353
    tol: float = param(1e-3, range=NON_NEGATIVE)  # a fit stops at MSE < tol^2 (ddim.py:367, 428)
    window: int = param(200, range=AT_LEAST_ONE)  # latent fit stops once above the loss this many iterations before
    final: bool = True  # the last latent fit of z_0 (ddim.py:329-332)
    x0_estimate: str = param("code", choices=("code", "tweedie"))  # z0~ of the DPS step and the fits' start (:541)

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        autoencoder = autoencoder_of(model)
        if autoencoder is None:  # the runner skips pixel priors (prior_problem); a direct caller gets this
            raise ValueError("resample needs a latent prior (a model with an autoencoder)")
        n_images = y.shape[0]
        poisson = poisson_factor(op, y)  # None under Gaussian or Poisson-Gaussian noise
        grid = reverse_grid(model, model.num_timesteps - 1, self.steps)
        n = len(grid)
        split = n // SPLITS
        z = randn_per_image((n_images, *model.image_shape), generators, y.device)  # z_T ~ N(0, I)
        for i, (t, ab, ab_prev) in enumerate(grid):
            index = n - 1 - i
            z_prime, estimate = self.guided_step(z, t, ab, ab_prev, y, op, model, autoencoder, poisson, generators)
            if self.consistency != "none" and 0 < index <= n - split and index % self.skip == 0:
                estimate = self.look_ahead(z_prime, estimate, grid, i, model, generators)
                pixel = self.consistency == "pixel" or (self.consistency == "both" and index >= split)
                fit = self.pixel_fit if pixel else self.latent_fit
                z0 = fit(estimate, y, op, autoencoder)
                z_prime = stochastic_resample(z0, z_prime, ab_prev, resample_variance(self.gamma, ab, ab_prev),
                                              generators)
            z = z_prime
        if self.final:
            z = self.latent_fit(z, y, op, autoencoder)
        with torch.no_grad():
            return autoencoder.decode(z)

    def estimate(self, z: Tensor, eps: Tensor, ab: float) -> Tensor:
        """z0~: the code's estimate (ddim.py:541) or Tweedie's."""
        return code_x0(z, eps, ab) if self.x0_estimate == "code" else tweedie_x0(z, eps, ab)

    def guided_step(self, z: Tensor, t: int, ab: float, ab_prev: float, y: Tensor, op: Physics, model: ScoreModel,
                    autoencoder: Autoencoder, poisson: Tensor | None,
                    generators: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
        """Steps 1-2: DDIM from z_t, then the DPS step; returns (z', z0~ of z_t), both detached."""
        guided = self.dps_scale > 0
        with torch.set_grad_enabled(guided):
            z_t = z.detach().requires_grad_(guided)
            eps = model.eps(z_t, timesteps(t, z_t.shape[0], z_t.device))
            x0 = tweedie_x0(z_t, eps, ab)  # DDIM's z0_hat (ddim.py:530)
            estimate = self.estimate(z_t, eps, ab)
            if guided:
                residual = 2 * (op.A(autoencoder.decode(estimate)) - y)  # on the code's [-1, 1] scale
                norm = residual.flatten(1).norm(dim=1)  # per image (condition_methods.py:31-32)
                if poisson is not None:  # the code's Poisson norm: ||r|| times mean 1 / |y'| (:35-38)
                    norm = norm * poisson.flatten()
                (grad,) = torch.autograd.grad(norm.sum(), z_t)
        self.report_step(t, z_t, x0)
        z_prime = ddim_step(z_t.detach(), x0.detach(), ab, ab_prev, self.eta, generators)
        if guided:
            z_prime = z_prime - self.dps_scale * ab * grad  # ddim.py:260, condition_methods.py:63
        return z_prime, estimate.detach()

    @torch.no_grad()
    def look_ahead(self, z_prime: Tensor, estimate: Tensor, grid: list[tuple[int, float, float]], i: int,
                   model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        """Step 3a: `lookahead` DDIM steps from z' (at most to the grid's last step), as the code indexes them
        (ddim.py:274-285); returns z0~ of the last, or `estimate` if none runs. z' itself is kept."""
        state = z_prime
        for k in range(i, min(i + self.lookahead, len(grid) - 1)):
            t_next = grid[k + 1][0]
            _, ab_k, ab_next = grid[k]
            eps = model.eps(state, timesteps(t_next, state.shape[0], state.device))
            estimate = self.estimate(state, eps, ab_k)
            state = ddim_step(state, tweedie_x0(state, eps, ab_k), ab_k, ab_next, self.eta, generators)
        return estimate

    def latent_fit(self, z_start: Tensor, y: Tensor, op: Physics, autoencoder: Autoencoder) -> Tensor:
        """argmin_z ||y - A(D(z))||^2 per image by AdamW from z_start (ddim.py:373-432): at most latent_iters
        iterations; an image stops after the step where its loss (of the iterate before the step) is below tol^2,
        or above its loss `window` iterations before. Only images still fitting are decoded."""
        image_shape = (y.shape[0], *autoencoder.image_shape)

        def losses(z: Tensor, active: Tensor) -> Tensor:
            rows = active.nonzero().flatten()
            images = torch.zeros(image_shape, device=z.device, dtype=z.dtype)
            images = images.index_copy(0, rows, autoencoder.decode(z[rows]))
            return misfits(op, images, y)

        return adamw_fit(z_start, losses, self.latent_lr, self.latent_iters, self.tol, self.window)

    def pixel_fit(self, z_start: Tensor, y: Tensor, op: Physics, autoencoder: Autoencoder) -> Tensor:
        """E(argmin_x ||y - A(x)||^2) per image, AdamW on x (model units) from D(z_start), at most pixel_iters
        iterations, an image stopping after the step where its loss is below tol^2 (ddim.py:297-304, 337-370)."""
        with torch.no_grad():
            start = to_model(autoencoder.decode(z_start))
        x = adamw_fit(start, lambda x, active: misfits(op, to_image(x), y), self.pixel_lr, self.pixel_iters,
                      self.tol, None)
        with torch.no_grad():
            return autoencoder.encode(to_image(x))


def misfits(op: Physics, images: Tensor, y: Tensor) -> Tensor:
    """Each image's MSELoss(y, A(x)) on the code's [-1, 1] scale (ddim.py:349, 361, 398, 408): the mean of
    (2 (A(x) - y))^2 over its entries, x in image units."""
    return (2 * (op.A(images) - y)).flatten(1).square().mean(1)


# torch.optim.AdamW's defaults, which the code keeps (ddim.py:353, 399)
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.01


def adamw_fit(start: Tensor, losses: Callable[[Tensor, Tensor], Tensor], lr: float, iters: int, tol: float,
              window: int | None) -> Tensor:
    """Minimise each image's loss by its own AdamW from `start`, with the code's stopping rules per image.

    `losses(x, active)` gives the (N,) losses of the iterate x (images not `active` may be left out: their
    entries are ignored). AdamW is elementwise, so one update of the batch is each image's own; an image that
    stops keeps its iterate and is no longer updated (`adamw_update`). An image stops after the step at which its
    loss was below tol^2, or, with a `window`, above its loss `window` iterations before (ddim.py:419-428)."""
    x = start.detach().clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    history: list[list[float]] = [[] for _ in range(x.shape[0])]
    for itr in range(iters):
        with torch.enable_grad():
            x_var = x.detach().requires_grad_(True)
            loss = losses(x_var, active)
            (grad,) = torch.autograd.grad(loss.sum(), x_var)
        x, m, v = adamw_update(x, grad, m, v, itr + 1, lr, active)
        values = loss.detach().tolist()
        for j in active.nonzero().flatten().tolist():
            stop = False
            if window is not None:
                history[j].append(values[j])
                if itr >= window:
                    stop = history[j][0] < values[j]
                    history[j].pop(0)
            if stop or values[j] < tol ** 2:
                active[j] = False
        if not bool(active.any()):
            break
    return x


def adamw_update(x: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: int, lr: float,
                 active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One step of torch.optim.AdamW (decoupled weight decay, bias-corrected moments) on the `active` images;
    the others keep their iterate and moments. All active images have taken the same number of steps."""
    beta1, beta2 = BETAS
    decayed = x * (1 - lr * WEIGHT_DECAY)
    m_new = m.lerp(grad, 1 - beta1)
    v_new = v * beta2 + (1 - beta2) * grad * grad
    denom = v_new.sqrt() / math.sqrt(1 - beta2 ** step) + ADAM_EPS
    x_new = decayed - (lr / (1 - beta1 ** step)) * m_new / denom
    keep = active.view(-1, *([1] * (x.ndim - 1)))
    return torch.where(keep, x_new, x), torch.where(keep, m_new, m), torch.where(keep, v_new, v)
