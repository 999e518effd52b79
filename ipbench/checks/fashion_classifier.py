"""A small Fashion-MNIST classifier shipped with the package: the judge of a class-conditional prior's samples.

A conditional model's guidance is checked by whether its samples of class c are classified as c more often as the
guidance scale grows (benchmarks/guidance_accuracy.py). The classifier sees exactly what the models produce and
what the bundled fashion32 sets hold: (N, 1, 32, 32) float32 in [0, 1], the 28x28 images zero-padded to 32x32
(data/idx.py). Its weights, trained by benchmarks/train_fashion_classifier.py on the training split only, are
read through weights.py (torch.load weights_only=True, names and shapes checked).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import torch
from torch import Tensor, nn

from ipbench.data.labels import FASHION_MNIST_CLASSES
from ipbench.errors import UsageError
from ipbench.weights import read_state_dict, state_dict_mismatch

CLASSES = FASHION_MNIST_CLASSES  # logit k is class CLASSES[k], the dataset's label order
IMAGE_SHAPE = (1, 32, 32)
WEIGHTS_FILE = Path(str(files("ipbench") / "models" / "weights" / "fashion-classifier.pt"))


class FashionClassifier(nn.Module):
    """Three 3x3 conv + ReLU + 2x2 max-pool stages (32 -> 16 -> 8 -> 4 px, 16/32/64 channels) and a linear head:
    about 34k parameters, enough for ~90% on Fashion-MNIST and cheap enough to train on one CPU thread."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = IMAGE_SHAPE[0]
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = IMAGE_SHAPE[-1] // 2 ** len(widths)
        self.head = nn.Linear(channels * side * side, len(CLASSES))

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N, 10) of images (N, 1, 32, 32) in [0, 1], centred to [-1, 1] as the models' own units."""
        return self.head(self.features(2 * images - 1).flatten(1))


def load_fashion_classifier(device: torch.device | str = "cpu", path: Path = WEIGHTS_FILE) -> FashionClassifier:
    """The shipped classifier (or the weights at `path`) on `device`, in eval mode; a file that is not this
    network's weights is one UsageError naming it."""
    what = "classifier weights"
    state = read_state_dict(Path(path), what)
    classifier = FashionClassifier()
    mismatch = state_dict_mismatch({k: v.shape for k, v in classifier.state_dict().items()}, state)
    if mismatch is not None:
        raise UsageError(f"{what} {path}: not the weights of the Fashion-MNIST classifier ({mismatch}); "
                         "benchmarks/train_fashion_classifier.py writes them")
    classifier.load_state_dict({k: v.float() for k, v in state.items()})
    return classifier.to(device).eval().requires_grad_(False)


def predict(classifier: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """The predicted class index (N,) of each image, on the CPU, in batches so memory stays flat."""
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise UsageError(f"the Fashion-MNIST classifier takes (N, {', '.join(map(str, IMAGE_SHAPE))}) images, "
                         f"got {tuple(images.shape)}")
    device = next(classifier.parameters()).device
    with torch.no_grad():
        return torch.cat([classifier(images[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, images.shape[0], batch_size)])


def class_accuracy(classifier: nn.Module, images: Tensor, labels: Tensor) -> float:
    """The fraction of `images` whose predicted class is their label (class indices in CLASSES order)."""
    labels = torch.as_tensor(labels).cpu()
    if labels.shape != (images.shape[0],):
        raise UsageError(f"class_accuracy: labels of shape {tuple(labels.shape)} for {images.shape[0]} images; "
                         "give one label per image")
    if images.shape[0] == 0:
        raise UsageError("class_accuracy: no images")
    return float((predict(classifier, images) == labels).double().mean())
