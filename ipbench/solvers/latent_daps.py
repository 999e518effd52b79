"""Latent DAPS: Decoupled Annealing Posterior Sampling on a latent prior (Zhang et al. 2025, CVPR, "Improving
diffusion inverse problem solving with decoupled noise annealing": Algorithm 1 run on latents, the paper's
LatentDAPS of its latent diffusion experiments).

On a `LatentPrior` (models/latent.py) every step of `daps` (solvers/daps.py) runs on the latent z in the VE view
z = z0 + sigma n of the latent model; the image is decode(z0) and y = A(decode(z0)) + n. At each annealing level:

1. z0_hat = the probability-flow ODE of the latent model from z_t, as `daps` (sampler.py:170-174 at the commit
   below: the same `DiffusionPFODE` on the latent network);
2. an MCMC chain on z0 from z0_hat targeting N(z0; z0_hat, r_t^2 I) N(y; A(decode(z0)), tau^2 I)
   (sampler.py:165, 178: the sampler of `daps` with the operator wrapped by `LatentWrapper`), whose data term is
   -clamp(grad_z ||A(decode(z0)) - y||^2, -c, c) / (2 tau^2): the gradient is back-propagated through the
   decoder and A and clamped entry by entry (forward_operator/__init__.py:392-406, the clamp at :402);
3. z_{t-1} = z0 + sigma_{t-1} n in latent space (sampler.py:183-186); the answer is decode(z) (sampler.py:188,
   207).

What differs from `daps`, and only that: the data term goes through the decoder and is clamped; the chain is the
code's damped HMC (cores/mcmc.py:82-83, 89-92; every latent task config sets mc_algo hmc, e.g.
configs/task/inpainting.yaml:44, "enhance LatentDAPS with HMC", README.md:17): with h = sqrt(eta_k),
v <- m v + h s(z) + sqrt(2 (1 - m)) n and z <- z + h v, from v ~ N(0, I) at each level; momentum = 0 is the code's
Langevin update (cores/mcmc.py:88), exactly `daps`'s chain (`daps.posterior_chain` serves both); the output is
decoded. The annealing levels, the ODE, r_t = sigma_t, the step size eta_k = lr decay_k / (1 / r_t^2 +
1 / (2 tau)^2) with its linear decay (the code's ratio step / num_steps, sampler.py:178) and tau's units are
`daps`'s. A is used through autograd only, so nonlinear operators apply.

Units. z, z0_hat, r_t and the chain are in the latent model's units; the decoder's output is an image in [0, 1]
(the code's LDM decoder gives [-1, 1], its data range, data.py:82), tau in image units as for `daps`. The code's
residual is in [-1, 1] units, twice ipbench's, so its squared residual's gradient g_code is 4 g: its clamp of g_code
to [-1, 1] is ipbench's clamp of g to [-1/4, 1/4] (`grad_clip` = 0.25), and its data term -clamp(g_code) / tau_code^2
is the one above with tau = tau_code / (2 sqrt 2) = `daps.OFFICIAL_TAU`. Phase retrieval's code residual is in
image units (forward_operator/__init__.py:307): there the clamp is 1 and tau = 0.01 / sqrt 2 (the preset).
HMC's step: on a quadratic target of curvature lambda the damped chain is stable for h^2 lambda < 2 (1 + m), so
`lr` is at most 2 (1 + momentum) (2 at momentum 0, `daps`'s bound); lambda <= 1 / r_t^2 + 1 / (2 tau)^2 holds
when ||A J_decode|| <= 1/2 (the linear autoencoder's, for ||A|| <= 1); a learned decoder's Jacobian may be larger,
and the clamp bounds the data force.

Cost per image: NFE = steps x ode_steps (the latent network, as `daps`); decodes = steps x langevin_steps (each
with a backward) + 1 (the answer); no encodes. The code also decodes z0_hat, z0 and z_t at every level for its
evaluation and trajectory records (sampler.py:175, 180, 188); they change nothing and are not run.

Defaults (official code: github zhangbingliang2019/DAPS at 098df6b; `latent_edm_daps.yaml` is
configs/sampler/latent_edm_daps.yaml, the sampler of every latent command, commands/ldm_ffhq.sh:12):
- steps = 50, ode_steps = 2 (latent_edm_daps.yaml:5, 12; commands/ldm_ffhq.sh:16-17): the code's LatentDAPS-100
  is already `daps`'s CPU budget of 100 NFE, so it is kept; sigma_max = 10, sigma_min = 0.1, rho = 7
  (latent_edm_daps.yaml:6-8); r_t = sigma_t (prior_solver gaussian, e.g. configs/task/inpainting.yaml:45).
- tau = 0.003536 and grad_clip = 0.25: the code's tau 0.01 (configs/task/*.yaml, ldm sections) and clamp
  (forward_operator/__init__.py:402) in image units (above).
- momentum = 0.8 and lr_min_ratio = 0.03: the medians of the eight latent task configs (momentum 0.41-0.95, median
  0.80; lr_min_ratio 0.013-0.95, median 0.0325; configs/task/<task>.yaml, ldm sections, `PAPER_PRESET`).
- langevin_steps = 20 (the code's per task: 15-80, median 38) and lr = 1 (the code's per task, converted: 0.054-2.7,
  median 0.14): a CPU-cheap chain, chosen on the Gaussian latent check (`bench check`'s problems:
  checks/latent_gaussian.py, 16 images drawn from that synthetic prior, seed 0, the exact MMSE bound; no image of a
  results table: no latent prior has been evaluated on fashion32 yet) the defaults give R = MSE / MMSE = 1.02, 1.05, 1.39 on denoise, inpaint-box,
  inpaint-random; the medians' lr 0.14 at 20 steps leaves the chain short of the data (1.91, 2.41, 3.03; at their
  38 steps 1.12, 1.33, 2.02); lr = 2 gives the defaults' values, momentum 0.5 or 0.9 and 10 steps are worse on one
  task or more, Langevin (momentum 0) on all three (docs/solvers.md, Latent DAPS).

Deviations from the official code:
- ode_sigma_min = 0.01, not the code's 0.001 (latent_edm_daps.yaml:13): ipbench snaps every sigma onto the model's
  grid, whose smallest level is 0.01 on the linear 1000-step schedule, so 0.001 would run as 0.01 and is refused
  (`check_model`); the code feeds its network the fractional sigma.
- The step size is relative to the curvature, as `daps`'s; the code's absolute lr is lr / (1 / sigma^2 +
  1 / (2 tau)^2), within 0.5% of lr (2 tau)^2 for sigma >= 0.1 (2% at phase retrieval's tau): the presets convert.
- Sigmas are snapped onto the model's grid, and a chain that turns NaN is returned as it is (the code returns
  zeros, cores/mcmc.py:158-159), as for `daps`.
- `report_step` (the `--trace` hook) gets z_t and z0 in latent units, as `latent-dps`'s does: no decode is spent
  on it.

Preset `paper`: each task's ldm section (LDM FFHQ / ImageNet, the paper's latent results; commands/ldm_ffhq.sh):
its HMC steps, lr (converted as for `daps`: lr_code / (2 tau)^2, to 3 significant digits), tau, lr_min_ratio and
momentum, with latent_edm_daps.yaml's schedule. The code's ode sigma_min 0.001 is not set (above). The sd sections
(Stable Diffusion, its own operator noise sigma 0.01) are not a preset. The phase-retrieval command keeps the best
of 4 runs by PSNR against the truth (commands/ldm_ffhq.sh:15), which a preset cannot set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.latent import Autoencoder, autoencoder_of
from ipbench.params import NON_NEGATIVE, POSITIVE, Range, Tune, param
from ipbench.solvers.base import register_solver
from ipbench.solvers.daps import DAPS, OFFICIAL_TAU, PHASE_TAU, TAU_NOTE, posterior_chain
from ipbench.solvers.presets import PAPER, Preset, Setting, families

# The code clamps the gradient of its [-1, 1]-unit residual to [-1, 1]: a quarter of that in image units.
CODE_CLIP = 0.25
CLIP_NOTE = ("the code clamps each entry of the gradient of its [-1, 1]-unit squared residual to [-1, 1] "
             "(forward_operator/__init__.py:402), a quarter of that for ipbench's image-unit residual")
PHASE_CLIP_NOTE = ("phase retrieval's code residual is in image units (forward_operator/__init__.py:307), so the "
                   "code's clamp to [-1, 1] is 1 here")


def decoder_misfit_gradient(z: Tensor, y: Tensor, op: Physics, autoencoder: Autoencoder,
                            clip: float | None) -> Tensor:
    """grad_z ||A(decode(z)) - y||^2 (each image's its own) by autograd through the decoder and A, each entry
    clamped to [-clip, clip] (none if clip is None): the code's `LatentWrapper.gradient`
    (forward_operator/__init__.py:396-406). One decode with a backward; no graph is kept."""
    with torch.enable_grad():
        z_var = z.detach().requires_grad_(True)
        misfit = (op.A(autoencoder.decode(z_var)) - y).flatten(1).square().sum()
        (grad,) = torch.autograd.grad(misfit, z_var)
    return grad if clip is None else grad.clamp(-clip, clip)


# As daps.PHASE_TAU_NOTE, with the line of the ldm section's operator noise.
LATENT_PHASE_TAU_NOTE = ("tau 0.01 with a squared-norm data term on magnitudes of [0, 1] images (the code maps the "
                         "decoded [-1, 1] image to [0, 1] first, forward_operator/__init__.py:307) is std "
                         "0.01 / sqrt 2 in image units; that is phase-retrieval's convention=daps, whose sigma_y is "
                         "the ldm section's 0.05 (:46): set both")


def _ldm_task(config: str, line: int, code_lr: float, steps: int, lr_min_ratio: float, momentum: float,
              tau: float = OFFICIAL_TAU, tau_note: str = TAU_NOTE, clip: float = CODE_CLIP,
              clip_note: str = CLIP_NOTE) -> dict[str, Setting]:
    """One task's ldm section: num_steps at `line`, then lr, tau, lr_min_ratio and momentum on the next four.

    lr = code_lr / (2 tau)^2 (the code's absolute step over the likelihood's curvature; the prior's 1 / sigma^2
    is under 0.5% of it for sigma >= 0.1 at the official tau, 2% at phase retrieval's), to 3 significant digits."""
    path = f"configs/task/{config}"
    lr = float(f"{code_lr / (2 * tau) ** 2:.3g}")
    return {"langevin_steps": Setting(steps, f"{path}:{line}", "mcmc num_steps (HMC steps)"),
            "lr": Setting(lr, f"{path}:{line + 1}", f"the code's absolute lr {code_lr:g} is {lr:g} over the "
                          "likelihood's curvature here"),
            "tau": Setting(tau, f"{path}:{line + 2}", tau_note),
            "lr_min_ratio": Setting(lr_min_ratio, f"{path}:{line + 3}"),
            "momentum": Setting(momentum, f"{path}:{line + 4}", "HMC momentum (mc_algo hmc)"),
            "grad_clip": Setting(clip, "forward_operator/__init__.py:402", clip_note)}


PAPER_PRESET = Preset(
    repository="github.com/zhangbingliang2019/DAPS at 098df6b",
    note="LatentDAPS-100 with each task's ldm section (LDM FFHQ / ImageNet, commands/ldm_ffhq.sh); the code's ODE "
         "sigma_min 0.001 (configs/sampler/latent_edm_daps.yaml:13) is below the model's grid and is not set "
         "(0.01, the grid's end); no denoising, JPEG, CT or MRI task config: those keep the defaults; the "
         "phase-retrieval command keeps the best of num_runs = 4 samples by PSNR against the truth "
         "(commands/ldm_ffhq.sh:15), which a preset cannot set: ipbench reports every sample",
    operators=families(
        {"steps": Setting(50, "configs/sampler/latent_edm_daps.yaml:5", "annealing num_steps"),
         "ode_steps": Setting(2, "configs/sampler/latent_edm_daps.yaml:12", "diffusion num_steps"),
         "sigma_max": Setting(10.0, "configs/sampler/latent_edm_daps.yaml:6"),
         "sigma_min": Setting(0.1, "configs/sampler/latent_edm_daps.yaml:7")},
        {"inpaint-box": _ldm_task("inpainting.yaml", 39, 9.02e-6, 15, 0.13, 0.74),
         "inpaint-random": _ldm_task("inpainting_rand.yaml", 39, 8.40e-6, 38, 0.013, 0.92),
         "deblur-gauss": _ldm_task("gaussian_blur.yaml", 37, 2.70e-6, 35, 0.95, 0.95),
         "deblur-motion": _ldm_task("motion_blur.yaml", 37, 2.4e-5, 49, 0.041, 0.45),
         "sr": _ldm_task("down_sampling.yaml", 37, 1.35e-4, 24, 0.023, 0.86),
         "phase-retrieval": _ldm_task("phase_retrieval.yaml", 35, 2.1e-5, 65, 0.12, 0.41, tau=PHASE_TAU,
                                      tau_note=LATENT_PHASE_TAU_NOTE, clip=1.0, clip_note=PHASE_CLIP_NOTE),
         "hdr": _ldm_task("hdr.yaml", 35, 4.52e-6, 38, 0.015, 0.58),
         "deblur-nonlinear": _ldm_task("nonlinear_blur.yaml", 35, 3.71e-6, 80, 0.024, 0.91)}))


@register_solver
@dataclass
class LatentDAPS(DAPS):
    """DAPS on a latent prior: ODE z0_hat, HMC on p(z0 | z_t, y) through the decoder, re-noise; decode."""

    name = "latent-daps"
    prior: ClassVar[str] = "latent"
    presets = {PAPER: PAPER_PRESET}
    sigma_max: float = param(10.0, range=POSITIVE)  # latent units (VE)
    langevin_steps: int = param(20, range=NON_NEGATIVE)  # MCMC steps per level: HMC, Langevin at momentum 0
    lr: float = param(1.0, range=Range(0, 4, low_open=True, high_open=True),
                      tune=Tune(0.01, 2, log=True))  # fraction of 1 / curvature; at most 2 (1 + momentum)
    lr_min_ratio: float = param(0.03, range=Range(0, 1, low_open=True))  # lr's linear decay to this factor
    momentum: float = param(0.8, range=Range(0, 1, high_open=True), tune=Tune(0.0, 0.95))  # HMC; 0: Langevin
    grad_clip: float | None = param(CODE_CLIP, range=POSITIVE)  # entries of grad_z ||A(decode(z)) - y||^2; None: off

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr > 2 * (1 + self.momentum):
            raise UsageError(f"solver {self.name}.lr={self.lr:g}: must be at most 2 (1 + momentum) = "
                             f"{2 * (1 + self.momentum):g} (beyond it the chain grows along the stiffest direction)")

    def autoencoder(self, model: ScoreModel) -> Autoencoder:
        autoencoder = autoencoder_of(model)
        if autoencoder is None:  # the runner skips pixel priors (prior_problem); a direct caller gets this
            raise ValueError(f"{self.name} needs a latent prior (a model with an autoencoder)")
        return autoencoder

    def sample_x0(self, x0_hat: Tensor, y: Tensor, op: Physics, model: ScoreModel, r: float, tau: float, step: float,
                  generators: Sequence[torch.Generator]) -> Tensor:
        """The chain on p(z0 | z_t, y) from z0_hat: the data score through the decoder, clamped (module docstring)."""
        autoencoder = self.autoencoder(model)

        def data_score(z: Tensor) -> Tensor:
            return -decoder_misfit_gradient(z, y, op, autoencoder, self.grad_clip) / (2 * tau**2)

        return posterior_chain(x0_hat, r, data_score, step, self.langevin_steps, generators, self.momentum)

    def image_of(self, x0: Tensor, model: ScoreModel) -> Tensor:
        """The answer: decode(z0), an image in [0, 1] units."""
        return self.autoencoder(model).decode(x0)
