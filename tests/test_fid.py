"""FID (ipbench.results.fid) with random Inception weights written to a temporary torch hub cache.

The TF FID weights are not on PyPI, so the numbers here are not FIDs anyone publishes: the tests check
the plumbing (weights from the hub cache, never unpickled; pytorch-fid's network and Fréchet distance;
cells, caching, tables) and the distance's properties, not reference values.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ipbench.errors import UsageError
from ipbench.results import fid
from tests.conftest import ShellPayload

pytest.importorskip("pytorch_fid")


@pytest.fixture
def fid_hub(hub_cache: Path) -> Path:
    """An empty torch hub cache for the Inception file (conftest.hub_cache)."""
    return hub_cache


def write_random_inception(folder: Path) -> None:
    """Random weights under the FID Inception's keys: torchvision's Inception v3 with 1008 classes and no
    auxiliary head has the same parameters (pytorch-fid's FID blocks change only their pooling)."""
    from torchvision.models import inception_v3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=True)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / fid.FID_WEIGHTS_FILE)


def images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


def test_missing_weights_say_where_they_go(fid_hub: Path) -> None:
    with pytest.raises(UsageError) as info:
        fid.features(images(2, 0), torch.device("cpu"))
    message = str(info.value)
    assert "\n" not in message and fid.FID_WEIGHTS_FILE in message and str(fid_hub) in message


def test_a_pickle_with_code_is_refused_and_not_run(fid_hub: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    fid_hub.mkdir(parents=True)
    torch.save({"x": ShellPayload(marker)}, fid_hub / fid.FID_WEIGHTS_FILE)
    with pytest.raises(UsageError, match="FID Inception weights .*: refused, not a plain file of tensors"):
        fid.inception(torch.device("cpu"))
    assert not marker.exists()


def test_other_weights_are_refused_naming_the_file(fid_hub: Path) -> None:
    fid_hub.mkdir(parents=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(8, 3, 3, 3)}, fid_hub / fid.FID_WEIGHTS_FILE)
    with pytest.raises(UsageError, match=f"{fid.FID_WEIGHTS_FILE}: not the FID Inception weights"):
        fid.inception(torch.device("cpu"))


def test_features_are_pytorch_fids_pool3(fid_hub: Path) -> None:
    """2048 features per image from the cached weights; grayscale counts as its RGB repeat; the order and
    the other images of a batch change nothing."""
    write_random_inception(fid_hub)
    x = images(3, 0)
    a = fid.features(x, torch.device("cpu"))
    assert a.shape == (3, fid.FEATURES) and a.dtype == np.float64 and np.isfinite(a).all() and a.std() > 0
    np.testing.assert_allclose(fid.features(x[[2, 0]], torch.device("cpu")), a[[2, 0]], rtol=0, atol=1e-5)
    grey = x[:, :1]
    np.testing.assert_allclose(fid.features(grey, torch.device("cpu")),
                               fid.features(grey.expand(-1, 3, -1, -1), torch.device("cpu")), rtol=0, atol=0)
    state = torch.load(fid_hub / fid.FID_WEIGHTS_FILE, weights_only=True)
    first_conv = fid.inception(torch.device("cpu")).blocks[0][0].conv.weight
    assert torch.equal(first_conv, state["Conv2d_1a_3x3.conv.weight"])


def test_frechet_distance_of_gaussians_has_its_closed_form() -> None:
    """For features with diagonal covariances, FID = |mu_a - mu_b|^2 + sum (s_a + s_b - 2 sqrt(s_a s_b))
    over the variances s (ddof 1); the same set gives 0, and the distance is symmetric."""
    g = np.random.default_rng(0)
    a = g.normal(0.0, 1.0, (4000, 3)) * [1.0, 2.0, 0.5]
    b = g.normal(1.0, 1.0, (3000, 3)) * [3.0, 1.0, 0.5]
    va, vb = a.var(axis=0, ddof=1), b.var(axis=0, ddof=1)
    # the sample covariances are only nearly diagonal: compare with their own diagonal's closed form loosely
    closed = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(va + vb - 2 * np.sqrt(va * vb))
    assert fid.frechet_distance(a, b) == pytest.approx(closed, rel=0.02)
    assert fid.frechet_distance(a, b) == pytest.approx(fid.frechet_distance(b, a), rel=1e-9)
    assert abs(fid.frechet_distance(a, a)) < 1e-6
    assert np.isnan(fid.frechet_distance(a[:1], b))
    assert np.isnan(fid.frechet_distance(np.where(a > 3, np.inf, a), b))


