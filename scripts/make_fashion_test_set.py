"""Write the bundled `fashion32-test` image set: the first 100 Fashion-MNIST test images, 32x32 PNGs.

Source: the Debian package dataset-fashion-mnist (MIT licence, Zalando SE), file
/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz; 28x28 images zero-padded (centred) to 32x32,
exactly as `bench train --data fashion-mnist` pads the training images. File names are
<index>-<label>.png, so sorted names keep the test-set order.

    python scripts/make_fashion_test_set.py [--count 100] [--out ipbench/data/bundled/fashion32-test]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ipbench.data import save_png
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images, read_idx

LABELS = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
LICENCE = """# fashion32-test

The first {count} images of the Fashion-MNIST test set (t10k-images-idx3-ubyte.gz, from the Debian package
dataset-fashion-mnist), zero-padded from 28x28 to 32x32, written by scripts/make_fashion_test_set.py.
File names are <test-set index>-<label>.png. These images are held out: ipbench's `fashion32` model is
trained on the 60,000 training images only.

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
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--out", default="ipbench/data/bundled/fashion32-test")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = idx_images(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz", pad_to=32)[: args.count]
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[: args.count]
    for i, (image, label) in enumerate(zip(images, labels)):
        save_png(image, out / f"{i:03d}-{LABELS[int(label)]}.png")
    (out / "LICENSE.md").write_text(LICENCE.format(count=args.count))
    print(f"wrote {len(images)} images to {out}")


if __name__ == "__main__":
    main()
