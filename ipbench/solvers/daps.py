"""Decoupled Annealing Posterior Sampling (Zhang et al. 2025, CVPR, "Improving diffusion inverse problem
solving with decoupled noise annealing", Sec. 3 and Algorithm 1).

In the VE view x_t = x0 + sigma_t n (model units, `models/denoiser.py`), DAPS anneals sigma_t down a
schedule sigma_0 > ... > sigma_{N-1} and at each level:

1. x0_hat = the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma solved from sigma_t to
   `ode_sigma_min` by `ode_steps` Euler steps on an EDM grid (Karras et al. 2022, eq. 5) from x_t;
2. Langevin dynamics on x0 targeting p(x0 | x_t, y) ~ N(x0; x0_hat, r_t^2 I) N(y; A x0, tau^2 I):
   x0 <- x0 + eta_k grad log p + sqrt(2 eta_k) z, started at x0_hat, with r_t = r_scale sigma_t;
3. x_{t-1} = x0 + sigma_{t-1} z (the last level returns x0).

The loop is shared with `latent-daps` (solvers/latent_daps.py), which overrides only the chain (`sample_x0`: the
code's damped HMC through the decoder, by `posterior_chain`, whose momentum 0 is the Langevin step here) and the
answer (`image_of`: the decoding).

Units: x, x0_hat, r_t and the Langevin chain are in model units; A acts on to_image(x0) and tau (like
sigma_y) is in image units, so the likelihood's curvature in model units is ||A||^2 / (2 tau)^2. The
measurement gradient is that of ||A to_image(x0) - y||^2 only: no network backward.

Step size. eta_k = lr * decay_k / (1 / r_t^2 + 1 / (2 tau)^2): `lr` is a fraction of the inverse of the
target's largest curvature (for ||A|| <= 1, true of ipbench's masks, blurs, SR and the identity), so lr < 2
is stable for any sigma_y, tau and r_t (at lr = 2 the stiffest direction neither grows nor decays).
decay_k = 1 + k / (N + 1) (lr_min_ratio - 1) is the official linear decay (cores/mcmc.py:174-180, called with
step / annealing_scheduler.num_steps = k / (N + 1): sampler.py:73, cores/scheduler.py:39).

Defaults (official code: github zhangbingliang2019/DAPS at 098df6b; pixel-space FFHQ/ImageNet settings):
- sigma_max = 100, sigma_min = 0.1, rho = 7 (configs/sampler/edm_daps.yaml:6-8); the annealing levels are
  the first N of an (N + 1)-point EDM grid, as the code's `discretize` drops its last point
  (cores/scheduler.py:41-44); ode_sigma_min = 0.01 (edm_daps.yaml:13).
- r_t = sigma_t (r_scale = 1): the code's "gaussian" prior solver, whose prior and x_t terms sum to
  (x0_hat - x0) / sigma_t^2 (cores/mcmc.py:48-49, 71-72).
- lr_min_ratio = 0.01 (configs/task/*.yaml:7).
- tau = 0.003536 (image units), the official likelihood: its data term is -grad ||A x0 - y||^2 / tau^2 on
  [-1, 1] data with tau = 0.01 (configs/task/*.yaml:6, cores/mcmc.py:46-47), a Gaussian likelihood of std
  0.01 / sqrt(2) in [-1, 1] units, 0.01 / (2 sqrt(2)) in image units: seven times below the benchmark's
  noise (sigma 0.05 on [-1, 1], sigma_y = 0.025 here), a tempered likelihood. `tau=none` uses sigma_y, the
  posterior of the paper's Sec. 3 as written; on fashion32 (8 images) that lost 1.3 dB on inpaint-box and
  3.0 dB on deblur-gauss to the official value (docs/solvers.md), its samples carrying more noise.
- The paper's DAPS-1K (1000 NFE) is steps=200 ode_steps=5 langevin_steps=100 (edm_daps.yaml:5, 12;
  configs/task/*.yaml:4):
      --param daps.steps=200 --param daps.ode_steps=5 --param daps.langevin_steps=100 --param daps.lr=2
  with lr=1 for box inpainting and motion blur: the code's lr = 1e-4 (5e-5 for box inpainting and motion
  blur; gaussian_blur.yaml:5, inpainting.yaml:5, motion_blur.yaml:5) is 2 (1) / (1 / sigma^2 + 1 / (2 tau)^2)
  to within 0.5% for sigma >= 0.1; `--preset paper` sets all of it per task.
- ipbench's default is a cheap CPU setting: steps=50, ode_steps=2 (100 NFE), langevin_steps=50, and lr=1
  (better than lr=2 on fashion32 for both box inpainting and blur, docs/solvers.md).

Deviations from the official code:
- The step size is relative to the target's curvature (above) instead of absolute, so that one default is
  stable whatever sigma_y and tau; the two agree on the code's setting.
- Sigmas are snapped onto the model's discrete grid (`karras_sigmas`); the code feeds fractional times to
  its network.
- The code returns zeros when a Langevin chain turns NaN (cores/mcmc.py:158-159); ipbench returns what the
  chain gives, and the harness records non-finite output.

Preset `paper`: DAPS-1K per task (configs/task/<task>.yaml, `pixel` section, and configs/sampler/edm_daps.yaml):
200 levels x 5 ODE steps, 100 Langevin steps, lr 1 where the code's lr is 5e-5 (box inpainting, motion blur)
and 2 where it is 1e-4 (random inpainting, Gaussian blur, SR), the official tau and lr_min_ratio. The nonlinear
tasks convert the same way: HDR lr 2e-5 -> 0.4; nonlinear blur 200 Langevin steps, lr 1e-5 -> 0.2; phase
retrieval lr 5e-5 with tau 0.01 / sqrt 2 (its code residual is in image units, not [-1, 1] ones) -> 0.25, for
`phase-retrieval` with convention=daps and sigma_y=0.05 (the code's problem). The README's phase-retrieval
run keeps the best of 4 samples per image by PSNR against the truth (README.md:153-163,
posterior_sample.py:252-260), an oracle a preset cannot set: ipbench scores every sample. None for denoising,
JPEG, CT or MRI (no task config).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, to_image
from ipbench.models.denoiser import denoise, karras_sigmas, time_of_sigma
from ipbench.operators.base import noise_level
from ipbench.params import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import check_sigma
from ipbench.solvers.presets import PAPER, Preset, Setting, families

# The official likelihood std in image units: tau = 0.01 on [-1, 1] with a squared-norm gradient (module docstring).
OFFICIAL_TAU = round(0.01 / (2 * math.sqrt(2)), 6)


def annealing_sigmas(model: ScoreModel, steps: int, sigma_max: float, sigma_min: float, rho: float) -> list[float]:
    """The N = `steps` annealing levels: the first N of an (N + 1)-point EDM grid (the code drops sigma_min)."""
    return karras_sigmas(model, steps + 1, sigma_max, sigma_min, rho)[:steps]


def ode_x0(model: ScoreModel, x: Tensor, sigma: float, steps: int, sigma_min: float, rho: float) -> Tensor:
    """x0_hat: Euler steps of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma from `sigma`
    down to `sigma_min` on an EDM grid of `steps` intervals (one network evaluation per step)."""
    sigmas = karras_sigmas(model, steps + 1, sigma, sigma_min, rho)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * (x - denoise(model, x, s)) / s
    return x


def noise_per_step(steps: int, like: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """(steps, *like.shape) standard normal noise, image i's from generators[i], in one draw per image."""
    return torch.stack([torch.randn((steps, *like.shape[1:]), generator=g, device=g.device, dtype=like.dtype)
                        for g in generators], dim=1).to(like.device)


