"""Posterior Sampling with Latent Diffusion (Rout, Raoof, Daras, Caramanis, Dimakis & Shakkottai 2023, NeurIPS,
"Solving Linear Inverse Problems Provably via Posterior Sampling with Latent Diffusion Models", Algorithm 2), as the
official code runs it (github.com/LituRout/PSLD at d734647, stable-diffusion/ldm/models/diffusion/psld.py:188-338,
driven by stable-diffusion/scripts/inverse.py).

One step on the latent z_t of a `LatentPrior` (D = its decoder, E = its encoder, images in [0, 1]):

1. z0_hat = (z_t - sqrt(1 - ab_t) eps(z_t, t)) / sqrt(ab_t), Tweedie's estimate from one evaluation of the latent
   network (Algorithm 2's z0_hat; psld.py:231, 301);
2. z'_{t-1} = the DDIM step from z_t and z0_hat with `eta` (psld.py:239-244, 309-314; eta = 1 is the DDPM step
   Algorithm 2 writes, eta = 0 the code's default);
3. the measurement and gluing terms, one gradient through both (psld.py:248-265, 318-335):

       z_{t-1} = z'_{t-1} - omega_t grad_{z_t} ||y - A(D(z0_hat))||^2
                          - gamma grad_{z_t} ||z0_hat - E(A^T y + (I - A^T A) D(z0_hat))||.

   The glued image A^T y + (I - A^T A) D(z0_hat) keeps the decoded estimate where A does not see it and puts the
   measurement where it does; its encoding should be z0_hat again. The gradient runs through E, D and the latent
   network (nothing is detached, as in the code); A^T y + (I - A^T A) x is computed as x - A^T (A x - y).

`normalize` picks omega_t, per image, as `latent-dps` (solvers/dps.py) picks zeta_t:
  residual  omega / ||y - A(D(z0_hat))||: the code's rule. The code steps by omega grad ||y' - A(D'(z0_hat))||, a
            plain norm with no normalisation (psld.py:251, 263-265), on [-1, 1] images (inverse.py:416; its decoder's
            output D' = 2 D - 1), where the residual is twice the [0, 1] one; omega grad ||2 r|| =
            (omega / ||r||) grad ||r||^2, so `omega` here is the code's `omega`.
  grad      omega / ||grad_{z_t} ||y - A(D(z0_hat))||^2||: a step of norm omega in latent units (latent-dps's default).
The gluing term is the code's under both rules: gamma times the gradient of the plain norm. It does not depend on the
image scale: with D' = 2 D - 1, y' = 2 y - A 1 and a linear A, the code's glued image is 2 g - 1 for ipbench's g, and
its encoder reads [-1, 1] images, so E'(glued') = E(glued) in the same latent units.

With gamma = 0 the step is `latent-dps`'s under the same rule, omega = zeta and eta, under Gaussian noise
(tests/test_psld.py checks it to float precision; gamma = 0 calls no encoder). Cost per step: one latent network
evaluation with a backward, one decode, and with gamma > 0 one encode, both with a backward (under normalize=grad and
gamma > 0, two backwards: the measurement gradient alone sets the step); the answer is D(z_0), one decode more. So
a row's `decodes` is steps + 1 and `encodes` is steps per image.

Defaults, from the code at d734647:
- gamma = 0.1: inverse.py:265 (`--gamma`, the gluing weight); no run script of its Stable Diffusion tasks but box
  inpainting (run/inverse_bip.sh:7, 0.01) sets another, and every FFHQ latent-diffusion script uses 0.1
  (run/inverse_*_ldm.sh:7).
- omega = 1.0 with normalize = residual: inverse.py:271 (`--omega`, the measurement weight) and the code's plain norm;
  the scripts set 0.1 for box inpainting (run/inverse_bip.sh:8) and for the latent-diffusion tasks
  (run/inverse_*_ldm.sh:8), 0.9 for their super-resolution (run/inverse_sr_ldm.sh:8).
- eta = 0: inverse.py:156 (`--ddim_eta`; no script sets it), so the code samples with deterministic DDIM steps.
- steps = 100 to keep CPU runs short; the code runs 1000 DDIM steps (inverse.py:130, no script sets another).
- omega and gamma declare `bench tune` ranges (log scale), as dps's zeta does.

Deviations from the code, each written down here:
- A^T is the operator's adjoint. The code's `transpose` is the adjoint only for masks and denoising (identity, with
  forward x * mask: guided_diffusion/measurements.py:63-64, 142-149, so A^T A is the mask projection); for Gaussian
  and motion blur it is the identity (:107-108, 130-131), making its glued image y + x - A x, and for
  super-resolution nearest-neighbour upsampling after a bicubic downsampling (:77-84). On inpainting the code's
  identity `transpose` also keeps y's noise in the unobserved pixels of the glued image (its y is noised everywhere,
  inverse.py:426-427); the adjoint drops it.
- No fresh noise in the measurement term: the code noises its prediction, noiser(A(D(z0_hat))) (psld.py:250, 320,
  the task's Gaussian sigma, measurements.py:242-243); Algorithm 2 has no such noise.
- Norms per image (the code takes them over its batch, psld.py:251, 261; its batch is one image, inverse.py:192), so
  a result does not depend on the batch it was solved in.
- E is the autoencoder's `encode` (a KL encoder's mean, models/latent.py); the code's Stable Diffusion encoding draws
  a sample of the encoder's posterior (ldm/models/diffusion/ddpm.py:542-549).
- ipbench's shared time grid (solvers/diffusion.py): the network is evaluated at the time whose alpha_bar the step
  uses, and the last step lands on alpha_bar = 1. The code's grid evaluates the network one time later than its
  alpha_bar at 1000 steps (ldm/modules/diffusionmodules/util.py:57, 66-68) and ends at alpha_bar_0 (:71).
- Float32 throughout; the code runs under autocast (inverse.py:235). No text prompt or classifier-free guidance (the
  code's prompt is empty, inverse.py:107, so its guidance compares an empty prompt with itself).
- The code's box-inpainting output pastes the ground truth's known pixels over the sample before saving
  (inverse.py:506-514); ipbench returns D(z_0). (Clamping to [0, 1], inverse.py:495, is the runner's.)
- Noise: the code has no rule but the Gaussian norm, and PSLD takes it under every noise model; unlike latent-dps
  under normalize=residual, no Poisson factor (solvers/dps.py), so the gamma = 0 identity is for Gaussian noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.latent import Autoencoder, autoencoder_of
from ipbench.operators.base import linear_problem
from ipbench.params import NON_NEGATIVE, STEPS, UNIT, Tune, param
from ipbench.solvers.base import Solver, per_image_norm, randn_per_image, register_solver
from ipbench.solvers.diffusion import ddim_step, predict_x0, reverse_grid

RULES = ("residual", "grad")  # residual: the code's plain-norm step; grad: a step of norm omega (latent-dps's default)


@register_solver
@dataclass
class PSLD(Solver):
    """PSLD: latent DPS through the decoder plus a gluing term through the encoder; linear operators."""

    name = "psld"
    prior: ClassVar[str] = "latent"
    steps: int = param(100, range=STEPS)  # strided reverse steps from T-1 (the code: 1000, inverse.py:130)
    omega: float = param(1.0, range=NON_NEGATIVE, tune=Tune(0.01, 10, log=True))  # measurement (inverse.py:271)
    gamma: float = param(0.1, range=NON_NEGATIVE, tune=Tune(0.001, 10, log=True))  # gluing (inverse.py:265)
    normalize: str = param("residual", choices=RULES)  # how omega becomes a step (module docstring)
    eta: float = param(0.0, range=UNIT)  # 0 = the code's DDIM (inverse.py:156), 1 = Algorithm 2's DDPM step

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        return linear_problem(op, "A^T in the gluing term's A^T y + (I - A^T A) D(z0_hat)")

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        autoencoder = autoencoder_of(model)
        if autoencoder is None:  # the runner skips pixel priors (prior_problem); a direct caller gets this
            raise ValueError("psld needs a latent prior (a model with an autoencoder)")
        z = randn_per_image((y.shape[0], *model.image_shape), generators, y.device)  # z_T ~ N(0, I)
        for t, ab, ab_prev in reverse_grid(model, model.num_timesteps - 1, self.steps):
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                z0 = predict_x0(model, z, t, ab, clip=False)  # step 1: the one network evaluation
                image = autoencoder.decode(z0)
                residual = op.A(image) - y
                misfit = residual.flatten(1).square().sum(1)  # ||y - A(D(z0_hat))||^2 per image
                glue = self._gluing(autoencoder, op, image, residual, z0) if self.gamma > 0 else None
                step = self._step(z, residual, misfit, glue)
            self.report_step(t, z, z0)
            z = ddim_step(z.detach(), z0.detach(), ab, ab_prev, self.eta, generators) - step  # steps 2 and 3
        with torch.no_grad():
            return autoencoder.decode(z.detach())

    @staticmethod
    def _gluing(autoencoder: Autoencoder, op: Physics, image: Tensor, residual: Tensor, z0: Tensor) -> Tensor:
        """||z0_hat - E(A^T y + (I - A^T A) D(z0_hat))|| per image; the glued image is D - A^T (A D - y)."""
        glued = image - op.A_adjoint(residual)
        return (autoencoder.encode(glued) - z0).flatten(1).norm(dim=1)

    def _step(self, z: Tensor, residual: Tensor, misfit: Tensor, glue: Tensor | None) -> Tensor:
        """omega_t grad ||y - A(D(z0_hat))||^2 + gamma grad ||gluing residual||, per image (module docstring)."""
        if self.normalize == "residual":  # one backward through both terms, as the code takes (psld.py:263-264)
            weight = self.omega / per_image_norm(residual.detach()).clamp_min(1e-12)
            loss = (weight.flatten() * misfit).sum()
            if glue is not None:
                loss = loss + self.gamma * glue.sum()
            (grad,) = torch.autograd.grad(loss, z)
            return grad
        (grad,) = torch.autograd.grad(misfit.sum(), z, retain_graph=glue is not None)
        step = self.omega / per_image_norm(grad).clamp_min(1e-12) * grad
        if glue is not None:  # the measurement gradient's norm sets its step, so the gluing one is taken apart
            (glue_grad,) = torch.autograd.grad(glue.sum(), z)
            step = step + self.gamma * glue_grad
        return step
