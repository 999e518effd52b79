"""Image sets: a registry of named sets, directory loading, and exact 8-bit PNG round trips.

Every image leaves this module as float32 CHW in [0, 1] (docs/architecture.md). Loading an image for a model
of shape (C, H, W) does, in this order: decode (JPEG EXIF orientation applied), convert to the model's
channel count (C=1: PIL 'L', C=3: PIL 'RGB'), centre-crop to the aspect ratio H:W, resize to (H, W)
with PIL bicubic resampling (antialiased when shrinking), divide by 255. 16-bit grayscale PNGs keep
their precision (divided by 65535) instead.
A file that needed any of it (another size, or a mode other than the model's) is listed in
`ImageSet.converted` with its own size and mode, which a run prints and records in run.json.
Files are opened through `imagefile.open_image`, which checks the declared size before decoding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.files import write_png
from ipbench.imagefile import ImageTooLarge, open_image
from ipbench.paths import expand_user
from ipbench.run_paths import check_names
from ipbench.data.sets import IMAGE_SETS, image_files, set_split

# PIL modes read without a channel conversion, by model channels (16-bit gray keeps its precision)
NATIVE_MODES = {1: ("L", "I", "I;16", "I;16B", "I;16L"), 3: ("RGB",)}


@dataclass
class ImageSet:
    """Images ready for a model: `images[i]` is the image with id `ids[i]`."""

    ids: list[str]
    images: Tensor  # (N, C, H, W) float32 in [0, 1]
    source: str  # the registered set name, or the resolved directory path
    split: str | None = None  # the registered set's split (SPLITS); None for a folder
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    converted: dict[str, str] = field(default_factory=dict)  # id -> "WxH MODE" of a file not at the model's shape

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: list[int]) -> ImageSet:
        """The images at these positions, in that order (same source; no skipped files of its own)."""
        return ImageSet([self.ids[i] for i in positions], self.images[positions], self.source, self.split)


def center_crop_box(width: int, height: int, target_height: int, target_width: int) -> tuple[int, int, int, int]:
    """The largest centred (left, top, right, bottom) box of a width x height image with aspect H:W."""
    if width * target_height > height * target_width:  # too wide: trim left and right
        crop_width = max(1, round(height * target_width / target_height))
        left = (width - crop_width) // 2
        return left, 0, left + crop_width, height
    crop_height = max(1, round(width * target_height / target_width))  # too tall (or exact): trim top and bottom
    top = (height - crop_height) // 2
    return 0, top, width, top + crop_height


def center_crop_resize(image: Image.Image, height: int, width: int) -> Image.Image:
    """Centre-crop `image` to aspect height:width, then resize to (height, width) with PIL bicubic."""
    image = image.crop(center_crop_box(image.width, image.height, height, width))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    return image


def _decode(image: Image.Image, channels: int | None) -> Image.Image:
    """`image` as 8-bit 'L' / 'RGB', or as 'F' in [0, 1] for 16-bit grayscale; channels None keeps gray as gray."""
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):  # 16-bit grayscale PNG ('I;16', or 'I' in some Pillow versions)
        return Image.fromarray(np.asarray(image, dtype=np.float32) / 65535.0)
    if channels is None:
        channels = 1 if image.mode in ("1", "L", "LA", "F") else 3
    return image.convert("L" if channels == 1 else "RGB")


def _to_tensor(image: Image.Image, channels: int | None) -> Tensor:
    """A decoded 'L' / 'RGB' / 'F' image as float32 (C, H, W) in [0, 1]; gray is repeated to 3 channels if asked."""
    if image.mode == "F":
        x = torch.from_numpy(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)).unsqueeze(0)
    else:
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).float() / 255
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    if channels is not None and x.shape[0] != channels:
        x = x.expand(channels, -1, -1)
    return x.contiguous()


def read_image(path: str | Path, shape: tuple[int, int, int]) -> Tensor:
    """One image file as float32 (C, H, W) in [0, 1], converted, centre-cropped and resized to `shape`.

    Raises OSError (or PIL's errors) for unreadable files, ImageTooLarge (before decoding) for one that
    declares more than imagefile.MAX_PIXELS pixels; `load_images` turns those into `skipped`.
    """
    return _read_converted(path, shape)[0]


def describe_shape(shape: tuple[int, int, int]) -> str:
    """A model's image shape as files are described: 'WxH MODE' (MODE L for 1 channel, RGB for 3)."""
    return f"{shape[2]}x{shape[1]} {'L' if shape[0] == 1 else 'RGB'}"


def _read_converted(path: str | Path, shape: tuple[int, int, int]) -> tuple[Tensor, str | None]:
    """`read_image`, and the file's own 'WxH MODE' when it was not already at `shape` (None when it was)."""
    channels, height, width = shape
    with open_image(path) as image:
        image.load()
        native = NATIVE_MODES[channels]
        same = image.size == (width, height) and image.mode in native
        own = None if same else f"{image.width}x{image.height} {image.mode}"
        decoded = center_crop_resize(_decode(image, channels), height, width)
    return _to_tensor(decoded, channels), own


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise UsageError(f"image shape {shape!r} is invalid; expected (C, H, W) with positive ints")
    if shape[0] not in (1, 3):
        raise UsageError(f"image shape {tuple(shape)!r} has {shape[0]} channels; valid: 1 (grayscale) or 3 (RGB)")
    return (shape[0], shape[1], shape[2])


def _resolve(source: str) -> tuple[str, list[Path]]:
    """(canonical source, candidate files in id order) for a registered set name or a directory."""
    if source in IMAGE_SETS:
        name = IMAGE_SETS.canonical(source)
        files = [Path(p) for p in IMAGE_SETS.get(name)()]
        if not files:
            raise UsageError(f"image set {name!r} has no image files")
        return name, files
    directory = expand_user(source, "--images")
    valid = f"valid: a registered image set ({', '.join(IMAGE_SETS.names())}) or a directory of .png/.jpg/.jpeg files"
    if not directory.exists():
        raise UsageError(f"image set or directory {source!r} not found; {valid}")
    if not directory.is_dir():
        raise UsageError(f"image source {source!r} is a file, not a directory; {valid}")
    files = image_files(directory)
    if not files:
        raise UsageError(f"directory {str(directory)!r} has no .png/.jpg/.jpeg files; {valid}")
    return str(directory.resolve()), files


def load_images(source: str, shape: tuple[int, int, int], num_images: int | None = None) -> ImageSet:
    """Load image set `source` (a registered name, e.g. 'photos', or a directory path) at `shape` (C, H, W).

    A registered name wins over a same-named relative directory (write './photos' for the directory).
    Ids are the file stems, in file-name order. `num_images` keeps the first N readable images in id
    order. Files of another size or mode than `shape` are converted (module docstring) and listed in
    `ImageSet.converted`, which a run prints and records. An unreadable file is skipped and reported in
    `ImageSet.skipped`; UsageError is raised when
    nothing is readable or fewer than `num_images` images are.
    """
    shape = _check_shape(shape)
    if num_images is not None and (not isinstance(num_images, int) or isinstance(num_images, bool) or num_images < 1):
        raise UsageError(f"num_images={num_images!r} is invalid; valid: a positive integer or None (all images)")
    name, files = _resolve(str(source))
    stems: dict[str, str] = {}
    for path in files:
        if path.stem in stems:
            raise UsageError(
                f"image files {stems[path.stem]!r} and {path.name!r} in {name!r} have the same id {path.stem!r}; "
                "rename one (ids are file names without extension)"
            )
        stems[path.stem] = path.name
    try:  # ids become file names of the run (images/truth/<id>.png, ...): run_paths.py maps them
        check_names(stems, "image id")
    except UsageError as exc:
        raise UsageError(f"image set {name!r}: {exc} (ids are file names without extension)") from None

    ids: list[str] = []
    images: list[Tensor] = []
    skipped: list[tuple[str, str]] = []
    converted: dict[str, str] = {}
    for path in files:
        if num_images is not None and len(ids) == num_images:
            break
        try:
            image, own = _read_converted(path, shape)
        except (OSError, ValueError, SyntaxError, ImageTooLarge) as error:
            reason = str(error).splitlines()[0] if str(error) else ""
            skipped.append((path.name, f"{type(error).__name__}: {reason}".rstrip(": ")))
            continue
        images.append(image)
        ids.append(path.stem)
        if own is not None:
            converted[path.stem] = own

    if not ids:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise UsageError(f"no readable image in {name!r}: {len(skipped)} file(s) could not be decoded{first}")
    if num_images is not None and len(ids) < num_images:
        raise UsageError(f"num_images={num_images} but {name!r} has only {len(ids)} readable image(s)")
    return ImageSet(ids=ids, images=torch.stack(images), source=name, split=set_split(name).split, skipped=skipped,
                    converted=converted)


def save_png(image: Tensor, path: str | Path, text: dict[str, str] | None = None) -> None:
    """Save a (C, H, W) image in [0, 1] (C = 1 or 3, or 2 or 4 with opacity last) as an 8-bit PNG:
    clamped to [0, 1], round(255 x); `text` goes into the PNG's text chunks.

    Parent folders are created. Raises ValueError on a wrong shape or non-finite values.
    """
    if image.ndim != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"save_png expects a (C, H, W) image with C = 1 to 4, got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError(f"save_png: image for {str(path)!r} has non-finite values")
    pixels = (image.detach().to("cpu", torch.float32).clamp(0, 1) * 255).round().to(torch.uint8)
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).contiguous().numpy()
    write_png(Image.fromarray(array), path, text)


def load_png(path: str | Path, channels: int | None = None) -> Tensor:
    """Load an image file as float32 (C, H, W) in [0, 1], without resizing; inverse of `save_png`.

    `channels` None keeps the file's own (1 for grayscale, 3 otherwise); 1 or 3 converts.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"load_png: channels={channels!r}; valid: None, 1 or 3")
    with open_image(path) as image:
        image.load()
        decoded = _decode(image, channels)
    return _to_tensor(decoded, channels)
