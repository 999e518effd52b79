"""The class a conditional prior is given in a run (`--condition`, `--guidance`; a suite's `condition`, `guidance`).

- `true`: each image's own class, read from its name (`000-ankle-boot`: data/labels.py);
- `wrong`: a misspecified prior, another class than the image's, drawn uniformly from the others per (seed, image),
  the same for every solver and operator, so that the solvers of a run are paired on it;
- `none`: the unconditional half of the model (the null label), whatever the guidance.

The guidance scale w is classifier-free guidance's (models/conditional.py). Rows record `model.condition`,
`model.guidance` and each image's `model.class`; a run without `--condition` records none of them and its
identity is what it was before conditional priors existed.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ipbench.data.labels import class_in_name
from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.conditional import ClassConditional
from ipbench.seeding import seed_for

CONDITIONS = ("true", "wrong", "none")


def check_condition(condition: str | None, guidance: float | None, where: str = "--condition") -> None:
    """A known condition and a finite guidance >= 0, and no guidance without a condition."""
    if condition is None:
        if guidance is not None:
            raise UsageError("--guidance: needs --condition true|wrong|none (a class-conditional model's class)")
        return
    if condition not in CONDITIONS:
        raise UsageError(f"{where} {condition!r}: must be one of {', '.join(CONDITIONS)}")
    if guidance is not None and (not isinstance(guidance, (int, float)) or isinstance(guidance, bool)
                                 or not math.isfinite(guidance) or guidance < 0):
        raise UsageError(f"--guidance {guidance!r}: must be a finite number >= 0")


def conditional_model(model: ScoreModel, model_name: str, condition: str | None = None,
                      guidance: float = 1.0) -> ClassConditional:
    """The class-conditional model a `--condition` run needs, able to run `condition` at `guidance` (a model
    without an unconditional half runs a class at w = 1 only), or a one-line error naming the model."""
    if not isinstance(model, ClassConditional):
        raise UsageError(f"--condition: model {model_name} is not class-conditional (it takes no class); "
                         "drop --condition, or use a conditional model")
    problem = None if condition is None else model.condition_problem(condition != "none", guidance)
    if problem is not None:
        raise UsageError(f"--condition {condition}: model {model_name} {problem}")
    return model


def true_classes(model: ClassConditional, ids: Sequence[str]) -> list[int]:
    """Each image's class index from its name; a one-line error for the first image that names none."""
    names = [class_in_name(image_id, model.class_names) for image_id in ids]
    missing = next((i for i, n in zip(ids, names) if n is None), None)
    if missing is not None:
        raise UsageError(f"--condition: image {missing!r} names none of the model's classes "
                         f"({', '.join(model.class_names)}); name images <index>-<class>")
    return [model.class_names.index(n) for n in names]  # type: ignore[arg-type]


def wrong_class(true: int, classes: int, seed: int, image_id: str) -> int:
    """A class other than `true`, uniform over the other `classes - 1`, drawn from (seed, image id)."""
    if classes < 2:
        raise UsageError("--condition wrong: the model has one class, so there is no wrong one")
    generator = torch.Generator().manual_seed(seed_for("wrong-class", seed, image_id))
    return (true + 1 + int(torch.randint(0, classes - 1, (1,), generator=generator))) % classes


def batch_classes(condition: str, model: ClassConditional, seed: int, ids: Sequence[str]) -> list[int] | None:
    """The label of each image of a batch under `condition` (None: the unconditional half)."""
    if condition == "none":
        return None
    true = true_classes(model, ids)
    if condition == "true":
        return true
    return [wrong_class(c, len(model.class_names), seed, i) for c, i in zip(true, ids)]

