"""Train the shipped Fashion-MNIST classifier (ipbench/checks/fashion_classifier.py) and report its test accuracy.

The classifier judges a class-conditional prior's samples, so it is trained on the 60,000 training images only,
preprocessed as the models' data are (data/idx.py: [0, 1], zero-padded to 32x32), and scored on the 10,000 test
images, which it never sees. Seeded and deterministic on the CPU: the same command writes the same weights.

    python benchmarks/train_fashion_classifier.py   # writes ipbench/models/weights/fashion-classifier.pt and
                                                    # results/fashion_classifier.md, about 2 minutes on 1 thread
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ipbench.checks.fashion_classifier import FashionClassifier, class_accuracy, load_fashion_classifier
from ipbench.data import load_images
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images, idx_labels
from ipbench.data.labels import FASHION_MNIST_CLASSES, class_in_name
from ipbench.errors import UsageError
from ipbench.files import atomic_write_text


def load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 32, 32) images in [0, 1] and (N,) labels of Fashion-MNIST's `train` or `t10k` split."""
    images, labels = (FASHION_MNIST_DIR / f"{split}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1"))
    if not images.is_file() or not labels.is_file():
        raise UsageError(f"{images} not found; install it with `apt-get install dataset-fashion-mnist`")
    return idx_images(images, pad_to=32), torch.from_numpy(idx_labels(labels))


def train(images: torch.Tensor, labels: torch.Tensor, epochs: int, batch_size: int, lr: float,
          seed: int) -> FashionClassifier:
    """Adam with a cosine decay of the learning rate to 0 over all steps, batches in a seeded random order."""
    torch.manual_seed(seed)
    model = FashionClassifier()
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(images.shape[0] / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(images.shape[0], generator=order)
        total = 0.0
        for i in range(0, images.shape[0], batch_size):
            batch = perm[i:i + batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * batch.shape[0]
        print(f"epoch {epoch + 1}/{epochs}: training loss {total / images.shape[0]:.4f}", flush=True)
    return model.eval()


def bundled_accuracy(classifier: FashionClassifier) -> tuple[float, int]:
    """Accuracy on the bundled fashion32-test images (classes from their names), the set the tests check."""
    loaded = load_images("fashion32-test", (1, 32, 32))
    labels = torch.tensor([FASHION_MNIST_CLASSES.index(class_in_name(i, FASHION_MNIST_CLASSES)) for i in loaded.ids])
    return class_accuracy(classifier, loaded.images, labels), len(loaded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: the same bits everywhere)")
    parser.add_argument("--out", type=Path, default=Path("ipbench/models/weights/fashion-classifier.pt"))
    parser.add_argument("--report", type=Path, default=Path("results/fashion_classifier.md"))
    args = parser.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    train_images, train_labels = load_split("train")
    test_images, test_labels = load_split("t10k")
    start = time.perf_counter()
    model = train(train_images, train_labels, args.epochs, args.batch_size, args.lr, args.seed)
    seconds = time.perf_counter() - start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, args.out)
    shipped = load_fashion_classifier("cpu", args.out)  # score what was written, read back as users read it
    test = class_accuracy(shipped, test_images, test_labels)
    train_acc = class_accuracy(shipped, train_images, train_labels)
    bundled, n_bundled = bundled_accuracy(shipped)
    params = sum(p.numel() for p in shipped.parameters())
    lines = [
        "# The Fashion-MNIST classifier that judges conditional samples",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; torch "
        f"{torch.__version__}; {torch.get_num_threads()} thread(s), CPU, deterministic algorithms.",
        "- Network: `ipbench.checks.fashion_classifier.FashionClassifier`, three 3x3 conv + ReLU + 2x2 max-pool "
        f"stages (16/32/64 channels) and a linear head; {params:,} parameters, float32, "
        f"`{args.out.as_posix()}` {args.out.stat().st_size / 1024:.0f} KiB.",
        f"- Data: the {train_images.shape[0]:,} Fashion-MNIST training images (all of them, no augmentation), "
        "[0, 1], zero-padded from 28x28 to 32x32 as the models' training data and the bundled sets are; scored on "
        f"the {test_images.shape[0]:,} test images, never seen in training.",
        f"- Training: seed {args.seed}, {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr:g} with a "
        f"cosine decay to 0, cross-entropy; {seconds:.0f} s of training on a shared machine.",
        "",
        "| split | images | accuracy |",
        "|---|---|---|",
        f"| train | {train_images.shape[0]:,} | {train_acc:.4f} |",
        f"| **test** | {test_images.shape[0]:,} | **{test:.4f}** |",
        f"| bundled `fashion32-test` (test images 0-{n_bundled - 1}) | {n_bundled} | {bundled:.4f} |",
    ]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
