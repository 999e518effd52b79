"""RED-diff: regularization by denoising diffusion (Mardani, Song, Kautz, Vahdat 2024, ICLR; Algorithm 1).

A variational posterior q = N(mu, sigma_x0^2 I) (sigma_x0 -> 0) is fitted by stochastic optimisation of

    ||y - A mu||^2 / 2  +  lambda w_t <sg(eps_hat(x_t, t) - eps), mu>,    x_t = sqrt(ab_t) mu + sqrt(1 - ab_t) eps,

one Adam step on mu per diffusion time, t running down over `steps` times. sg is stop-gradient: the
network is evaluated once per step without a graph (its Jacobian is never needed), so the gradient of the
second term is lambda w_t (eps_hat - eps). w_t is the inverse SNR sqrt(1 - ab_t) / sqrt(ab_t)
(`weighting=linear`; the others of the code are offered).

This follows NVlabs/RED-diff (algos/reddiff.py) at 66482f2: both terms are means over their entries,
||.||^2 / 2 over y's and <., mu> over mu's (reddiff.py:86-88), weighted by obs_weight = 1 and
lambda w_t (reddiff.py:90-111); Adam with betas (0.9, 0.99) and no weight decay (reddiff.py:52); mu starts
at A^+ y (reddiff.py:138-141); everything in model units [-1, 1], so the residual is 2 (y - A to_image(mu))
and mu_0 = A^+ (2 y - A 1). A nonlinear operator is fitted the same way (its loss by autograd through A) and
starts where the code's `H_pinv` of that degradation puts it, the operator's `A_dagger` (phase retrieval:
utils/degredations.py:895-898, HDR: :551-552, JPEG: :522-523, nonlinear blur: :875-876, A applied to y; all in
operators/); one without its own A_dagger is n/a.
The means are taken per image and summed over the batch (the code's means run over the batch too), so an
image's gradient does not depend on its batch; Adam is elementwise, hence per image. As in the code, sigma_y does not enter the loss (the paper's 1 / sigma_y^2 is absorbed in lambda).

Defaults: lambda = 0.25 and lr = 0.1 (_configs/algo/reddiff.yaml:8,12); 100 steps (README.md:88, whose
example run has lr 0.5; _configs/exp/default.yaml:9 has 50); weighting linear (reddiff.yaml:9); sigma_x0 = 0
(reddiff.yaml:13). Of the code's learning rates (0.1 in reddiff.yaml, 0.25 in sample_test.sh:113, 0.5 in
README.md:92) 0.1 gave the highest PSNR on fashion32, paired (16 images, same draws): 20.2 / 34.2 dB on
inpaint-box / deblur-gauss against 19.9 / 33.8 (0.25) and 19.5 / 33.3 (0.5); docs/solvers.md.
As in the code (reddiff.py:67, 126-129) the output is mu before the last time's Adam step, so that step
and its network call are skipped: `steps` times, steps - 1 Adam steps and network evaluations (returning
mu after it instead measured 0.04 / 0.23 dB lower on fashion32 at lr 0.5).

Deviations: the time grid is ipbench's, T-1 down to 0 (the code's runs from 990 for 100 steps); A^+ of
blur and SR is the SVD pseudo-inverse with singular values below 1e-3 of the largest dropped (the code
drops 1-D blur singular values below 3e-2), and the damped pseudo-inverse for operators without an SVD.

Preset `paper`: the repository's RED-diff commands per task: inpainting as the README's instance of the sampling
script (100 steps, lambda 0.25, lr 0.5, on its free-form masks in2_20ff; applied to box and random masks),
Gaussian deblurring and SR as sample_test.sh runs them (lambda 0.25 with lr 0.5, and the config's lambda
0.25, lr 0.1; their step count there, num_steps = 10, is a smoke test and is not taken); JPEG (its jpeg20:
quality 20), HDR, phase retrieval and nonlinear deblurring as its commands for them (lambda 0.25, lr 0.5). The batch script
(sample_batch.sh:5-8, 17, 35) runs SR and inpainting with 1000 steps and grad_term_weight 1.0 for every
algorithm: another setting, not this preset. None for motion blur or denoising.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel, timesteps, to_image, to_model
from ipbench.operators.base import is_linear
from ipbench.params import NON_NEGATIVE, POSITIVE, STEPS, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import reverse_grid
from ipbench.solvers.presets import PAPER, Preset, Setting, families
from ipbench.solvers.pigdm import RegularizedInverse, measurement_in_model_units

# w_t as a function of the inverse SNR sqrt(1 - ab_t) / sqrt(ab_t) (reddiff.py:92-105)
WEIGHTINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda s: s,
    "sqrt": math.sqrt,
    "square": lambda s: s * s,
    "log": lambda s: math.log1p(s),
    "trunc_linear": lambda s: min(s, 1.0),
    "power2over3": lambda s: s ** (2 / 3),
    "const": lambda s: 1.0,
}


PAPER_PRESET = Preset(
    repository="github.com/NVlabs/RED-diff at 66482f2",
    note="inpainting from the README's free-form-mask instance; motion blur, denoising, CT and MRI keep the defaults",
    operators=families({"weighting": Setting("linear", "_configs/algo/reddiff.yaml:9", "denoise_term_weight")}, {
        **{family: {"steps": Setting(100, "README.md:88", "num_steps of the README's inpainting instance "
                                     "(deg in2_20ff, free-form masks, :87)"),
                    "lam": Setting(0.25, "README.md:91", "lambda, passed as grad_term_weight (:94)"),
                    "lr": Setting(0.5, "README.md:92")}
           for family in ("inpaint-box", "inpaint-random")},
        "deblur-gauss": {"lam": Setting(0.25, "sample_test.sh:74", "grad_term_weight, deg deblur_gauss"),
                         "lr": Setting(0.5, "sample_test.sh:74")},
        "sr": {"lam": Setting(0.25, "_configs/algo/reddiff.yaml:8", "grad_term_weight; the SR command "
                              "(sample_test.sh:92, deg sr4) sets neither lambda nor lr"),
               "lr": Setting(0.1, "_configs/algo/reddiff.yaml:12")},
        **{family: {"lam": Setting(0.25, f"sample_test.sh:{line}", f"grad_term_weight, deg {deg}"),
                    "lr": Setting(0.5, f"sample_test.sh:{line}")}
           for family, line, deg in (("jpeg", 32, "jpeg20 (quality 20; the operator's default is 10)"),
                                     ("hdr", 39, "hdr"), ("phase-retrieval", 52, "phase_retrieval"),
                                     ("deblur-nonlinear", 64, "deblur_nl"))}}))


def has_own_inverse(op: Physics) -> bool:
    """Whether a nonlinear operator defines its A_dagger (deepinv's default is a gradient descent that needs
    A^T to start from): RED-diff's H_pinv for phase retrieval, HDR and JPEG (operators/phase.py, hdr.py, jpeg.py)."""
    return type(op).A_dagger is not Physics.A_dagger


