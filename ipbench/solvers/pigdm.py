"""PiGDM: pseudoinverse-guided diffusion (Song, Vahdat, Mardani, Kautz 2023, ICLR).

PiGDM approximates p(x0 | x_t) by N(x0_hat, r_t^2 I) and thereby the likelihood score

    g = (d x0_hat / d x_t)^T A^T (r_t^2 A A^T + sigma^2 I)^-1 (y - A x0_hat),

a vector-Jacobian product through the network (one forward and one backward pass per step). r_t^2 is the
posterior variance of unit-variance data, sigma_t^2 / (1 + sigma_t^2) in the VE form, which on the VP
schedule is 1 - ab_t. Each DDIM step (eta as below) adds the guidance:

    x_s = DDIM(x_t, x0_hat) + scale sqrt(ab_s) sqrt(ab_t) h,
    h = r_t^2 g = (d x0_hat / d x_t)^T A^T (A A^T + sigma^2 / r_t^2 I)^-1 (y - A x0_hat).

This is the NVlabs/RED-diff implementation (algos/pgdm.py, by the paper's authors): it
adds (d x0_hat / d x_t)^T A^+ (y - A x0_hat) with the coefficient sqrt(ab_s) sqrt(ab_t) grad_term_weight
(pgdm.py:52-73 and :96, `awd: True`, pgdm.yaml:5). That vector is r_t^2 g at sigma = 0 (A^T (A A^T)^-1 =
A^+), so h is the code's guidance extended to noisy measurements as the paper's g prescribes; at sigma_y = 0
it is the code's exactly (the code has no noisy form: it uses A^+ whatever sigma_y is).

Units: x_t, x0_hat and h are in model units [-1, 1]; the measurement in model units is 2 y - A 1, so the
residual is 2 (y - A to_image(x0_hat)) and sigma = 2 sigma_y; r_t^2 = 1 - ab_t is in model units too.

(A A^T + c I)^-1: per singular value s of A it is s / (s^2 + c), closed form through
`operators.svd.operator_svd` (masks, identity, separable blur and SR); other operators (motion blur) are
solved per image by conjugate gradients in measurement space. At c = 0 (noiseless) the closed form is A^+
with singular values below PINV_RCOND of the largest taken as 0, and the CG path uses c = CG_DAMPING.

Defaults, from NVlabs/RED-diff at 66482f2: scale = 1 (`grad_term_weight`, _configs/algo/pgdm.yaml:7);
eta = 1 (every PiGDM run of sample_test.sh and sample_batch.sh:5; pgdm.yaml:9 says 0, which no script
uses); 100 steps (sample_test.sh:21,45); no clipping of x0_hat (pgdm.py:51 uses it unclipped); start
x_T = sqrt(ab_T) A^+ y + sqrt(1 - ab_T) z (pgdm.py:103-112).

Deviations: the time grid is ipbench's, T-1 down to 0 (the code's runs from 990 for 100 steps); the noisy
guidance above (the code has none); the thresholds of the noiseless A^+ (the code zeroes 1-D blur singular
values below 3e-2, utils/degredations.py:455-456).

Preset `paper`: NVlabs/RED-diff's PiGDM commands (sample_test.sh): eta 1 and the config's scale 1 for
inpainting, Gaussian deblurring and SR, 100 steps where the command sets them (inpainting); it equals the
defaults. None for motion blur or denoising.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.physics import LinearPhysics, Physics
from torch import Tensor

from ipbench.linalg import conjugate_gradient
from ipbench.models.base import ScoreModel, to_image
from ipbench.operators.base import linear_problem, noise_level
from ipbench.operators.svd import OperatorSVD, operator_svd
from ipbench.params import NON_NEGATIVE, STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, reverse_grid
from ipbench.solvers.presets import PAPER, Preset, Setting, families

PINV_RCOND = 1e-3  # noiseless A^+: singular values below this fraction of the largest count as 0
CG_DAMPING = 1e-3  # smallest c of the CG path (its c = 0 is pseudo_inverse's damped A^+ at its default)
CG_TOL, CG_MAX_ITER = 1e-5, 500


class RegularizedInverse:
    """u = A^T (A A^T + c I)^-1 r for one batch's operator (= A^+ r at c = 0), per image.

    Through the operator's SVD when it has one (computed once here), else by CG in measurement space.
    """

    def __init__(self, op: LinearPhysics, like: Tensor) -> None:
        self.op = op
        self.svd: OperatorSVD | None = operator_svd(op, like)

    def __call__(self, r: Tensor, c: float) -> Tensor:
        if self.svd is not None:
            s = self.svd.singular
            if c > 0:
                gain = s / (s.square() + c)
            else:  # A^+: 1/s on the numerically non-zero singular values
                keep = s > PINV_RCOND * s.flatten(1).amax(1).view(-1, *[1] * (s.ndim - 1))
                gain = torch.where(keep, 1 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))
            return self.svd.V(gain * self.svd.Ut(r))
        return self.solve_cg(r, c)

    def solve_cg(self, r: Tensor, c: float) -> Tensor:
        """The same by conjugate gradients on (A A^T + c I) v = r, per-image stopping."""
        damping = max(c, CG_DAMPING)
        normal = lambda v: self.op.A(self.op.A_adjoint(v)) + damping * v  # noqa: E731
        return self.op.A_adjoint(conjugate_gradient(normal, r, tol=CG_TOL, max_iter=CG_MAX_ITER, strict=False))


def measurement_in_model_units(op: LinearPhysics, y: Tensor, like: Tensor) -> Tensor:
    """y as the measurement of the model-units image: A (2 x - 1) = 2 y - A 1 (A is linear)."""
    return 2 * y - op.A(torch.ones_like(like))


_PIGDM_COMMON = {"scale": Setting(1.0, "_configs/algo/pgdm.yaml:7", "grad_term_weight")}
PAPER_PRESET = Preset(
    repository="github.com/NVlabs/RED-diff at 66482f2",
    note="the deblurring and SR commands take num_steps = 10, a smoke test: their step count is not taken",
    operators=families(_PIGDM_COMMON, {
        **{family: {"eta": Setting(1.0, "sample_test.sh:21", "deg in2_20ff (free-form masks)"),
                    "steps": Setting(100, "sample_test.sh:21", "exp.num_steps=100")}
           for family in ("inpaint-box", "inpaint-random")},
        "deblur-gauss": {"eta": Setting(1.0, "sample_test.sh:77", "deg deblur_gauss")},
        "sr": {"eta": Setting(1.0, "sample_test.sh:95", "deg sr4")}}))


@register_solver
@dataclass
class PiGDM(Solver):
    """DDIM with pseudoinverse guidance through the network's Jacobian."""

    name = "pigdm"
    presets = {PAPER: PAPER_PRESET}
    aliases = ("pgdm",)
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1 (sample_test.sh:21,45)
    eta: float = param(1.0, range=UNIT)  # the code's PiGDM runs use 1 (sample_batch.sh:5)
    scale: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.05, 20, log=True))  # grad_term_weight (pgdm.yaml:7)
    clip: bool = False  # pgdm.py uses x0_hat unclipped

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "A^T (A A^T + c I)^-1 in its guidance")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        like = torch.zeros((y.shape[0], *model.image_shape), device=y.device)
        inverse = RegularizedInverse(op, like)
        sigma2 = (2 * noise_level(op)) ** 2  # model units
        grid = reverse_grid(model, model.num_timesteps - 1, self.steps)
        ab_start = grid[0][1]
        noise = randn_per_image(like.shape, generators, y.device)
        x = ab_start**0.5 * inverse(measurement_in_model_units(op, y, like), 0.0) + (1 - ab_start) ** 0.5 * noise
        for t, ab, ab_prev in grid:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                x0 = predict_x0(model, x, t, ab, self.clip)
                with torch.no_grad():
                    residual = 2 * (y - op.A(to_image(x0)))  # model units
                    u = inverse(residual, sigma2 / (1 - ab))  # A^T (A A^T + sigma^2 / r_t^2 I)^-1 residual
                (h,) = torch.autograd.grad(x0, x, grad_outputs=u)  # (d x0_hat / d x_t)^T u; images independent
            self.report_step(t, x, x0)
            x = ddim_step(x.detach(), x0.detach(), ab, ab_prev, self.eta, generators)
            x = x + self.scale * (ab_prev * ab) ** 0.5 * h
        return to_image(x)