@pytest.mark.parametrize("n, dims", [(3000, 64), (200, 256)])  # full-rank covariances, then singular ones
def test_frechet_distance_is_pytorch_fids(n: int, dims: int) -> None:
    """The eigenvalue form of the trace term gives pytorch-fid's calculate_frechet_distance (scipy sqrtm),
    also with fewer images than features (measured: 1e-14 and 1e-8 relative; 2048-d, 1000 images: 3e-8).
    Where the covariances are singular, pytorch-fid's sqrtm may itself fail ("Imaginary component", seen
    with 300 x 512 and another seed under multithreaded BLAS): the case kept here is one where it does not."""
    import warnings

    from pytorch_fid.fid_score import calculate_frechet_distance

    g = np.random.default_rng(0)
    a = g.normal(size=(n, dims))
    b = g.normal(0.3, 1.2, size=(n, dims)) + 0.5 * a[:, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on the singular case and a deprecated argument
        expected = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_a_run_asking_for_fid_gets_a_column_per_operator_cached_in_fid_json(
        fid_hub: Path, tmp_path: Path, small_model_path) -> None:
    """`--metric fid`: no row holds it; the table has one FID per (solver, operator) over the saved PNGs,
    and a rerun of the table reads fid.json (here: with the weights gone) while the rows are unchanged."""
    from click.testing import CliRunner

    from ipbench.cli import cli

    write_random_inception(fid_hub)
    out = tmp_path / "run"
    args = ["run", "--solver", "tweedie", "--solver", "hole-fill", "--op", "denoise", "--model", str(small_model_path),
            "--images", "photos", "--num-images", "4", "--metric", "fid", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "denoise FID ↓" in result.output and "FID: pytorch-fid InceptionV3 pool3" in result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert all("fid" not in r for r in rows)
    cached = json.loads((out / fid.CACHE_FILE).read_text())
    assert set(cached) == {"tweedie | denoise", "hole-fill | denoise"} and all(c["images"] == 4 for c in cached.values())
    assert all(np.isfinite(c["fid"]) and c["fid"] > 0 for c in cached.values())
    meta = json.loads((out / "run.json").read_text())
    assert "calculate_frechet_distance" in meta["conventions"]["metrics"]["fid"]["statistics"]

    (fid_hub / fid.FID_WEIGHTS_FILE).unlink()
    fid.inception.cache_clear()
    again = CliRunner().invoke(cli, ["table", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / fid.CACHE_FILE).read_text()) == cached
    table = (out / "table.md").read_text()
    assert f"{cached['tweedie | denoise']['fid']:.2f}" in table and f"{cached['hole-fill | denoise']['fid']:.2f}" in table


def test_a_run_asking_for_fid_without_its_weights_stops_before_it_starts(
        fid_hub: Path, tmp_path: Path, small_model_path) -> None:
    from click.testing import CliRunner

    from ipbench.cli import cli

    result = CliRunner().invoke(cli, ["run", "--solver", "hole-fill", "--op", "denoise", "--model", str(small_model_path),
                                      "--images", "photos", "--num-images", "1", "--metric", "fid",
                                      "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2 and fid.FID_WEIGHTS_FILE in result.output
    assert not (tmp_path / "r" / "rows.jsonl").exists()


def test_a_damaged_fid_json_is_computed_again_not_trusted(fid_hub: Path, tmp_path: Path, small_model_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """fid.json is a cache: whatever damage it has (not JSON, not UTF-8, the wrong type, an entry whose value
    or count is not a number), `bench table` recomputes the FID and rewrites the cache whole. The features
    are a cheap stand-in for Inception's (what is tested is the cache, not the network)."""
    from click.testing import CliRunner

    from ipbench.cli import cli

    write_random_inception(fid_hub)  # the run's preflight looks for the file
    computed = []

    def cheap_features(images, device):
        computed.append(len(images))
        return images.flatten(1)[:, :8].double().numpy()

    monkeypatch.setattr(fid, "features", cheap_features)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--solver", "hole-fill", "--op", "denoise", "--model",
                                      str(small_model_path), "--images", "photos", "--num-images", "2", "--metric", "fid",
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    cache_path = out / fid.CACHE_FILE
    good = json.loads(cache_path.read_text())
    entry = good["hole-fill | denoise"]
    damages = {"truncated": cache_path.read_bytes()[:20], "not utf-8": b"\xff" + cache_path.read_bytes(),
               "a list": b"[]", "null": b"null",
               "fid a string": json.dumps({"hole-fill | denoise": {**entry, "fid": "12.5"}}).encode(),
               "fid a bool": json.dumps({"hole-fill | denoise": {**entry, "fid": True}}).encode(),
               "images a string": json.dumps({"hole-fill | denoise": {**entry, "images": "2"}}).encode(),
               "entry a number": json.dumps({"hole-fill | denoise": 3}).encode()}
    for kind, damaged in damages.items():
        cache_path.write_bytes(damaged)
        calls = len(computed)
        again = CliRunner().invoke(cli, ["table", str(out)])
        assert len(computed) > calls, kind  # recomputed, not read from the damaged cache
        assert again.exit_code == 0, (kind, again.output)
        rewritten = json.loads(cache_path.read_text())
        assert set(rewritten) == set(good), kind
        again_entry = rewritten["hole-fill | denoise"]
        assert (again_entry["images"], again_entry["rows_sha256"]) == (entry["images"], entry["rows_sha256"]), kind
        assert again_entry["fid"] == pytest.approx(entry["fid"], rel=1e-6), kind
        assert f"{again_entry['fid']:.2f}" in (out / "table.md").read_text(), kind
