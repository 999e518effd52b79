"""What `bench train` and `bench sample` read and write around the training loop: data, weights, samples, log."""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from ipbench.data import load_images, save_png
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images, idx_labels
from ipbench.data.labels import FASHION_MNIST_CLASSES, class_in_name
from ipbench.device import describe_device
from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.models.base import ScoreModel, to_image
from ipbench.models.registry import save_checkpoint
from ipbench.models.conditional import ConditionalUNetModel, conditioned
from ipbench.models.flow import FlowModel
from ipbench.models.latent import LatentPrior, autoencoder_of
from ipbench.seeding import seed_for
from ipbench.solvers.diffusion import sample_prior
from ipbench.solvers.flow_steps import sample_flow
from ipbench.training.loop import TrainConfig

FASHION_MNIST_TRAIN = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"


def load_training_images(data: str, shape: tuple[int, int, int]) -> tuple[Tensor, list[str] | None]:
    """(N, C, H, W) in [0, 1]: `fashion-mnist` (the 60,000 training images), an IDX file or a folder; and the
    images' ids for a folder (None for IDX files)."""
    if data == "fashion-mnist":
        if not FASHION_MNIST_TRAIN.exists():
            raise UsageError(f"--data fashion-mnist: {FASHION_MNIST_TRAIN} not found; "
                             "install it with `apt-get install dataset-fashion-mnist`")
        path = FASHION_MNIST_TRAIN
    else:
        path = Path(data)
    if path.is_file():
        images = idx_images(path, pad_to=shape[-1])
        if images.shape[1:] != shape:
            raise UsageError(f"--data {data}: IDX images are {tuple(images.shape[1:])}, the model wants {shape}")
        return images, None
    loaded = load_images(str(path), shape)
    return loaded.images, loaded.ids


FASHION_MNIST_TRAIN_LABELS = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"


def load_training_labels(data: str, ids: list[str] | None, num_images: int) -> tuple[Tensor, list[str]]:
    """(N,) class labels of the training images and the class names: Fashion-MNIST's label file (beside an IDX
    image file, `...-labels-idx1-...`), or for a folder the class each image's name carries
    (`<index>-<class>.png`, data/labels.py; `ids` are the loaded images' ids). A one-line error when an image
    has none."""
    if ids is None:
        path = FASHION_MNIST_TRAIN_LABELS if data == "fashion-mnist" else Path(data).with_name(
            Path(data).name.replace("images-idx3", "labels-idx1"))
        if not path.exists():
            raise UsageError(f"--conditional: the labels of --data {data} are read from {path}, which is missing")
        labels = torch.from_numpy(idx_labels(path))
        if labels.shape[0] != num_images:
            raise UsageError(f"--conditional: {path} holds {labels.shape[0]} labels for {num_images} images")
        names = list(FASHION_MNIST_CLASSES) if data == "fashion-mnist" else [str(i) for i in range(int(labels.max()) + 1)]
        return labels, names
    found = sorted({i.partition("-")[2] for i in ids if "-" in i})
    classes = [class_in_name(i, found) for i in ids]
    missing = next((i for i, c in zip(ids, classes) if c is None), None)
    if missing is not None:
        raise UsageError(f"--conditional: image {missing!r} of --data {data} names no class; name the files "
                         "<index>-<class>.png")
    return torch.tensor([found.index(c) for c in classes]), found


def draw_samples(model: ScoreModel, n: int, steps: int, seed: int, eta: float = 1.0, labels: list[int] | None = None,
                 guidance: float = 1.0, batch_size: int | None = None) -> Tensor:
    """(n, C, H, W) prior samples in [0, 1] on the CPU: the reverse process, `steps` strided steps (for a flow
    model its own sampler: the flow ODE in `steps` Euler steps; for a latent prior, over latents, unclipped since
    latents have no [-1, 1] range, then decoded); for a conditional model, sample i of class
    `labels[i]` with guidance scale `guidance` (models/conditional.py), or unconditional with `labels` None.
    Sample i starts from its own generator (seed_for("sample", seed, i)), so it does not depend on `batch_size`
    (at most that many samples go through the network at once; default all n)."""
    device = model.alphas_cumprod.device
    autoencoder = autoencoder_of(model)
    batch_size = batch_size or n
    out = []
    for start in range(0, n, batch_size):
        index = range(start, min(n, start + batch_size))
        generators = [torch.Generator(device=device).manual_seed(seed_for("sample", seed, i)) for i in index]
        condition = None if labels is None else torch.tensor([labels[i] for i in index], dtype=torch.long,
                                                             device=device)
        with torch.no_grad(), conditioned(model, condition, guidance):
            x = sample_flow(model, generators, steps) if isinstance(model, FlowModel) else \
                sample_prior(model, generators, steps=steps, eta=eta, clip=autoencoder is None)
            image = to_image(x) if autoencoder is None else autoencoder.decode(x)
            out.append(image.clamp(0, 1).cpu())
    return torch.cat(out)


