"""The registry of named image sets, with the split each declares, and the bundled sets.

Kept apart from the loading (images.py), and free of torch, so that `bench table` and `bench report` can
name a run's split and compare image sets without loading torch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipbench.registry import Registry

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")  # matched case-insensitively
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

ImageSetFiles = Callable[[], list[Path]]
IMAGE_SETS: Registry[ImageSetFiles] = Registry("image set")
SPLITS = ("train", "val", "test")  # what a registered set may declare itself to be


@dataclass(frozen=True)
class SetSplit:
    """Where a registered set's images come from (`origin`, e.g. one dataset's test set) and which split of
    it they are: two sets of one origin and split may share images; of different splits they may not."""

    split: str | None = None  # "train", "val" (tuning) or "test" (evaluation); None: not declared
    origin: str | None = None


IMAGE_SET_SPLITS: dict[str, SetSplit] = {}


def register_image_set(name: str, aliases: tuple[str, ...] = (), split: str | None = None,
                       origin: str | None = None) -> Callable[[ImageSetFiles], ImageSetFiles]:
    """Register a function returning the image file paths of set `name`, in id order, and the split the set
    is (SPLITS, or None) of `origin` (the data it is drawn from; default: the set itself).

    The ids of the set are the file stems, so they must be unique within the set.
    """
    if split not in (None, *SPLITS):
        raise ValueError(f"image set {name!r}: split {split!r}; valid: {', '.join(SPLITS)} or None")
    IMAGE_SET_SPLITS[name] = SetSplit(split, origin or name)
    return IMAGE_SETS.decorator(name, aliases)


def set_split(source: str) -> SetSplit:
    """The split of image set `source` (a registered name or alias); an unregistered source (a folder)
    declares none."""
    if source not in IMAGE_SETS:
        return SetSplit()
    return IMAGE_SET_SPLITS.get(IMAGE_SETS.canonical(source), SetSplit(origin=IMAGE_SETS.canonical(source)))


def image_files(directory: Path) -> list[Path]:
    """The PNG/JPEG files directly inside `directory`, sorted by file name (not recursive)."""
    files = [p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.name)


@register_image_set("photos")
def bundled_photos() -> list[Path]:
    """8 public-domain / CC0 photographs, 256x256 (see bundled/photos/LICENSES.md)."""
    return image_files(BUNDLED_DIR / "photos")


FASHION_MNIST_TEST = "Fashion-MNIST test set"  # both bundled fashion32 sets are drawn from it, disjoint


@register_image_set("fashion32-test", split="test", origin=FASHION_MNIST_TEST)
def fashion32_test() -> list[Path]:
    """Fashion-MNIST test images 0-199, 32x32 grey (held out from `fashion32`'s training; evaluate here)."""
    return image_files(BUNDLED_DIR / "fashion32-test")


@register_image_set("fashion32-val", split="val", origin=FASHION_MNIST_TEST)
def fashion32_val() -> list[Path]:
    """Fashion-MNIST test images 5000-5199, 32x32 grey, disjoint from fashion32-test (tune here)."""
    return image_files(BUNDLED_DIR / "fashion32-val")


from ipbench.data import ffhq as _ffhq  # noqa: E402, F401  (registers `ffhq-1k`; it imports register_image_set)
