"""Class-conditional priors with classifier-free guidance (Ho & Salimans 2022), behind the one `eps(x_t, t)`.

A conditional network predicts eps_c = eps(x_t, t, c) for a class c and eps_u = eps(x_t, t, null) with the label
dropped (it was trained with the label replaced by the null one at a rate, 0.1 for `fashion32-cond`). The guided
prediction is the seeds' formula

    eps = eps_u + w (eps_c - eps_u),

w = 0 the unconditional model, w = 1 the conditional one, w > 1 guidance beyond it. Solvers keep calling
`model.eps(x_t, t)`: the condition of a batch (one label per image, -1 for none) and the scale are set around the
solve with `conditioned(model, labels, w)`, so one solver runs on conditional and unconditional priors alike.
At w in {0, 1}, or with no labels, one network evaluation serves; otherwise the two halves go through the network
as one batch of 2N.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.unet import UNet, UNetConfig, UNetWeights

NULL_LABEL = -1


def guided_eps(eps_u: Tensor, eps_c: Tensor, scale: float) -> Tensor:
    """eps_u + scale (eps_c - eps_u)."""
    return eps_u + scale * (eps_c - eps_u)


class ClassConditional:
    """What a class-conditional prior adds to `ScoreModel`: its `class_names`, `eps_given(x_t, t, labels)`, and the
    condition `conditioned` sets (`labels`, `guidance`), which its `eps` applies. `null_label`: whether the network
    has an unconditional half (a null label it was trained with), which classifier-free guidance needs; one
    without (guided-diffusion's conditional ADM) runs at w = 1 with a class only."""

    class_names: list[str]
    labels: Tensor | None = None  # the current batch's labels (N,), NULL_LABEL for none
    guidance: float = 1.0
    null_label: bool = True

    def eps_given(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def condition_problem(self, has_labels: bool, scale: float) -> str | None:
        """Why this model cannot run a condition (labels or none, guidance scale), or None."""
        if self.null_label:
            return None
        if not has_labels:
            return "has no unconditional half (no null label): it needs a class (--condition true or wrong)"
        if scale != 1.0:
            return (f"guidance {scale:g}: classifier-free guidance needs an unconditional half, which this model "
                    "does not have; valid: 1 (the conditional model)")
        return None

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        labels, scale = self.labels, self.guidance
        problem = self.condition_problem(labels is not None, scale)
        if problem is not None:
            raise UsageError(f"{type(self).__name__} {problem}")
        if labels is None or scale == 0.0:
            return self.eps_given(x_t, t, None)
        labels = labels.to(x_t.device)
        if scale == 1.0:
            return self.eps_given(x_t, t, labels)
        both = self.eps_given(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([torch.full_like(labels, NULL_LABEL),
                                                                                    labels]))
        eps_u, eps_c = both.chunk(2)
        return guided_eps(eps_u, eps_c, scale)

    def label_of(self, name: str) -> int:
        """The index of a class name; a one-line error listing the names."""
        if name not in self.class_names:
            shown = ", ".join(self.class_names[:20]) + (", ..." if len(self.class_names) > 20 else "")
            raise UsageError(f"class {name!r}: not one of this model's classes ({shown})")
        return self.class_names.index(name)


class ConditionalUNetModel(ClassConditional, UNetWeights, ScoreModel):
    """A class-conditional UNet eps-model (UNetConfig.num_classes > 0) with its class names and a null label;
    `eps` applies the condition set by `conditioned`, and is the unconditional prediction when none is set."""

    def __init__(self, cfg: UNetConfig, class_names: list[str] | None = None) -> None:
        if cfg.num_classes < 1:
            raise UsageError("a conditional UNet needs num_classes >= 1")
        super().__init__(linear_alphas_cumprod(cfg.num_timesteps, cfg.beta_start, cfg.beta_end), cfg.image_shape)
        self.cfg = cfg
        self.net = UNet(cfg)
        self.class_names = _checked_names(class_names, cfg.num_classes)
        self.labels: Tensor | None = None
        self.guidance = 1.0

    def eps_given(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """eps(x_t, t, labels): one label per image, NULL_LABEL (or None for all) unconditional."""
        return self.net(x_t, t, labels)

    def config(self) -> dict:
        return {**super().config(), "class_names": self.class_names}

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, Tensor]) -> "ConditionalUNetModel":
        config = dict(config)
        names = config.pop("class_names", None)
        model = super().from_config(config, state_dict)
        model.class_names = _checked_names(names, model.cfg.num_classes)
        return model


def _checked_names(names: list[str] | None, num_classes: int) -> list[str]:
    """One distinct name per class (default: the indices), or a one-line error."""
    names = [str(i) for i in range(num_classes)] if names is None else [str(n) for n in names]
    if len(names) != num_classes or len(set(names)) != len(names):
        raise UsageError(f"class_names: {len(names)} names for num_classes={num_classes}; give one distinct "
                         "name per class")
    return names


@contextmanager
def conditioned(model: ScoreModel, labels: Tensor | None, scale: float) -> Iterator[None]:
    """Within the block, `model.eps` is guided toward `labels` (N,) with scale `scale`; an unconditional model
    refuses labels. The previous condition is restored after. Wrappers that hold the model as `inner` (the run's
    NFE counter and speed switches) are looked through."""
    model = unwrapped(model)
    if not isinstance(model, ClassConditional):
        if labels is not None:
            raise UsageError(f"{type(model).__name__} is not class-conditional: it takes no class")
        yield
        return
    before = model.labels, model.guidance
    model.labels, model.guidance = labels, float(scale)
    try:
        yield
    finally:
        model.labels, model.guidance = before


def unwrapped(model: ScoreModel) -> ScoreModel:
    """The model inside wrappers that hold it as `inner` (the run's NFE counter and speed switches)."""
    while isinstance(getattr(model, "inner", None), ScoreModel):
        model = model.inner  # type: ignore[assignment]
    return model
