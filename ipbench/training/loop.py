"""Training a model with EMA weights and resumable checkpoints, by its objective (training/objectives.py): a UNet
prior, a VP-DDPM epsilon model (Ho et al. 2020, Algorithm 1, on images or on an autoencoder's latents) or a
flow-matching velocity model, or a latent prior's KL autoencoder;
AdamW with linear warm-up and gradient clipping, an exponential moving average of the weights with
warm-up (the EMA weights are the ones shipped), bf16 autocast on CUDA. All randomness comes from one seeded
generator whose state is checkpointed, so a resumed run continues the same sequence of batches.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ipbench.errors import UsageError, first_line
from ipbench.files import atomic_write
from ipbench.models.base import to_model
from ipbench.models.conditional import ConditionalUNetModel
from ipbench.models.kl_autoencoder import KLAutoencoderConfig
from ipbench.models.unet import UNetConfig
from ipbench.training.objectives import OBJECTIVES, draw_batch, dropped_labels

TRAIN_STATE_FORMAT = "ipbench.train-state/1"


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 500
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    seed: int = 0
    label_dropout: float = 0.1  # a conditional model's rate of null labels (classifier-free guidance)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with warm-up, min(decay, (1 + step) / (10 + step)): early averages forget the random
    initial weights quickly (a fixed 0.999 still holds 0.999^600 = 55% of them after 600 steps)."""
    return min(decay, (1 + step) / (10 + step))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)


def train(images: Tensor, out: Path, model_cfg: UNetConfig | KLAutoencoderConfig, cfg: TrainConfig,
          device: torch.device, progress: bool = True, log: Callable[[str], None] = print,
          objective: str = "eps", labels: Tensor | None = None,
          class_names: list[str] | None = None, latents: bool = False) -> tuple[nn.Module, list[float]]:
    """Train on `images` (N, C, H, W) in [0, 1] with `objective` (a key of OBJECTIVES; `model_cfg` of its config
    class); resume from out/train_state.pt if present. With `labels` (N,) and `class_names` it trains a
    class-conditional eps model (model_cfg.num_classes = len(class_names)), each label dropped at
    `cfg.label_dropout`. With `latents`, `images` are an autoencoder's latents, taken in their own units (no
    [0, 1] -> [-1, 1] conversion: models/latent.py).

    Returns the EMA model and the per-step losses of this call. Writes out/train_state.pt every
    `checkpoint_every` steps and at the end.
    """
    if labels is not None and (objective != "eps" or model_cfg.num_classes != len(class_names or [])
                               or labels.shape[0] != images.shape[0]):
        raise UsageError("a class-conditional model trains with --objective eps, one label per image and "
                         "num_classes equal to the number of class names")
    rule = OBJECTIVES[objective]
    if not isinstance(model_cfg, rule.config) or (latents and not rule.model_units):
        raise UsageError(f"objective {objective} trains from a {rule.config.__name__}"
                         f"{'' if rule.model_units else ' on images, not latents'}")
    problem = rule.problem(model_cfg)  # `bench train` names its option; a caller of train() gets the field
    if problem is not None:
        raise UsageError(f"model config {problem[0]}={getattr(model_cfg, problem[0])!r}: {problem[1]}")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pt"
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
        torch.manual_seed(cfg.seed)
        model = (rule.build(model_cfg) if labels is None
                 else ConditionalUNetModel(model_cfg, class_names)).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    step, elapsed, history = 0, 0.0, []  # history: mean loss of every 100 steps, kept in the state
    if state_path.exists():
        state = _read_state(state_path)
        if state.get("format") != TRAIN_STATE_FORMAT:
            raise UsageError(f"--out {out}: {state_path.name} is not an ipbench training state; use another --out")
        then_objective = state.get("objective", "eps")  # states from before objectives were all eps
        if then_objective != objective:
            then_option = OBJECTIVES[then_objective].option if then_objective in OBJECTIVES else then_objective
            raise UsageError(f"--out {out}: holds a training with {then_option}; use another --out, or "
                             f"{then_option} to resume")
        then = asdict(rule.config.from_dict(state.get("model_config", {})))  # fields added since at their defaults
        if then != asdict(model_cfg):
            now = asdict(model_cfg)
            changed = sorted(k for k, v in now.items() if then.get(k) != v and k != "extra")
            then_extra, now_extra = then.get("extra") or {}, now.get("extra") or {}  # e.g. the latents' autoencoder
            changed += sorted(f"extra.{k}" for k in {*then_extra, *now_extra} if then_extra.get(k) != now_extra.get(k))
            raise UsageError(f"--out {out}: holds the training state of another model (it differs in "
                             f"{', '.join(changed) or 'its configuration'}); use another --out, or the same "
                             "model options to resume")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, elapsed = int(state["step"]), float(state["elapsed_seconds"])
        history = list(state.get("loss_history", []))
        log(f"resuming from step {step} ({state_path})")

    def save() -> None:
        state = {"format": TRAIN_STATE_FORMAT, "objective": objective, "model_config": asdict(model_cfg),
                 "train_config": asdict(cfg),
                 "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                 "generator": generator.get_state(), "step": step, "elapsed_seconds": elapsed, "loss_history": history}
        atomic_write(state_path, lambda partial: torch.save(state, partial))

    data = to_model(images) if rule.model_units and not latents else images
    losses: list[float] = []
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="bench train", unit="step")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    while step < cfg.steps:
        start = time.perf_counter()
        idx, t, eps = draw_batch(rule, model, data.shape[0], cfg.batch_size, rule.noise_shape(model), generator)
        batch_labels = None if labels is None else dropped_labels(labels[idx], cfg.label_dropout, generator).to(device)
        with autocast:
            loss = rule.loss(model, data[idx].to(device), t.to(device), eps.to(device), batch_labels)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        ema_update(ema, model, ema_decay_at(step, cfg.ema_decay))
        step += 1
        elapsed += time.perf_counter() - start
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}")
        losses.append(value)
        if step % 100 == 0:
            history.append(sum(losses[-100:]) / len(losses[-100:]))
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save()
    bar.close()
    return ema.eval(), losses


def _read_state(path: Path) -> dict:
    """The resumable state in `path`; a one-line UsageError if it is not a readable training state."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or refused by weights_only
        raise UsageError(f"{path}: not a readable training state ({first_line(exc)}); delete it or use another "
                         "--out") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path}: not an ipbench training state; use another --out")
    return state
