"""The bundled Fashion-MNIST sets and their splits: fashion32-test grown without changing its first 100
files, fashion32-val disjoint from it, both the Fashion-MNIST test images their names say, every registered
set's split shown by `bench list` and recorded in run.json, and the default run still on the first 16."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ipbench.cli import cli
from ipbench.data import IMAGE_SETS, SPLITS, load_images, register_image_set, set_split
from ipbench.data.idx import FASHION_MNIST_DIR, idx_images, read_idx
from ipbench.data.sets import BUNDLED_DIR

LABELS = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FIRST_INDEX = {"fashion32-test": 0, "fashion32-val": 5000}
# sha256 of fashion32-test's files as they were when the set held 100 images: earlier runs used these
FIRST_100_SHA256 = {
    "000-ankle-boot.png": "626419948e79a089a514ce1adff995cc122a3ec18eb3874dbb26fdc0c75e1eb9",
    "001-pullover.png": "cff3c2c2a0e0ea3aa82b4958331e36aaf3699276c21e1ccc4637b1a7ba92ca20",
    "002-trouser.png": "1da95328a6f9210c962fef3996d1131094b0cba8f0ef8c3216339ee56a4d4bf8",
    "003-trouser.png": "534247220513030b6d124242b286628891931c1e2bf69d207288490a1635edcf",
    "004-shirt.png": "878afcd924670c18a5826c8251a0a0909f8c052a403bc4d9637bb316067e829e",
    "005-trouser.png": "42531abe5c09d1855f99af4935ab70950954eeefa9c4e436551d8cd249eea278",
    "006-coat.png": "9ec006f53902dea205aae3831b7c6515e6a1cbcafe566e9f8ae9faf419b9be0f",
    "007-shirt.png": "de152cb057e788cd10caa1185da4eae3cd1c0747961bc720b68822298f44206a",
    "008-sandal.png": "16e977c0f161df1223d9c6de2f8051ca72e403adf9cc76438c7397083c259c45",
    "009-sneaker.png": "a0d55149703887a7fe8e94b787f59bd82b19c6d8ebafd5cee8063f649718f30f",
    "010-coat.png": "c5a2a05702098427f286496c4a74c2b6cab0555e88c128cf2f5dc57587754762",
    "011-sandal.png": "3f8c53b4847bcb27bfa664a0529bac60ec2b4ae4da5cf2f28d3ea0f454b00381",
    "012-sneaker.png": "d09abda31343fb0f613413635e0a9dcd203437a5d4d1b1f08e857cf5c3b35e14",
    "013-dress.png": "de72c89193049db7b467f8b6bcb967b1948723e4e1048374b17e91633545d209",
    "014-coat.png": "91b1a6f2f43ba63e6fcc85694073e4854c85ba0a902c7215759bbefaeb942b45",
    "015-trouser.png": "30f6b5e9e733c3d29d3225eecf7777132e71f8b11b60fc9d883cb011ce167f90",
    "016-pullover.png": "517949e6c850c5018cadd0432272f04152bbc98e71fc7f9a14ec53e6ef4f4288",
    "017-coat.png": "e869da40b68e9a41baed0d5b5f117a33e09a1a8a9646abe46e74c969690fddc1",
    "018-bag.png": "fb583dd80a89a124b41db5ae5d9e4c91c5e34896bc3a0548a82d0f82b285fd8b",
    "019-tshirt.png": "082f0a154d414c7cc4fdc61a30de624eb988852f1642e25788f00a01b5f6eba6",
    "020-pullover.png": "b9ef23475754d365f2b7763fd910e51b0adc0232250c9ac1921c422f95b1693b",
    "021-sandal.png": "091e31b44aa2d2e363aed7acb4f99eedc6130e6c90dd77cafe22a117e444943b",
    "022-sneaker.png": "d5aaf2023b48f8709e6786d6c79907f8defc176542571390e82bba645524fed5",
    "023-ankle-boot.png": "6bf3f7f0f81a97984599707bc0bb41316c82997ba1e72a1af702351548f17b08",
    "024-trouser.png": "cb311eb892558923bb8a5a63b90c8e1d18d5f84c0803675009d18308ded37d34",
    "025-coat.png": "6a7b007b76ecbb96d7360e23a3000cf48531f119a358143b8bf352ffa41d8359",
    "026-shirt.png": "6949561db2baefbf77d49cb9c80e51206d9eab13ed60fb067487dd06cff09bf8",
    "027-tshirt.png": "f5a70537809f1adb0c858929590e64843b3c8c960ed3047005f6e17a183feac6",
    "028-ankle-boot.png": "3558489b167bb296c570da2592bd0853c579252ea9e923677b6d1e0612673747",
    "029-dress.png": "050beafc105b7e2420180e12afe4ca1253821bad6bc3fdc0098f7aba727a94e4",
    "030-bag.png": "fbb4cddeecb66d46a3e083cd90413714512174878d0ffe0c4eed32eaae914ad0",
    "031-bag.png": "ed72d2825086fce0817ef603c5c230f8fe89a6890659d841f3ad5abf8620a382",
    "032-dress.png": "634a9f6adbfeb7cd9484942d14d5cfb0ea6141e6d7e7984da7d405a1444ff37e",
    "033-dress.png": "57d9c8feb262b19252f23cc777eb7e7960e0de0b04111e6bcefbd3912f31a7e6",
    "034-bag.png": "5f0bd0e2f75eabf1db2d5f7033a03d9f066048aa3df05508bbad5fa346c722c7",
    "035-tshirt.png": "1e993befdd42c1735ac9cacafbfd386648e78fa93f144a7acef56612a0c64f46",
    "036-sneaker.png": "ad79eeaf4ec62f9eca09d5ecd795428969bfac9cdb5a08edd31f8d2a04a70987",
    "037-sandal.png": "968fd7db02ce259e521015048c97f4312104efd2ba9bcef1191582ce08bd8dc9",
    "038-sneaker.png": "ea054667ac64f42e41b3e94b6647868768dd87c2ac43242e6455eb74b719954a",
    "039-ankle-boot.png": "381fc7de84ee15708608390f8d5e82a187613552c48c88f809aa5179dfdeb513",
    "040-shirt.png": "fb9571a5ede83d5b8969eb287b6d5a817c5ca11c22fab7c6e3a69c251f6db7c8",
    "041-trouser.png": "a2ab93af0fc6cb07faa94917510df86d724ab13bc67fa91c6da8a84f964996f3",
    "042-dress.png": "9d2fef32319f972e7c030a247d1c4e033f3551149de63520ee13dc3871bb5e60",
    "043-sneaker.png": "782f5d10f459f020514ea16137b556eee07e1261f1a1b6ca1c8217750cdb0bf2",
    "044-shirt.png": "ff39fb30725ef826cc69f94016135e07f5d4004472235b984742d0d11cbac925",
    "045-sneaker.png": "d5d292119ae9dafc7123f436392ce6e4fadd8449b79bec1a4d6ac267c630cecd",
    "046-pullover.png": "3ba89b12739b1058b6c3932b51582b2b4b6cbfb40fdda58c199a80e95331a6e7",
    "047-trouser.png": "eb833ce2148f4f116cf9691e2cc4c02a90541891128c86a8b4bf808aa3cdd2d2",
    "048-pullover.png": "417d6a2835c8c2282fd330a2ddac174ae5a485c54d20dd1708aa8fff7eb696bf",
    "049-pullover.png": "72a7340423def9e6ef66513f767c7dc3cc3fec2d10a295917dcd44eaee4cc78e",
    "050-coat.png": "6a86397dd314c5fa8a3aaac0ef6a967526f4edd90183dca61835ee9f0bc07caa",
    "051-coat.png": "388689829720f7a10e2a7e3f81b1328947fb85e1e34e5579a3c1d1ce775be43b",
    "052-sandal.png": "43ebd61a0c32c2e8d3093d0970a5b4608e9ed08f7224acaf46ed73bb899a0ea6",
    "053-bag.png": "7f301d4a2443da97dc2d919324700ad376500cb724782b6ccf097231aaf74650",
    "054-pullover.png": "695200bda298026c904efce4f9566592eb7f6907305205b79660eb8350511a8a",
    "055-pullover.png": "c01bdd9b3193671c82a12f5bf75f9cc035e2e52cbc709a5c7119175e981e9a12",
    "056-bag.png": "21f6cdb988aca1344d9b59e0453f3fad05a356397138cfff5e9c512b2ce0a667",
    "057-coat.png": "3597b52c2e6116088fe9fb98bd92952e6f812c5236d2a8417c6cd5d618207fa9",
    "058-bag.png": "ccf2a50cc5aec66223314b5fb6d3eec44027a324c604431cdf8856584ce85b51",
    "059-tshirt.png": "543c095f7d3256f9e4dc867855313708bfc8fac9f326a22b351fc03b920a6bd4",
    "060-sneaker.png": "6cd9c8f73a52e3fff20136eddad8fef6704f8098ea50ebe0c73e655c01623143",
    "061-sneaker.png": "c3276ff3cf9fb380040a4965bf135cb35c32bdfab82a7ea1f5865897e6c73d1f",
    "062-bag.png": "b0fb75fd84cd1fdf7ba6b49d0ebb52d5dded7b6113cf86b3a507ab5727f1041d",
    "063-sandal.png": "3a371aa6856c66218b476066dd2242eb867e7eba0abdd6277f32f4637275b93c",
    "064-trouser.png": "3f94ce2bad421fa7aa51ba5adbff1084d7693982895488e0ec2a2b12c9dce1ab",
    "065-trouser.png": "21c9d8f0ecd75e8f6e8dd1c493a7d26670694318e7f3e1842440cef5010e9c52",
    "066-pullover.png": "00e2d5c711c97496dc267a942356557e9881cfd69c8ff16f54b75cd26898d17e",
    "067-dress.png": "c2d279ebdebd285f11599be6f688368ddbbebefc476142e236ac096fba82956c",
    "068-ankle-boot.png": "93489ec162bdd0f51a4c163f4f86bf62fb5cbca0ca08611a0c851c3137e95de5",
    "069-bag.png": "689cd2e1325a7f7b776a785efae44f3d83c16f9aa2d3581e71b1292ca9369b75",
    "070-sneaker.png": "1518fedc1f9c721248675ed5c2858b792496809f47d115b881e1a7b566df8935",
    "071-tshirt.png": "42dee8eee0fee5beafeff891a1b97eedde7b6ef1b90f73468c99418ed06f3a76",
    "072-pullover.png": "9e5d9f4c962bd9a562f45559c15529fb95c3927c8329692936c2a7e4946f7b30",
    "073-shirt.png": "3c6693bcd09803509b0752d009e82f56254a9bd11572418b232bb00e8c4de770",
    "074-pullover.png": "889474d6ea36496f7a7f650a1f5ad5731da51eaf6c15dfde2e0ffafa602b57dc",
    "075-dress.png": "eb15d932dc6b5e26a984e5a3b6c17f06ee668a1ddcd0050499b510075d6b5ed7",
    "076-trouser.png": "274482ef49f1ec3dcdad52d39278628f01c22ec18c47add3de138bb1dc293b93",
    "077-pullover.png": "b88c480dc49975413caeb5cc5bfba1f801179835e0d309a7663068084a6348e4",
    "078-bag.png": "79e0dd3ef0c44f92cc0e260a59c7c04b062b908fe16eee82e8873158b84dcb10",
    "079-coat.png": "8bb700e35d620fe7713974c87aef9dee7ac7367b7c148116119337826f52ce97",
    "080-trouser.png": "d70d2f398f452c88ade30bea3522c577408384a7e43b7e6a34a3a36baafbe624",
    "081-bag.png": "515a86918bb7b26839b0696466a00cfd7c33c089f8ee26d9f28343464ffc5cf2",
    "082-sandal.png": "5ffa6e6c49e48eccd200ef1cf7ba33aa598dc04d1289063292467b8638010098",
    "083-ankle-boot.png": "0aada86ceaddcb09a428369100a19861c181d571580e8e5a0463e2c92564e051",
    "084-sandal.png": "d27ac5571f25f2c1ac946bdab457b2bb584da732c59518b6999b40a6ae66c597",
    "085-tshirt.png": "501d63620b482a0e70009c49ffa82fec427b6d5b2b5031e3af8686ae121076ee",
    "086-dress.png": "ab7ae5dfee3bf024589e244f0d2c215204d8a1e322c3c1d960df9bd71a48d55c",
    "087-pullover.png": "b08cb2871b4089f15d949c5f214ffc87bb81cec1a1cd80aad242ae35694ff6fc",
    "088-tshirt.png": "a6b4cefcc9091b8f1dfb9026e80be5a0236497c18026ee10bb696c5247ae6763",
    "089-shirt.png": "b4f6b872981b4737bcfe1a9956cba2a2daecd5eeae73c0157da124563d3c05f2",
    "090-sandal.png": "9037d044a4c859f199547b471c70f6fcc18be2b522501b2b6509d160300a5d80",
    "091-dress.png": "77d4077b5ada130aaf4e106580dcb370870829215099385e2cbfab8cf213088f",
    "092-shirt.png": "f193ed8a38b17acf58106294c72fef742f4a490ea94fbf1f4b801eaf664e4dac",
    "093-sneaker.png": "eef6f189c1423e81770c29a084c2c662be497a15a15656a2fca3ad552cf7f1a6",
    "094-trouser.png": "b69672f68b33ba1b15a7fd5478e166a3be1e29dbc055978e37aa5d38e4c3d500",
    "095-bag.png": "d87c50fc67deb56496cc704cd3e236c6fb3a004379033ffdc4bca19297fa77bb",
    "096-tshirt.png": "0600ea12f2edf1baedf718bb8c5bff5752bab6aeecb1a6f5cf837423a92b1918",
    "097-trouser.png": "f49d222cb044158565ee38e332240cd1da29ae7a16f1591ae77709dc729d2c7e",
    "098-coat.png": "482f2a05019dee914c845e6032cb03ceb8a75773d7643cbaa2257bc9d1b36dc1",
    "099-pullover.png": "d3f133bb594f41a4a5367f3196457e1629dadfd77d57598044817048d0151250",
}


def _files(name: str) -> list[Path]:
    return sorted(path for path in (BUNDLED_DIR / name).iterdir() if path.suffix == ".png")


def test_the_first_100_test_files_are_byte_identical_to_the_earlier_set() -> None:
    files = {path.name: path for path in _files("fashion32-test")}
    assert len(FIRST_100_SHA256) == 100
    changed = [name for name, digest in FIRST_100_SHA256.items()
               if name not in files or hashlib.sha256(files[name].read_bytes()).hexdigest() != digest]
    assert changed == []
    assert sorted(files)[:100] == sorted(FIRST_100_SHA256)  # and they stay the first 100 ids


@pytest.mark.parametrize("name, size", [("fashion32-test", 200), ("fashion32-val", 200)])
def test_each_bundled_set_is_test_set_images_in_index_order(name: str, size: int) -> None:
    """Names are <index>-<label>.png of consecutive test-set indices from the set's first, in sorted order."""
    names = [path.name for path in _files(name)]
    assert len(names) >= size
    indices = [int(re.fullmatch(r"(\d{3,})-([a-z-]+)\.png", n).group(1)) for n in names]
    assert indices == list(range(FIRST_INDEX[name], FIRST_INDEX[name] + len(names)))
    assert (BUNDLED_DIR / name / "LICENSE.md").read_text().startswith(f"# {name}\n")
    assert sum(path.stat().st_size for path in _files(name)) < 200_000  # the package stays small


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the Debian package dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("name", sorted(FIRST_INDEX))
def test_each_file_holds_the_fashion_mnist_test_image_its_name_says(name: str) -> None:
    images = idx_images(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz", pad_to=32)
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    for path in _files(name):
        index, label = path.stem.split("-", 1)
        assert label == LABELS[int(labels[int(index)])], path.name
        expected = (images[int(index), 0].numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(np.array(Image.open(path)), expected), path.name


def test_the_test_and_val_sets_share_no_image() -> None:
    """Disjoint by index and by content (a duplicate picture under another index would leak too)."""
    test, val = _files("fashion32-test"), _files("fashion32-val")
    assert not {p.stem.split("-")[0] for p in test} & {p.stem.split("-")[0] for p in val}
    pixels = lambda paths: {np.array(Image.open(p)).tobytes() for p in paths}  # noqa: E731
    assert not pixels(test) & pixels(val)


def test_every_registered_set_declares_a_valid_split_and_the_bundled_ones_theirs() -> None:
    assert all(set_split(name).split in (None, *SPLITS) for name in IMAGE_SETS)
    assert set_split("fashion32-test").split == "test" and set_split("fashion32-val").split == "val"
    assert set_split("fashion32-test").origin == set_split("fashion32-val").origin  # one source, two splits
    assert set_split("/some/folder").split is None
    assert load_images("fashion32-val", (1, 32, 32), 2).split == "val"


@pytest.mark.parametrize("split", ["validation", "Test", "", 1])
def test_a_set_registered_with_an_unknown_split_is_refused(split: object) -> None:
    with pytest.raises(ValueError, match="valid: train, val, test"):
        register_image_set(f"bad-split-{split!r}", split=split)  # type: ignore[arg-type]
    assert f"bad-split-{split!r}" not in IMAGE_SETS


def test_bench_list_shows_each_sets_split() -> None:
    listed = CliRunner().invoke(cli, ["list"]).output
    for name in IMAGE_SETS:
        split = set_split(name).split or "not declared"
        assert re.search(rf"^  {re.escape(name)}( \(alias [^)]*\))? \(split {split}\): ", listed, re.M), name


def test_the_default_run_is_still_the_first_16_test_images(tmp_path: Path) -> None:
    """`bench run` naming no images nor count: fashion32-test's first 16, as before the set grew; run.json
    records the set and its split."""
    done = CliRunner().invoke(cli, ["run", "--solver", "hole-fill", "--op", "inpaint", "--out", str(tmp_path / "run"),
                                    "--no-progress"])
    assert done.exit_code == 0, done.output
    images = json.loads((tmp_path / "run" / "run.json").read_text())["images"]
    assert (images["source"], images["split"]) == ("fashion32-test", "test")
    assert images["ids"] == [name.removesuffix(".png") for name in sorted(FIRST_100_SHA256)[:16]]
    assert "warning" not in done.stderr
