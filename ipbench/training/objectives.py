"""What `bench train` minimises, per prior family: the network it builds and one step's loss on a batch.

- `eps`: the DDPM loss (Ho et al. 2020, Algorithm 1): || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2,
  t ~ U{0..T-1}.
- `flow`: conditional flow matching on the linear path (Lipman et al. 2023, eq. 23 with sigma_min = 0; rectified
  flow, Liu et al. 2023, eq. 1): || (eps - x0) - v_theta((1 - s) x0 + s eps, s) ||^2, s ~ U[0, 1), as the PnP-Flow
  code trains its OT-CFM models (uniform times).

A class-conditional eps model (`bench train --conditional`) sees each image's label, replaced by the null label
at a rate (0.1 by default, after Ho & Salimans 2022, who found 0.1-0.2 best).

Every draw comes from the training loop's one generator, in a fixed order (images, times, noise), so a resumed
run continues the same sequence; the eps objective's order is the one the shipped fashion32 was trained with.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ipbench.models.base import ScoreModel
from ipbench.models.flow import FlowModel
from ipbench.models.unet import UNetConfig, UNetScoreModel
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


class Objective:
    """A training objective: the model class it trains, how it draws times, its loss."""

    def __init__(self, name: str, build: Callable[[UNetConfig], ScoreModel],
                 times: Callable[[ScoreModel, int, torch.Generator], Tensor],
                 loss: Callable[[ScoreModel, Tensor, Tensor, Tensor, Tensor | None], Tensor]) -> None:
        self.name, self.build, self.times, self.loss = name, build, times, loss


OBJECTIVES = {"eps": Objective("eps", UNetScoreModel, _eps_times, _eps_loss),
              "flow": Objective("flow", UNetFlowModel, _flow_times, _flow_loss)}


def draw_batch(objective: Objective, model: ScoreModel, num_images: int, batch: int, shape: tuple[int, ...],
               generator: torch.Generator) -> Batch:
    """Image indices, times and noise for one step, in the order every objective draws them."""
    idx = torch.randint(0, num_images, (batch,), generator=generator)
    times = objective.times(model, batch, generator)
    return idx, times, torch.randn((batch, *shape), generator=generator)


def dropped_labels(labels: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    """The batch's labels with each replaced by the null label (-1) at `rate`, drawn after the batch, so that a
    conditional model learns its unconditional half too (classifier-free guidance, Ho & Salimans 2022, Alg. 1)."""
    drop = torch.rand(labels.shape, generator=generator) < rate
    return torch.where(drop, torch.full_like(labels, -1), labels)
