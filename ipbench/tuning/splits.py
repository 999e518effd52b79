"""Which registered image set is another split of the same images' origin (fashion32-val <-> fashion32-test)."""
from __future__ import annotations

from ipbench.data.sets import IMAGE_SET_SPLITS, IMAGE_SETS, set_split


def counterpart(source: str, split: str) -> str | None:
    """The registered set of `source`'s origin whose split is `split` (the first registered where several are,
    so a plugin's extra set does not move the bundled pairing); None for a folder, a set that declares no
    split, or an origin without such a set."""
    if source not in IMAGE_SETS:
        return None
    own = set_split(source)
    if own.split is None:
        return None
    if own.split == split:
        return IMAGE_SETS.canonical(source)
    found = [name for name, s in IMAGE_SET_SPLITS.items() if s.origin == own.origin and s.split == split]
    return found[0] if found else None
