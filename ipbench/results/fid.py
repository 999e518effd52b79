"""FID between a solver's reconstructions and the truth images, as DPS and its successors report it.

Fréchet Inception Distance (Heusel et al. 2017, sec. 3): ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))
over the 2048-d pool3 features of pytorch-fid's port of the TF FID Inception. One value per (solver,
operator): the saved 8-bit PNG reconstructions against the truth images of the same rows. The trace term
comes from a symmetric eigendecomposition (`frechet_distance`), which stays real with fewer images than
features. The weights (`pt_inception-2015-12-05-6726825d.pth`) are read from torch's hub cache by
ipbench.weights; nothing is downloaded. docs/metrics.md has the details and the bias with few images.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from ipbench.data import load_png
from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.json_files import NUMBER_OR_NULL, STRING, DamagedFile, has_fields, integer, read_json
from ipbench.run_paths import reconstruction_png, truth_png
from ipbench.weights import hub_checkpoints, read_state_dict

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
FEATURES = 2048  # pool3
BATCH = 50  # images per Inception call (pytorch-fid's default)
CACHE_FILE = "fid.json"
CACHE_ENTRY = {"fid": NUMBER_OR_NULL, "images": integer(0), "rows_sha256": STRING}  # per "solver | operator"


def fid_weights() -> Path:
    """The FID Inception weights in torch.hub.get_dir()/checkpoints; a one-line UsageError if absent."""
    path = hub_checkpoints() / FID_WEIGHTS_FILE
    if not path.is_file():
        raise UsageError(f"FID needs the TF FID Inception weights: put {FID_WEIGHTS_FILE} ({FID_WEIGHTS_URL}) "
                         f"in {path.parent}")
    return path


def _pytorch_fid_inception():
    try:
        from pytorch_fid import inception
    except ImportError:
        raise UsageError("FID needs pytorch-fid: pip install -e '.[fid]' in the ipbench folder "
                         "(or pip install pytorch-fid)") from None
    return inception


@functools.lru_cache(maxsize=None)
def inception(device: torch.device) -> nn.Module:
    """pytorch-fid's InceptionV3 up to pool3, frozen, holding the cached weights (checked, never unpickled)."""
    module = _pytorch_fid_inception()
    path = fid_weights()
    state = read_state_dict(path, "FID Inception weights")
    try:  # pytorch-fid builds the network and loads "from the URL": hand it the dict read above instead
        with mock.patch.object(module, "load_state_dict_from_url", lambda *args, **kwargs: state):
            net = module.InceptionV3([module.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURES]])
    except RuntimeError as exc:
        raise UsageError(f"{path}: not the FID Inception weights ({str(exc).splitlines()[0]})") from None
    return net.eval().requires_grad_(False).to(device)


def features(images: Tensor, device: torch.device) -> np.ndarray:
    """(N, 2048) float64 pool3 features of images (N, C, H, W) in [0, 1]; grayscale is repeated to RGB."""
    if images.shape[1] not in (1, 3):
        raise UsageError(f"FID needs 1 or 3 channels, got {images.shape[1]}")
    net = inception(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            batch = images[start:start + BATCH].to(device).float().clamp(0, 1).expand(-1, 3, -1, -1)
            out.append(net(batch)[0].flatten(1).double().cpu())
    return torch.cat(out).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (rows = images), from their means and covariances (np.cov, ddof 1, as
    pytorch-fid). Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric
    S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues: this is pytorch-fid's value where its scipy
    sqrtm converges (tested), and stays real when the covariances are singular, as they are with fewer
    images than the 2048 features (there pytorch-fid can fail with "Imaginary component")."""
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")  # no covariance from one image; no distance from overflowed features
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(s_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    cross = np.sqrt(np.linalg.eigvalsh(root_a @ s_b @ root_a).clip(min=0)).sum()
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def cell_fids(run_dir: Path, rows: Sequence[dict], device: torch.device) -> dict[tuple[str, str], tuple[float, int]]:
    """{(solver, operator): (FID, images)} over the ok rows of each cell: reconstructions as saved under
    images/<operator>/<solver>/, against the truth images of the same rows. Values are kept in fid.json
    with a fingerprint of the cell's rows and reused while the rows are the same."""
    cache_path = run_dir / CACHE_FILE
    cache = _read_cache(cache_path)
    cells: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row.get("status") == "ok":
            cells.setdefault((row["solver"], row["operator"]), []).append(row)
    truth: dict[str, np.ndarray] = {}  # image id -> feature row, shared by every cell
    result = {}
    for (solver, operator), cell in cells.items():
        cell.sort(key=lambda r: (r["image"], str(r["seed"])))
        # "solver | operator", unless a label holds "|" and two cells could share that key
        key = f"{solver} | {operator}" if "|" not in solver + operator else json.dumps([solver, operator])
        fingerprint = hashlib.sha256(json.dumps([[r["image"], str(r["seed"])] for r in cell]).encode()).hexdigest()
        if cache.get(key, {}).get("rows_sha256") != fingerprint:
            recon = features(_saved([reconstruction_png(run_dir, operator, solver, r["image"], r["seed"])
                                     for r in cell]), device)
            missing = sorted({r["image"] for r in cell} - truth.keys())
            if missing:
                found = features(_saved([truth_png(run_dir, i) for i in missing]), device)
                truth.update(zip(missing, found))
            reference = np.stack([truth[i] for i in sorted({r["image"] for r in cell})])
            value = frechet_distance(recon, reference)
            cache[key] = {"fid": value if np.isfinite(value) else None, "images": len(cell), "rows_sha256": fingerprint}
        result[(solver, operator)] = (math.nan if cache[key]["fid"] is None else cache[key]["fid"], cache[key]["images"])
    atomic_write_text(cache_path, json.dumps(cache, indent=2) + "\n")
    return result


def _read_cache(path: Path) -> dict[str, Any]:
    """fid.json's well-formed entries. It is a cache: a damaged file or entry (not JSON, a value of the wrong
    type) is computed again and rewritten, never trusted."""
    try:
        cache = read_json(path, "it is recomputed")
    except (FileNotFoundError, DamagedFile):
        return {}
    return {k: v for k, v in cache.items() if has_fields(v, CACHE_ENTRY)} if isinstance(cache, dict) else {}


def _saved(paths: Sequence[Path]) -> Tensor:
    """The run's saved images as one batch; a one-line UsageError naming a missing file."""
    for path in paths:
        if not path.is_file():
            raise UsageError(f"FID reads the run's saved images, and {path} is missing")
    return torch.stack([load_png(path) for path in paths])
