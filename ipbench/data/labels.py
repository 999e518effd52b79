"""Class labels of images: Fashion-MNIST's class names in label order, and the class an image's name carries.

The bundled fashion32 sets name each image `<index>-<class>.png` (e.g. `000-ankle-boot`), the class spelt as in
FASHION_MNIST_CLASSES, whose order is the dataset's label order (0 T-shirt/top ... 9 ankle boot, Xiao et al.
2017, Table 1). Free of torch, so that reading a run's labels needs nothing heavy.
"""
from __future__ import annotations

FASHION_MNIST_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle-boot")


def class_in_name(image_id: str, class_names: tuple[str, ...] | list[str]) -> str | None:
    """The class an image id names after its first '-' (`000-ankle-boot` -> `ankle-boot`), if it is one of
    `class_names`; else None."""
    _, dash, rest = image_id.partition("-")
    return rest if dash and rest in class_names else None