def image_grid(x: Tensor, per_row: int) -> Tensor:
    """Images (N, C, H, W) tiled `per_row` to a row, in order, the last row padded with white."""
    n = x.shape[0]
    x = torch.cat([x, torch.ones(per_row * math.ceil(n / per_row) - n, *x.shape[1:])])
    rows = [torch.cat(list(x[r:r + per_row]), dim=-1) for r in range(0, x.shape[0], per_row)]
    return torch.cat(rows, dim=-2)


def sample_grid(model: ScoreModel, n: int, steps: int, seed: int, path: Path, eta: float = 1.0,
                labels: list[int] | None = None, guidance: float = 1.0) -> None:
    """A PNG grid (ceil(sqrt(n)) per row) of `draw_samples`' samples, in the order drawn."""
    x = draw_samples(model, n, steps, seed, eta=eta, labels=labels, guidance=guidance)
    save_png(image_grid(x, math.ceil(n ** 0.5)), path)


def write_train_log(model: torch.nn.Module, out: Path, data: str, num_images: int, cfg: TrainConfig,
                    device: torch.device, command: str | None, fields: dict) -> dict:
    """Update out/train_log.json with the training's record (steps and time from out/train_state.pt, device, the
    model's size and config, the options, the loss every 100 steps) and `fields`; return the log."""
    state = torch.load(out / "train_state.pt", map_location="cpu", weights_only=True)
    log_path = out / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    log.update({
        **fields, "data": data, "num_images": num_images, "steps": int(state["step"]),
        "train_seconds": round(float(state["elapsed_seconds"]), 1),
        "device": describe_device(device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_config": model.config(), "train_config": asdict(cfg), "command": command,  # type: ignore[operator]
        "loss_per_100_steps": [round(float(m), 5) for m in state.get("loss_history", [])],
    })
    atomic_write_text(log_path, json.dumps(log, indent=2) + "\n")
    return log


def finish_training(ema: ScoreModel, out: Path, data: str, num_images: int, cfg: TrainConfig,
                    device: torch.device, sample_steps: int, command: str | None,
                    fields: dict | None = None) -> list[str]:
    """Write model.pt (EMA, float32), model-fp16.pt, samples.png and train_log.json (with `fields`); return summary
    lines. A latent prior (the EMA latent model with its autoencoder) is saved whole and its samples are decoded."""
    save_checkpoint(ema, out / "model.pt")
    save_checkpoint(ema, out / "model-fp16.pt", half=True)
    if isinstance(ema, ConditionalUNetModel):  # each row every class once, the conditional model (w = 1)
        classes = len(ema.class_names)
        sample_grid(ema, classes * classes, sample_steps, cfg.seed, out / "samples.png",
                    labels=[i % classes for i in range(classes * classes)])
    else:
        sample_grid(ema, 64, sample_steps, cfg.seed, out / "samples.png")
    prior = ema.latent if isinstance(ema, LatentPrior) else ema
    log = write_train_log(ema, out, data, num_images, cfg, device, command, {
        "objective": "flow" if isinstance(prior, FlowModel) else "eps",
        "classes": prior.class_names if isinstance(prior, ConditionalUNetModel) else None, **(fields or {})})
    return [f"step {log['steps']}, {log['train_seconds']} s of training on {log['device']}",
            f"wrote {out / 'model.pt'}, {out / 'model-fp16.pt'}, {out / 'samples.png'}, {out / 'train_log.json'}"]
