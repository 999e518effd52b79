"""Fit the `gaussian-fashion32` baseline: a stationary Gaussian on the 60,000 Fashion-MNIST training images.

The same images (padded to 32x32) that `fashion32` is trained on, so the two priors compare fairly.

    python scripts/fit_gaussian_fashion.py [--out ipbench/models/weights/gaussian-fashion32.pt]
"""
from __future__ import annotations

import argparse

from ipbench.models import GaussianScoreModel, save_checkpoint
from ipbench.training.export import FASHION_MNIST_TRAIN
from ipbench.data.idx import idx_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ipbench/models/weights/gaussian-fashion32.pt")
    args = parser.parse_args()
    model = GaussianScoreModel.fit(idx_images(FASHION_MNIST_TRAIN, pad_to=32))
    save_checkpoint(model, args.out)
    print(f"wrote {args.out}: mean {float(model.mean.flatten()[0]):.4f} (model units), spectrum {tuple(model.spectrum.shape)}")


if __name__ == "__main__":
    main()