@register_solver
@dataclass
class REDDiff(Solver):
    """Adam on mu against the measurement loss plus the stop-gradient denoising regulariser."""

    name = "reddiff"
    presets = {PAPER: PAPER_PRESET}
    aliases = ("red-diff",)
    steps: int = param(100, range=STEPS)  # diffusion times; steps - 1 Adam steps (README.md:88)
    lam: float = param(0.25, range=NON_NEGATIVE, tune=Tune(0.01, 10, log=True))  # lambda, `grad_term_weight` (reddiff.yaml:8)
    lr: float = param(0.1, range=POSITIVE, tune=Tune(0.01, 1, log=True))  # Adam step size in model units (reddiff.yaml:12)
    weighting: str = param("linear", choices=tuple(WEIGHTINGS))  # w_t of the inverse SNR (reddiff.yaml:9)
    obs_weight: float = param(1.0, range=NON_NEGATIVE)  # weight of the measurement term (reddiff.yaml:7)
    sigma_x0: float = param(0.0, range=NON_NEGATIVE)  # std of q around mu, model units (reddiff.yaml:13)

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        if is_linear(op) or has_own_inverse(op):
            return None
        return (f"needs A^+ y to start from: {type(op).__name__} is nonlinear and has no A_dagger of its own "
                "(RED-diff's H_pinv)")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        like = torch.zeros((y.shape[0], *model.image_shape), device=y.device)
        if is_linear(op):
            mu0 = RegularizedInverse(op, like)(measurement_in_model_units(op, y, like), 0.0)
        else:  # the operator's own starting point, as the code's H_pinv of a nonlinear degradation (reddiff.py:138)
            mu0 = to_model(op.A_dagger(y))
        mu = mu0.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([mu], lr=self.lr, betas=(0.9, 0.99), weight_decay=0.0)
        weight = WEIGHTINGS[self.weighting]
        *times, (t_last, _, _) = reverse_grid(model, model.num_timesteps - 1, self.steps)
        for t, ab, _ in times:
            spread = (self.sigma_x0 * randn_per_image(like.shape, generators, y.device)
                      if self.sigma_x0 > 0 else torch.zeros_like(like))
            noise = randn_per_image(like.shape, generators, y.device)
            with torch.no_grad():  # sg(.): no graph through the network
                x0 = mu + spread
                x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * noise
                eps_gap = model.eps(x_t, timesteps(t, x_t.shape[0], x_t.device)) - noise
            self.report_step(t, x_t, x0)
            w_t = self.lam * weight(((1 - ab) / ab) ** 0.5)
            with torch.enable_grad():
                x0 = mu + spread
                fit = (2 * (y - op.A(to_image(x0)))).flatten(1).square().mean(1) / 2  # per image, model units
                regulariser = (eps_gap * x0).flatten(1).mean(1)
                loss = (self.obs_weight * fit + w_t * regulariser).sum()
                adam.zero_grad()
                loss.backward()
            adam.step()
        # The last time's update would not reach the output (the code returns mu before it): no network call.
        self.report_step(t_last, mu.detach(), mu.detach())
        return to_image(mu.detach())