def posterior_chain(x0_hat: Tensor, r: float, data_score: Callable[[Tensor], Tensor], step: float, steps: int,
                    generators: Sequence[torch.Generator], momentum: float = 0.0) -> Tensor:
    """`steps` MCMC steps on x0 from x0_hat targeting N(x0; x0_hat, r^2 I) L(x0), where data_score(x0) is
    grad log L: the code's two samplers (cores/mcmc.py:85-95) with the score of cores/mcmc.py:46-50.

    momentum = 0: unadjusted Langevin, x <- x + step s(x) + sqrt(2 step) z (cores/mcmc.py:88). momentum m > 0:
    the code's damped HMC (cores/mcmc.py:89-92) with h = sqrt(step), v <- m v + h s(x) + sqrt(2 (1 - m)) z,
    x <- x + h v, from v ~ N(0, I) drawn before the chain (cores/mcmc.py:82-83). At m = 0 the HMC update is
    the Langevin one (its v0 is multiplied by 0, so none is drawn). Noise: one draw per image and chain."""
    x = x0_hat
    velocity = randn_per_image(x0_hat.shape, generators, x0_hat.device, x0_hat.dtype) if momentum > 0 else None
    noise = noise_per_step(steps, x0_hat, generators)
    h = math.sqrt(step)
    for k in range(steps):
        score = (x0_hat - x) / r**2 + data_score(x)
        if velocity is None:
            x = x + step * score + math.sqrt(2 * step) * noise[k]
        else:
            velocity = momentum * velocity + h * score + math.sqrt(2 * (1 - momentum)) * noise[k]
            x = x + h * velocity
    return x


