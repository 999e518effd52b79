"""Image sets: the bundled set, directory loading, skipping bad files, centre crops, exact PNG round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipbench.data import IMAGE_SETS, ImageSet, load_images, load_png, register_image_set, save_png
from ipbench.errors import UsageError

PHOTO_IDS = [
    "00-astronaut", "01-camera", "02-chelsea", "03-coffee", "04-rocket", "05-coins", "06-gravel", "07-grace_hopper",
]
BUNDLED = Path(__file__).resolve().parents[1] / "ipbench" / "data" / "bundled" / "photos"


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    Image.fromarray(array).save(path, **kwargs)


def _rgb(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (height, width, 3)).copy()


# --- the registry: every registered set loads (contract test) ---------------------------------------------


@pytest.mark.parametrize("name", IMAGE_SETS.names())
def test_every_registered_set_loads(name: str) -> None:
    image_set = load_images(name, (3, 16, 16))
    assert image_set.source == name
    assert image_set.skipped == []
    assert len(set(image_set.ids)) == len(image_set.ids) == image_set.images.shape[0] > 0
    assert torch.isfinite(image_set.images).all()


# --- the bundled photos ----------------------------------------------------------------------------------


def test_photos_native_size_is_the_stored_pixels() -> None:
    image_set = load_images("photos", (3, 256, 256))
    assert isinstance(image_set, ImageSet)
    assert image_set.ids == PHOTO_IDS
    assert image_set.images.shape == (8, 3, 256, 256) and image_set.images.dtype == torch.float32
    assert image_set.images.min() >= 0 and image_set.images.max() <= 1
    # At the stored size nothing is resampled: image i is exactly file i / 255 (gray files repeated to RGB).
    for i, image_id in enumerate(PHOTO_IDS):
        stored = torch.from_numpy(np.array(Image.open(BUNDLED / f"{image_id}.png").convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(image_set.images[i], stored.float() / 255), image_id


def test_photos_files_are_256_squares_and_small() -> None:
    files = sorted(BUNDLED.glob("*.png"))
    assert [f.stem for f in files] == PHOTO_IDS
    for f in files:
        with Image.open(f) as image:
            assert image.size == (256, 256) and image.mode in ("L", "RGB"), f.name
    assert sum(f.stat().st_size for f in BUNDLED.iterdir()) < 2_000_000
    licences = (BUNDLED / "LICENSES.md").read_text()
    assert all(f.name in licences for f in files)


def test_photos_grayscale_small() -> None:
    image_set = load_images("photos", (1, 32, 32))
    assert image_set.ids == PHOTO_IDS
    assert image_set.images.shape == (8, 1, 32, 32)
    assert image_set.images.min() >= 0 and image_set.images.max() <= 1
    # A grayscale source (camera) gives the same values whether loaded as gray or as RGB.
    rgb = load_images("photos", (3, 32, 32)).images
    camera = PHOTO_IDS.index("01-camera")
    assert torch.equal(rgb[camera], image_set.images[camera].expand(3, -1, -1))
    # Colour sources are really coloured, and their gray version is the luma, not a channel.
    astronaut = PHOTO_IDS.index("00-astronaut")
    assert (rgb[astronaut, 0] - rgb[astronaut, 2]).abs().mean() > 0.05
    luma = 0.299 * rgb[astronaut, 0] + 0.587 * rgb[astronaut, 1] + 0.114 * rgb[astronaut, 2]
    assert (luma - image_set.images[astronaut, 0]).abs().mean() < 0.01


def test_num_images_takes_the_first_in_id_order() -> None:
    full = load_images("photos", (3, 32, 32))
    subset = load_images("photos", (3, 32, 32), num_images=3)
    assert subset.ids == PHOTO_IDS[:3]
    assert torch.equal(subset.images, full.images[:3])


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_num_images_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(UsageError, match="num_images"):
        load_images("photos", (3, 8, 8), num_images=bad)  # type: ignore[arg-type]


def test_num_images_beyond_the_set_is_an_error() -> None:
    with pytest.raises(UsageError, match="only 8"):
        load_images("photos", (3, 8, 8), num_images=9)


@pytest.mark.parametrize("shape", [(2, 8, 8), (3, 0, 8), (3, 8), (3, 8.0, 8)])
def test_bad_shape(shape: tuple) -> None:
    with pytest.raises(UsageError, match="shape"):
        load_images("photos", shape)  # type: ignore[arg-type]


# --- directories ------------------------------------------------------------------------------------------


def test_directory_with_good_corrupt_and_other_files(tmp_path: Path) -> None:
    _save(tmp_path / "b_red.png", _rgb(20, 20, (255, 0, 0)))
    _save(tmp_path / "a_green.JPG", _rgb(20, 20, (0, 255, 0)), quality=95)
    (tmp_path / "c_broken.jpeg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    png_bytes = (tmp_path / "b_red.png").read_bytes()
    (tmp_path / "d_truncated.png").write_bytes(png_bytes[: len(png_bytes) // 2])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name is not a file

    image_set = load_images(str(tmp_path), (3, 10, 10))

    assert image_set.ids == ["a_green", "b_red"]  # sorted by file name; extensions case-insensitive
    assert image_set.source == str(tmp_path.resolve())
    assert [name for name, _ in image_set.skipped] == ["c_broken.jpeg", "d_truncated.png"]
    assert all(reason for _, reason in image_set.skipped)
    green, red = image_set.images
    assert torch.allclose(green, torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 10, 10), atol=3 / 255)
    assert torch.equal(red, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 10, 10))


def test_num_images_counts_readable_images(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"garbage")
    for name in ("b", "c", "d"):
        _save(tmp_path / f"{name}.png", _rgb(4, 4, (10, 20, 30)))
    image_set = load_images(str(tmp_path), (3, 4, 4), num_images=2)
    assert image_set.ids == ["b", "c"]
    assert image_set.skipped[0][0] == "a.png"


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    _save(tmp_path / "x.png", _rgb(4, 4, (0, 0, 0)))
    _save(tmp_path / "x.jpg", _rgb(4, 4, (0, 0, 0)))
    with pytest.raises(UsageError, match="same id 'x'"):
        load_images(str(tmp_path), (3, 4, 4))


def test_unknown_name_lists_the_registered_sets() -> None:
    with pytest.raises(UsageError) as info:
        load_images("no-such-set", (3, 8, 8))
    message = str(info.value)
    assert "no-such-set" in message and "photos" in message and "\n" not in message


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(UsageError, match="nowhere"):
        load_images(str(missing), (3, 8, 8))


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("no images here")
    with pytest.raises(UsageError) as info:
        load_images(str(tmp_path), (3, 8, 8))
    assert str(tmp_path) in str(info.value) and ".png" in str(info.value)


def test_directory_with_no_readable_image(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="bad.png"):
        load_images(str(tmp_path), (3, 8, 8))


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    _save(path, _rgb(4, 4, (0, 0, 0)))
    with pytest.raises(UsageError, match="not a directory"):
        load_images(str(path), (3, 4, 4))


def test_registered_set_function(tmp_path: Path) -> None:
    _save(tmp_path / "z.png", _rgb(6, 6, (0, 0, 255)))
    _save(tmp_path / "a.png", _rgb(6, 6, (255, 0, 0)))
    name = "test-two-files"
    register_image_set(name)(lambda: [tmp_path / "z.png", tmp_path / "a.png"])
    try:
        image_set = load_images(name, (3, 6, 6))
        assert image_set.ids == ["z", "a"]  # the set function's order is the id order
        assert image_set.source == name
    finally:
        IMAGE_SETS._items.pop(name)


# --- centre crop and resize -------------------------------------------------------------------------------


def test_wide_image_is_cropped_left_and_right(tmp_path: Path) -> None:
    # 30 wide x 10 high: red | green | blue thirds. The centred square is exactly the green third.
    array = np.concatenate([_rgb(10, 10, (255, 0, 0)), _rgb(10, 10, (0, 255, 0)), _rgb(10, 10, (0, 0, 255))], 1)
    _save(tmp_path / "wide.png", array)
    green = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    exact = load_images(str(tmp_path), (3, 10, 10)).images[0]
    assert torch.equal(exact, green.expand(3, 10, 10))
    shrunk = load_images(str(tmp_path), (3, 5, 5)).images[0]  # resized after cropping: still no border colour
    assert torch.equal(shrunk, green.expand(3, 5, 5))
    # A 10x20 (H x W) target keeps the middle 15 columns of 30: green plus 2 or 3 columns of each border.
    wide = load_images(str(tmp_path), (3, 10, 20)).images[0]
    assert wide[0, :, 0].min() > 0.9 and wide[2, :, -1].min() > 0.9 and wide[1, :, 10].min() > 0.9


def test_tall_image_is_cropped_top_and_bottom(tmp_path: Path) -> None:
    # 8 wide x 24 high: black / white / black bands; grayscale target keeps the white middle band.
    array = np.zeros((24, 8), dtype=np.uint8)
    array[8:16] = 255
    _save(tmp_path / "tall.png", array)
    image = load_images(str(tmp_path), (1, 4, 4)).images[0]
    assert torch.equal(image, torch.ones(1, 4, 4))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    array = np.concatenate([_rgb(16, 16, (255, 255, 255)), _rgb(16, 32, (0, 0, 0))], 1)  # white left third
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(array).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    image = load_images(str(tmp_path), (1, 48, 16)).images[0, 0]  # displayed: 48 high x 16 wide
    assert image[:12].mean() > 0.9 and image[-12:].mean() < 0.1  # white strip is now on top


def test_sixteen_bit_grayscale_keeps_precision(tmp_path: Path) -> None:
    values = np.array([[0, 257, 1000, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = load_images(str(tmp_path), (1, 4, 4)).images[0, 0]
    expected = torch.from_numpy(values.astype(np.float32) / 65535)
    assert torch.allclose(image, expected, atol=1e-6)


# --- exact 8-bit PNG round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_exact_for_8_bit_values(tmp_path: Path, channels: int) -> None:
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (channels, 17, 23), generator=generator)
    levels[..., 0, :2] = torch.tensor([0, 255])  # both extremes present
    image = levels.float() / 255
    save_png(image, tmp_path / "sub" / "x.png")
    loaded = load_png(tmp_path / "sub" / "x.png")
    assert loaded.dtype == torch.float32 and loaded.shape == image.shape
    assert torch.equal(loaded, image)
    assert torch.equal(load_png(tmp_path / "sub" / "x.png", channels=3), image.expand(3, -1, -1))


def test_save_png_rounds_and_clamps(tmp_path: Path) -> None:
    image = torch.tensor([-0.5, 1.7, 0.49 / 255, 0.51 / 255, 100.4 / 255, 100.6 / 255]).view(1, 1, 6)
    save_png(image, tmp_path / "x.png")
    assert np.array(Image.open(tmp_path / "x.png")).tolist() == [[0, 255, 0, 1, 100, 101]]


def test_save_png_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        save_png(torch.zeros(1, 3, 4, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-finite"):
        save_png(torch.full((3, 4, 4), float("nan")), tmp_path / "x.png")
