"""Held-out DDPM loss of score models on an image set: E_{t, eps} ||eps - eps_hat(x_t, t)||^2 per pixel.

The training objective of Ho et al. 2020 (Algorithm 1) evaluated on images a model was not trained on,
with the same (t, eps) draws for every model, overall and by time range. Example:

    python benchmarks/heldout_loss.py --models fashion32 gaussian-fashion32 --images fashion32-test
"""
from __future__ import annotations

import argparse

import torch

from ipbench.data import load_images
from ipbench.models import load_model, to_model

RANGES = ((0, 100), (100, 300), (300, 600), (600, 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fashion32", "gaussian-fashion32"])
    parser.add_argument("--images", default="fashion32-test")
    parser.add_argument("--draws", type=int, default=20, help="(t, eps) draws per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    models = {name: load_model(name) for name in args.models}
    shape = next(iter(models.values())).image_shape
    x0 = to_model(load_images(args.images, shape).images).repeat(args.draws, 1, 1, 1)
    generator = torch.Generator().manual_seed(args.seed)
    t = torch.randint(0, 1000, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    header = "| model | all t | " + " | ".join(f"t in [{a}, {b})" for a, b in RANGES) + " |"
    print(f"Held-out DDPM loss on {args.images} ({x0.shape[0] // args.draws} images x {args.draws} draws, seed {args.seed})\n")
    print(header)
    print("|---" * (len(RANGES) + 2) + "|")
    for name, model in models.items():
        ab = model.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        with torch.no_grad():
            err = torch.cat([(model.eps(x_t[i:i + 256], t[i:i + 256]) - eps[i:i + 256]).square().flatten(1).mean(1)
                             for i in range(0, x0.shape[0], 256)])
        cells = [f"{err[(t >= a) & (t < b)].mean():.4f}" for a, b in RANGES]
        print(f"| {name} | {err.mean():.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