def langevin(x0_hat: Tensor, y: Tensor, op: Physics, r: float, tau: float, step: float, steps: int,
             generators: Sequence[torch.Generator]) -> Tensor:
    """`steps` unadjusted Langevin steps of size `step` on x0 (model units), from x0_hat, targeting
    N(x0; x0_hat, r^2 I) N(y; A to_image(x0), tau^2 I) (tau in image units).

    grad_x0 ||A to_image(x0) - y||^2 / (2 tau^2) = A^T (A to_image(x0) - y) / (2 tau^2) (d image / d model = 1/2);
    A^T is deepinv's vector-Jacobian product, the adjoint for linear operators."""
    def data_score(x: Tensor) -> Tensor:
        x_img = to_image(x)
        return -op.A_vjp(x_img, op.A(x_img) - y) / (2 * tau**2)

    return posterior_chain(x0_hat, r, data_score, step, steps, generators)


# tau 0.01 with the code's squared-norm data term, on an operator whose output its residual sees in [-1, 1]
# units (the linear tasks, HDR, the nonlinear blur): twice ipbench's image-units residual.
TAU_NOTE = "tau 0.01 on [-1, 1] with a squared-norm data term is std 0.01 / (2 sqrt 2) in image units"
# Phase retrieval's code maps its input to [0, 1] before the transform (forward_operator/__init__.py:307), so
# its residual is ipbench's own (convention daps, operators/phase.py): std 0.01 / sqrt 2 in image units.
PHASE_TAU = round(0.01 / math.sqrt(2), 6)
PHASE_TAU_NOTE = ("tau 0.01 with a squared-norm data term on magnitudes of [0, 1] images (the code's input "
                  "mapped back to [0, 1], forward_operator/__init__.py:307) is std 0.01 / sqrt 2 in image units; "
                  "that is phase-retrieval's convention=daps, whose sigma_y is the code's 0.05 (:14): set both")


def _task(config: str, code_lr: float, langevin_steps: int = 100, tau: float = OFFICIAL_TAU,
          tau_note: str = TAU_NOTE) -> dict[str, Setting]:
    """One pixel-space task config: its Langevin steps, lr (converted), tau and lr_min_ratio (lines 4-7).

    The code's absolute step is lr_code = lr / (1 / sigma^2 + 1 / (2 tau)^2) here (module docstring); with
    sigma >= 0.1 the 1 / sigma^2 term is at most 0.5% of 1 / (2 tau)^2 at the official tau and 2% at the
    phase-retrieval one, so lr = lr_code / (2 tau)^2, to 2 decimals."""
    path = f"configs/task/{config}"
    lr = round(code_lr / (2 * tau) ** 2, 2)
    return {"langevin_steps": Setting(langevin_steps, f"{path}:4", "mcmc num_steps"),
            "lr": Setting(lr, f"{path}:5", f"the code's absolute lr {code_lr:g} on [-1, 1] is {lr:g} over the "
                          "target's largest curvature here"),
            "tau": Setting(tau, f"{path}:6", tau_note),
            "lr_min_ratio": Setting(0.01, f"{path}:7")}


PAPER_PRESET = Preset(
    repository="github.com/zhangbingliang2019/DAPS at 098df6b",
    note="DAPS-1K (1000 NFE); no denoising, JPEG, CT or MRI task config: those keep the defaults; the README's "
         "phase-retrieval command takes the best of num_runs = 4 samples per image by PSNR against the truth "
         "(README.md:153-163, posterior_sample.py:252-260), which a preset cannot set: ipbench reports every sample",
    operators=families(
        {"steps": Setting(200, "configs/sampler/edm_daps.yaml:5", "annealing num_steps"),
         "ode_steps": Setting(5, "configs/sampler/edm_daps.yaml:12", "diffusion num_steps"),
         "sigma_max": Setting(100.0, "configs/sampler/edm_daps.yaml:6"),
         "sigma_min": Setting(0.1, "configs/sampler/edm_daps.yaml:7"),
         "ode_sigma_min": Setting(0.01, "configs/sampler/edm_daps.yaml:13")},
        {"inpaint-box": _task("inpainting.yaml", 5e-5),
         "inpaint-random": _task("inpainting_rand.yaml", 1e-4),
         "deblur-gauss": _task("gaussian_blur.yaml", 1e-4),
         "deblur-motion": _task("motion_blur.yaml", 5e-5),
         "sr": _task("down_sampling.yaml", 1e-4),
         "phase-retrieval": _task("phase_retrieval.yaml", 5e-5, tau=PHASE_TAU, tau_note=PHASE_TAU_NOTE),
         "hdr": _task("hdr.yaml", 2e-5),
         "deblur-nonlinear": _task("nonlinear_blur.yaml", 1e-5, langevin_steps=200)}))


