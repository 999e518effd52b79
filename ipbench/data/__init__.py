"""Image sets: registered sets (the bundled `photos`, `fashion32-test`, `fashion32-val`, and `ffhq-1k`) and
their splits, directory loading, exact PNG round trips.

Each name is imported on first use: the registry and splits (sets.py) without torch, for the commands that
only read run folders; the loading (images.py) with it.
"""
from __future__ import annotations

from ipbench.lazy import lazy_exports

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("IMAGE_SETS", "SPLITS", "SetSplit", "register_image_set", "set_split"), "ipbench.data.sets"),
    **dict.fromkeys(("ImageSet", "center_crop_resize", "load_images", "load_png", "read_image", "save_png"),
                    "ipbench.data.images"),
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
