"""The two stages of a latent prior trained by ipbench (Rombach et al. 2022, sec. 3 and 4): a KL autoencoder on the
training images (`bench train --autoencoder`), then a latent DDPM on the scaled latents of the same images
(`bench train --latent-of AE.pt`), exported as one `LatentPrior` (models/latent.py).

Both stages run the one training loop (training/loop.py); this module holds what is particular to them: the latent
scale (LDM's scale factor, 1 / the std of the training latents, measured once the autoencoder is trained), the
autoencoder's held-out reconstruction on `fashion32-val` (PSNR and LPIPS, as rows score solvers) and its grid, and the
training images encoded once into the latent stage's data.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ipbench.data import load_images, save_png
from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel
from ipbench.models.kl_autoencoder import KLAutoencoder
from ipbench.models.latent import Autoencoder, LatentPrior
from ipbench.models.registry import load_checkpoint, save_checkpoint
from ipbench.paths import content_hash
from ipbench.results.metrics import lpips, psnr
from ipbench.training.export import finish_training, image_grid, write_train_log
from ipbench.training.loop import TrainConfig

HELDOUT_SET = "fashion32-val"  # Fashion-MNIST test images 5000-5199: never trained on, disjoint from fashion32-test
SCALE_IMAGES = 4096  # training images the latent std is measured on (evenly spaced; all of a smaller set)
BATCH = 256  # images per encoder or decoder call outside training
GRID_IMAGES = 8  # held-out images in reconstructions.png, above their reconstructions


def _batched(fn, x: Tensor, device: torch.device) -> Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + BATCH].to(device)).cpu() for i in range(0, x.shape[0], BATCH)])


def latent_scale(autoencoder: KLAutoencoder, images: Tensor, device: torch.device) -> float:
    """1 / the std of the posterior means of (up to SCALE_IMAGES evenly spaced) training images, over all their
    latent values: the factor that gives the latent model unit-variance data (LDM's scale factor, appendix G)."""
    pick = torch.linspace(0, images.shape[0] - 1, min(images.shape[0], SCALE_IMAGES)).round().long()
    means = _batched(lambda x: autoencoder.posterior(x)[0], images[pick], device)
    std = float(means.double().std())
    if not math.isfinite(std) or std <= 0:
        raise UsageError(f"the trained autoencoder's latents have std {std}: it encodes every image alike; train "
                         "it longer or with other options")
    return 1.0 / std


def encode_all(autoencoder: Autoencoder, images: Tensor, device: torch.device) -> Tensor:
    """The scaled latents `encode_images` gives of every image (N, c, h, w), on the CPU."""
    return _batched(autoencoder.encode_images, images, device)


def heldout_reconstruction(autoencoder: Autoencoder, device: torch.device) -> tuple[dict, Tensor]:
    """PSNR and LPIPS (mean and standard error over images) of decode(encode(x)) on the held-out set, at the
    autoencoder's image shape, and the grid of its first images above their reconstructions."""
    x = load_images(HELDOUT_SET, autoencoder.image_shape).images
    reconstructed = _batched(lambda v: autoencoder.decode_latents(autoencoder.encode_images(v)), x, device)
    scores = {"psnr": psnr(reconstructed, x)}
    if x.shape[1] in (1, 3):  # LPIPS's networks take grey or RGB images
        scores["lpips"] = lpips(reconstructed, x)
    record: dict = {"set": HELDOUT_SET, "num_images": x.shape[0], "image_shape": list(autoencoder.image_shape)}
    for name, values in scores.items():
        record[name] = round(float(values.mean()), 4)
        record[f"{name}_se"] = round(float(values.std() / values.numel() ** 0.5), 4)
    shown = min(GRID_IMAGES, x.shape[0])
    return record, image_grid(torch.cat([x[:shown], reconstructed[:shown].clamp(0, 1)]), shown)


def finish_autoencoder(ema: KLAutoencoder, images: Tensor, out: Path, data: str, cfg: TrainConfig,
                       device: torch.device, command: str | None) -> list[str]:
    """Measure the latent scale on the training images and store it in the config, write autoencoder.pt (EMA,
    float32), reconstructions.png and train_log.json (with the held-out reconstruction); return summary lines."""
    ema.with_latent_scale(latent_scale(ema, images, device))
    save_checkpoint(ema, out / "autoencoder.pt")
    heldout, grid = heldout_reconstruction(ema, device)
    save_png(grid, out / "reconstructions.png")
    log = write_train_log(ema, out, data, images.shape[0], cfg, device, command, {
        "objective": "autoencoder", "reconstruction_loss": "l1", "kl_weight": ema.cfg.kl_weight,
        "latent_shape": list(ema.latent_shape), "latent_scale": ema.cfg.latent_scale, "heldout": heldout})
    lpips_text = f", LPIPS {heldout['lpips']:.4f}" if "lpips" in heldout else ""
    return [f"step {log['steps']}, {log['train_seconds']} s of training on {log['device']}",
            f"latents {' x '.join(map(str, ema.latent_shape))}, latent scale {ema.cfg.latent_scale:.4g}; held-out "
            f"reconstruction on {HELDOUT_SET}: PSNR {heldout['psnr']:.2f} dB{lpips_text}",
            f"wrote {out / 'autoencoder.pt'}, {out / 'reconstructions.png'}, {out / 'train_log.json'}"]


def load_autoencoder(path: Path) -> tuple[Autoencoder, str]:
    """The autoencoder in checkpoint `path` and the file's content hash; a one-line error naming `--latent-of` and
    the file when it holds something else."""
    try:
        model = load_checkpoint(path)
    except UsageError as exc:
        raise UsageError(f"--latent-of: {exc}") from None
    if not isinstance(model, Autoencoder):
        what = "a latent prior" if isinstance(model, LatentPrior) else f"a {type(model).arch_name}"
        raise UsageError(f"--latent-of {path}: holds {what} ({type(model).__name__}), not an autoencoder; give "
                         "the autoencoder.pt that bench train --autoencoder wrote")
    return model.eval().requires_grad_(False), content_hash(path)


def finish_latent_prior(ema: ScoreModel, autoencoder: Autoencoder, autoencoder_file: Path, out: Path, data: str,
                        num_images: int, cfg: TrainConfig, device: torch.device, sample_steps: int,
                        command: str | None) -> list[str]:
    """Export the EMA latent model with its autoencoder as one LatentPrior (model.pt, model-fp16.pt), its decoded
    samples (samples.png) and train_log.json; return summary lines."""
    prior = LatentPrior(ema, autoencoder.to(device))
    return finish_training(prior, out, data, num_images, cfg, device, sample_steps, command, fields={
        "latent_of": str(autoencoder_file), "autoencoder_sha256": content_hash(autoencoder_file),
        "latent_shape": list(autoencoder.latent_shape),
        "latent_parameters": sum(p.numel() for p in ema.parameters())})