@register_solver
@dataclass
class DAPS(Solver):
    """Annealing over sigma: ODE x0_hat, Langevin on p(x0 | x_t, y), re-noise to the next level."""

    name = "daps"
    presets = {PAPER: PAPER_PRESET}
    steps: int = param(50, range=AT_LEAST_ONE)  # annealing levels (DAPS-1K: 200)
    ode_steps: int = param(2, range=AT_LEAST_ONE)  # Euler steps per level, one NFE each (DAPS-1K: 5)
    langevin_steps: int = param(50, range=NON_NEGATIVE)  # per level (the code: 100)
    lr: float = param(1.0, range=Range(0, 2, low_open=True), tune=Tune(0.01, 2, log=True))  # fraction of 1 / curvature; 2 = neutral
    lr_min_ratio: float = param(0.01, range=Range(0, 1, low_open=True))  # lr's linear decay to this factor
    tau: float | None = param(OFFICIAL_TAU, range=POSITIVE, tune=Tune(1e-3, 0.3, log=True))  # likelihood std, image units; None: sigma_y
    r_scale: float = param(1.0, range=POSITIVE)  # r_t = r_scale * sigma_t
    sigma_max: float = param(100.0, range=POSITIVE)  # model units (VE)
    sigma_min: float = param(0.1, range=POSITIVE)
    ode_sigma_min: float = param(0.01, range=POSITIVE)
    rho: float = param(7.0, range=POSITIVE)  # EDM schedule exponent (poly-7)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sigma_max > self.sigma_min > self.ode_sigma_min:
            raise UsageError(f"solver {self.name}: needs sigma_max > sigma_min > ode_sigma_min, got "
                             f"{self.sigma_max:g}, {self.sigma_min:g}, {self.ode_sigma_min:g}")

    def check_model(self, model: ScoreModel) -> None:
        super().check_model(model)
        for name in ("sigma_max", "sigma_min", "ode_sigma_min"):  # the EDM grids are snapped to the model's
            check_sigma(model, f"solver {self.name}", name, getattr(self, name))

    def likelihood_std(self, op: Physics) -> float:
        """tau in image units: the field; if none, sigma_y (the official value when sigma_y = 0)."""
        return self.tau if self.tau is not None else (noise_level(op) or OFFICIAL_TAU)

    @torch.no_grad()  # no network backward: the Langevin steps need only A's vector-Jacobian product
    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        tau = self.likelihood_std(op)
        sigmas = annealing_sigmas(model, self.steps, self.sigma_max, self.sigma_min, self.rho)
        x = sigmas[0] * randn_per_image((y.shape[0], *model.image_shape), generators, y.device)
        for k, sigma in enumerate(sigmas):
            x0_hat = ode_x0(model, x, sigma, self.ode_steps, self.ode_sigma_min, self.rho)
            r = self.r_scale * sigma
            decay = 1 + k / (self.steps + 1) * (self.lr_min_ratio - 1)
            step = self.lr * decay / (1 / r**2 + 1 / (2 * tau) ** 2)
            x0 = self.sample_x0(x0_hat, y, op, model, r, tau, step, generators)
            self.report_step(time_of_sigma(model, sigma), x / math.sqrt(1 + sigma**2), x0)  # x_t in VP scaling
            sigma_next = sigmas[k + 1] if k + 1 < len(sigmas) else 0.0
            x = x0 + sigma_next * randn_per_image(x0.shape, generators, x0.device) if sigma_next > 0 else x0
        return self.image_of(x, model)

    def sample_x0(self, x0_hat: Tensor, y: Tensor, op: Physics, model: ScoreModel, r: float, tau: float, step: float,
                  generators: Sequence[torch.Generator]) -> Tensor:
        """Step 2 of a level (Algorithm 1): the chain on p(x0 | x_t, y) from x0_hat, in model units."""
        return langevin(x0_hat, y, op, r, tau, step, self.langevin_steps, generators)

    def image_of(self, x0: Tensor, model: ScoreModel) -> Tensor:
        """The answer's image: x0 in [0, 1] units."""
        return to_image(x0)
