"""What `bench train` minimises, per model: the network it builds, the config it is built from, and one step's loss.

- `eps`: the DDPM loss (Ho et al. 2020, Algorithm 1): || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2,
  t ~ U{0..T-1}.
- `flow`: conditional flow matching on the linear path (Lipman et al. 2023, eq. 23 with sigma_min = 0; rectified
  flow, Liu et al. 2023, eq. 1): || (eps - x0) - v_theta((1 - s) x0 + s eps, s) ||^2, s ~ U[0, 1), as the PnP-Flow
  code trains its OT-CFM models (uniform times).

- `autoencoder` (`bench train --autoencoder`): the KL autoencoder of a latent prior (models/kl_autoencoder.py),
  LDM's autoencoder loss (Rombach et al. 2022, appendix G) without its perceptual and adversarial terms,
  per image || x - D(z) ||_1 + kl_weight KL(q(z | x) || N(0, I)), z = mu(x) + sigma(x) eps, both sums over the
  image's pixels and latent values, in [-1, 1] model units as LDM's (so kl_weight = 1e-6 is LDM's balance),
  divided by the number of pixels so that the loss reads as a mean absolute error. L1 rather than L2, as in LDM's
  reconstruction term: L2's optimum under uncertainty is the mean, which blurs edges and textures the encoder
  cannot pin down; L1's is the median, sharper on Fashion-MNIST's flat backgrounds and hard garment edges. The
  decoded sample z (not the mean) is what teaches the decoder to be smooth in z; the KL term keeps sigma from
  collapsing to 0 and the latents near unit scale, weakly enough that they stay informative (LDM's "KL-reg.").

A class-conditional eps model (`bench train --conditional`) sees each image's label, replaced by the null label
at a rate (0.1 by default, after Ho & Salimans 2022, who found 0.1-0.2 best).

Every draw comes from the training loop's one generator, in a fixed order (images, times, noise; the autoencoder
draws no times and its noise is the posterior sample's), so a resumed run continues the same sequence; the eps
objective's order is the one the shipped fashion32 was trained with.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ipbench.models.base import ScoreModel, to_model
from ipbench.models.flow import FlowModel
from ipbench.models.kl_autoencoder import KLAutoencoder, KLAutoencoderConfig
from ipbench.models.kl_autoencoder import config_problem as autoencoder_problem
from ipbench.models.unet import UNetConfig, UNetScoreModel, config_problem as unet_problem
from ipbench.models.unet_flow import UNetFlowModel

Batch = tuple[Tensor, Tensor, Tensor]  # (image indices, times, noise)


def _eps_times(model: ScoreModel, batch: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, model.num_timesteps, (batch,), generator=generator)


def _flow_times(model: ScoreModel, batch: int, generator: torch.Generator) -> Tensor:
    return torch.rand((batch,), generator=generator)


def _eps_loss(model: ScoreModel, x0: Tensor, t: Tensor, eps: Tensor, labels: Tensor | None) -> Tensor:
    ab = model.alphas_cumprod.float()[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    predicted = model.eps(x_t, t) if labels is None else model.eps_given(x_t, t, labels)  # type: ignore[attr-defined]
    return (predicted.float() - eps).square().mean()


def _flow_loss(model: ScoreModel, x0: Tensor, s: Tensor, eps: Tensor, labels: Tensor | None) -> Tensor:
    if not isinstance(model, FlowModel):
        raise TypeError(f"the flow objective trains a FlowModel, not {type(model).__name__}")
    s_img = s.view(-1, 1, 1, 1)
    return (model.velocity((1 - s_img) * x0 + s_img * eps, s).float() - (eps - x0)).square().mean()


def _no_times(model: nn.Module, batch: int, generator: torch.Generator) -> Tensor:
    return torch.zeros((batch,), dtype=torch.long)  # draws nothing: the generator's sequence is the images' and noise's


def _autoencoder_loss(model: nn.Module, x: Tensor, t: Tensor, eps: Tensor, labels: Tensor | None) -> Tensor:
    """(||x - D(mu + sigma eps)||_1 + kl_weight KL(N(mu, sigma^2) || N(0, I))) / pixels, mean over the batch, in
    model units; KL = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling 2014, appendix B)."""
    if not isinstance(model, KLAutoencoder):
        raise TypeError(f"the autoencoder objective trains a KLAutoencoder, not {type(model).__name__}")
    mean, logvar = model.posterior(x)
    z = mean + (0.5 * logvar).exp() * eps
    reconstruction = (to_model(model.image_of(z)).float() - to_model(x)).abs().flatten(1).sum(1)
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).float().flatten(1).sum(1)
    return ((reconstruction + model.cfg.kl_weight * kl) / x[0].numel()).mean()


class Objective:
    """A training objective: the model class it trains and the config class that builds it (with its bounds
    check), how it draws times, the shape of its noise, its loss, whether it sees images in [-1, 1] model units
    (a score model's) or in [0, 1] (an autoencoder's), and the `bench train` option that chooses it."""

    def __init__(self, name: str, build: Callable[[Any], nn.Module],
                 times: Callable[[Any, int, torch.Generator], Tensor],
                 loss: Callable[[Any, Tensor, Tensor, Tensor, Tensor | None], Tensor], option: str,
                 config: type = UNetConfig, problem: Callable[[Any], tuple[str, str] | None] = unet_problem,
                 noise_shape: Callable[[Any], tuple[int, ...]] = lambda model: tuple(model.image_shape),
                 model_units: bool = True) -> None:
        self.name, self.build, self.times, self.loss, self.option = name, build, times, loss, option
        self.config, self.problem, self.noise_shape, self.model_units = config, problem, noise_shape, model_units


OBJECTIVES = {"eps": Objective("eps", UNetScoreModel, _eps_times, _eps_loss, "--objective eps"),
              "flow": Objective("flow", UNetFlowModel, _flow_times, _flow_loss, "--objective flow"),
              "autoencoder": Objective("autoencoder", KLAutoencoder, _no_times, _autoencoder_loss, "--autoencoder",
                                       config=KLAutoencoderConfig, problem=autoencoder_problem,
                                       noise_shape=lambda model: tuple(model.latent_shape), model_units=False)}


def draw_batch(objective: Objective, model: nn.Module, num_images: int, batch: int, shape: tuple[int, ...],
               generator: torch.Generator) -> Batch:
    """Image indices, times and noise of `shape` (the objective's `noise_shape`) for one step, in the order every
    objective draws them."""
    idx = torch.randint(0, num_images, (batch,), generator=generator)
    times = objective.times(model, batch, generator)
    return idx, times, torch.randn((batch, *shape), generator=generator)


def dropped_labels(labels: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    """The batch's labels with each replaced by the null label (-1) at `rate`, drawn after the batch, so that a
    conditional model learns its unconditional half too (classifier-free guidance, Ho & Salimans 2022, Alg. 1)."""
    drop = torch.rand(labels.shape, generator=generator) < rate
    return torch.where(drop, torch.full_like(labels, -1), labels)
