"""Image sets: registered sets (the bundled `photos`, `fashion32-test`, `fashion32-val`, and `ffhq-1k`) and
their splits, directory loading, exact PNG round trips.

Each name is imported on first use: the registry and splits (sets.py) without torch, for the commands that
only read run folders; the loading (images.py) with it.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("IMAGE_SETS", "SPLITS", "SetSplit", "register_image_set", "set_split"), "ipbench.data.sets"),
    **dict.fromkeys(("ImageSet", "center_crop_resize", "load_images", "load_png", "read_image", "save_png"),
                    "ipbench.data.images"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ipbench.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
