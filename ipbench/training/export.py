"""What `bench train` and `bench sample` read and write around the training loop: data, weights, samples, log."""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from ipbench.data import load_images, save_png
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images
from ipbench.device import describe_device
from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.models.base import ScoreModel, to_image
from ipbench.models.registry import save_checkpoint
from ipbench.models.flow import FlowModel
from ipbench.seeding import seed_for
from ipbench.solvers.diffusion import sample_prior
from ipbench.solvers.flow_steps import sample_flow
from ipbench.training.loop import TrainConfig

FASHION_MNIST_TRAIN = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"


def load_training_images(data: str, shape: tuple[int, int, int]) -> Tensor:
    """(N, C, H, W) in [0, 1]: `fashion-mnist` (the 60,000 training images), an IDX file or a folder."""
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
        return images
    return load_images(str(path), shape).images


def sample_grid(model: ScoreModel, n: int, steps: int, seed: int, path: Path, eta: float = 1.0) -> None:
    """A PNG grid (ceil(sqrt(n)) per row) of prior samples: the reverse process, `steps` strided steps (for a
    flow model its own sampler: the flow ODE in `steps` Euler steps)."""
    device = model.alphas_cumprod.device
    generators = [torch.Generator(device=device).manual_seed(seed_for("sample", seed, i)) for i in range(n)]
    with torch.no_grad():
        x = sample_flow(model, generators, steps) if isinstance(model, FlowModel) else \
            sample_prior(model, generators, steps=steps, eta=eta)
        x = to_image(x).clamp(0, 1).cpu()
    per_row = math.ceil(n ** 0.5)
    x = torch.cat([x, torch.ones(per_row * math.ceil(n / per_row) - n, *x.shape[1:])])  # pad with white
    rows = [torch.cat(list(x[r:r + per_row]), dim=-1) for r in range(0, x.shape[0], per_row)]
    save_png(torch.cat(rows, dim=-2), path)


def finish_training(ema: ScoreModel, out: Path, data: str, num_images: int, cfg: TrainConfig,
                    device: torch.device, sample_steps: int, command: str | None) -> list[str]:
    """Write model.pt (EMA, float32), model-fp16.pt, samples.png and train_log.json; return summary lines."""
    save_checkpoint(ema, out / "model.pt")
    save_checkpoint(ema, out / "model-fp16.pt", half=True)
    sample_grid(ema, 64, sample_steps, cfg.seed, out / "samples.png")
    state = torch.load(out / "train_state.pt", map_location="cpu", weights_only=True)
    log_path = out / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    log.update({
        "objective": "flow" if isinstance(ema, FlowModel) else "eps", "data": data, "num_images": num_images, "steps": int(state["step"]),
        "train_seconds": round(float(state["elapsed_seconds"]), 1),
        "device": describe_device(device),
        "parameters": sum(p.numel() for p in ema.parameters()),
        "model_config": ema.config(), "train_config": asdict(cfg), "command": command,
        "loss_per_100_steps": [round(float(m), 5) for m in state.get("loss_history", [])],
    })
    atomic_write_text(log_path, json.dumps(log, indent=2) + "\n")
    return [f"step {log['steps']}, {log['train_seconds']} s of training on {log['device']}",
            f"wrote {out / 'model.pt'}, {out / 'model-fp16.pt'}, {out / 'samples.png'}, {log_path}"]
