"""Image sets: registered sets (the bundled `photos`), directory loading, exact PNG round trips."""
from ipbench.data.images import (
    IMAGE_SETS,
    ImageSet,
    center_crop_resize,
    load_images,
    load_png,
    read_image,
    register_image_set,
    save_png,
)
from ipbench.data import ffhq as _ffhq  # noqa: F401  (registers the `ffhq-1k` image set)

__all__ = [
    "IMAGE_SETS",
    "ImageSet",
    "center_crop_resize",
    "load_images",
    "load_png",
    "read_image",
    "register_image_set",
    "save_png",
]
