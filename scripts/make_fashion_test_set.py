"""Write a bundled Fashion-MNIST image set: `fashion32-test` or `fashion32-val`, 32x32 PNGs.

Both come from the Fashion-MNIST test set, which `fashion32` never saw in training, and are disjoint:
`fashion32-test` (--split test) is test-set images 0-199, `fashion32-val` (--split val, the tuning split)
images 5000-5199. Source: the Debian package dataset-fashion-mnist (MIT licence, Zalando SE), files
/usr/share/datasets/fashion-mnist/t10k-*-idx*-ubyte.gz; 28x28 images zero-padded (centred) to 32x32,
exactly as `bench train --data fashion-mnist` pads the training images. File names are
<index>-<label>.png (index at least 3 digits), so sorted names keep the test-set order. Rewriting a set
leaves the files it had byte-identical, so earlier runs on them stay comparable.

    python scripts/make_fashion_test_set.py [--split test|val] [--count 200] [--out FOLDER]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ipbench.data import save_png
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images, read_idx

LABELS = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FIRST_INDEX = {"test": 0, "val": 5000}  # far apart: the two sets stay disjoint at any count up to 5000
TEST_SET_SIZE = 10_000
PURPOSE = {
    "test": "the evaluation split: report results on it, and never tune on it",
    "val": "the tuning split: tune parameters on it (`bench tune`), then evaluate on `fashion32-test`",
}
LICENCE = """# fashion32-{split}

Fashion-MNIST test-set images {first}-{last} ({count} images; t10k-images-idx3-ubyte.gz, from the Debian
package dataset-fashion-mnist), zero-padded from 28x28 to 32x32, written by
`python scripts/make_fashion_test_set.py --split {split} --count {count}`. File names are
<test-set index>-<label>.png. These images are held out: ipbench's `fashion32` model is trained on the
60,000 training images only. Split `{split}`: {purpose}. `fashion32-test` (images 0-199) and
`fashion32-val` (images 5000-5199) share no image.

Fashion-MNIST: Copyright 2017 Zalando SE, https://github.com/zalandoresearch/fashion-mnist, MIT licence:

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN
AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE
OR OTHER DEALINGS IN THE SOFTWARE.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(FIRST_INDEX), default="test")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", default=None, help="default: ipbench/data/bundled/fashion32-SPLIT")
    args = parser.parse_args()
    first = FIRST_INDEX[args.split]
    last = first + args.count - 1
    # The ids must sort in index order (image sets are read in file-name order): one width for every name.
    if args.count < 1 or len(f"{first:03d}") != len(f"{last:03d}") or last >= TEST_SET_SIZE:
        parser.error(f"--count {args.count}: valid for --split {args.split}: 1 to "
                     f"{min(TEST_SET_SIZE, 10 ** len(f'{first:03d}')) - first}")
    out = Path(args.out or f"ipbench/data/bundled/fashion32-{args.split}")
    out.mkdir(parents=True, exist_ok=True)
    images = idx_images(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz", pad_to=32)[first:last + 1]
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[first:last + 1]
    for index, image, label in zip(range(first, last + 1), images, labels):
        save_png(image, out / f"{index:03d}-{LABELS[int(label)]}.png")
    (out / "LICENSE.md").write_text(LICENCE.format(split=args.split, first=first, last=last, count=args.count,
                                                   purpose=PURPOSE[args.split]))
    print(f"wrote {len(images)} images to {out}")


if __name__ == "__main__":
    main()
