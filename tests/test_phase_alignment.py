"""Phase retrieval scored up to its trivial ambiguities: every declared equivalent has the same Fourier
magnitude as the image (and nothing else does), a rotated, negated or translated copy of the truth scores as
the truth itself, and a run records the alignment beside the unaligned metrics."""
from __future__ import annotations

import math

import pytest
import torch

from ipbench.benchmark.runner import run
from ipbench.benchmark.spec import build_spec
from ipbench.data import load_images
from ipbench.operators import Operator
from ipbench.results.alignment import aligned_to_truth
from ipbench.results.metrics import psnr
from ipbench.results.rows import run_rows
from ipbench.results.table import write_tables
from tests.conftest import generators

SHAPE = (1, 32, 32)


def phase(convention: str):
    return Operator.create("phase-retrieval", {"convention": convention}).build(SHAPE, generators(1), "cpu")


@pytest.fixture(scope="module")
def truth() -> torch.Tensor:
    """Two fashion32 test images (black borders: translates of them are ambiguities under `daps`)."""
    return load_images("fashion32-test", SHAPE, num_images=2).images


@pytest.mark.parametrize("convention", ["dps", "daps"])
def test_every_equivalent_has_the_images_fourier_magnitude(convention, truth) -> None:
    physics = phase(convention)
    image = truth[0].double()
    equivalents = physics.equivalents(image)
    assert {"identity", "rot180"} <= set(equivalents)
    assert ("negated" in equivalents) == (convention == "dps")  # 2c - x leaves [0, 1] for c = 0
    reference = physics.A(image[None])
    for name, candidate in equivalents.items():
        torch.testing.assert_close(physics.A(candidate[None]), reference, rtol=0, atol=1e-9, msg=name)
    different = image.roll(1, dims=-1) if convention == "dps" else image.flip(-1)  # not an ambiguity
    assert (physics.A(different[None]) - reference).abs().max() > 1e-3


def test_translations_are_found_only_over_a_blank_border(truth) -> None:
    image = truth[0]
    blank = (image.abs().amax(0) < 0.5 / 255)
    top = int(blank.all(1).int().cumprod(0).sum())
    shifts = [n for n in phase("daps").equivalents(image) if n.startswith("identity+shift")]
    assert f"identity+shift({-min(top, 8)},0)" in shifts and f"identity+shift({-min(top, 8) - 1},0)" not in shifts
    assert not any("shift" in n for n in phase("dps").equivalents(image))  # c = 1/2: no border equals c


@pytest.mark.parametrize("convention,name,make", [
    ("dps", "rot180", lambda x: x.flip(-2, -1)),
    ("dps", "rot180+negated", lambda x: 1 - x.flip(-2, -1)),
    ("dps", "negated", lambda x: 1 - x),
    ("daps", "rot180", lambda x: x.flip(-2, -1)),
    ("daps", "identity+shift(1,-1)", lambda x: x.roll((-1, 1), dims=(-2, -1))),
])
def test_an_equivalent_copy_of_the_truth_scores_as_the_truth(convention, name, make, truth) -> None:
    physics = phase(convention)
    copies = torch.stack([make(x) for x in truth])
    assert (psnr(copies, truth) < 30).all()  # unaligned, the copy is far from the truth
    aligned, names = aligned_to_truth(physics, copies, truth)
    assert names == [name, name]
    torch.testing.assert_close(aligned, truth, rtol=0, atol=1e-6)  # 1 - (1 - x) rounds in float32
    assert aligned_to_truth(physics, truth, truth)[1] == ["identity", "identity"]


def test_operators_without_ambiguities_are_scored_as_they_are(truth) -> None:
    blur = Operator.create("deblur-gauss").build(SHAPE, generators(2), "cpu")
    assert aligned_to_truth(blur, truth, truth) is None


@pytest.mark.slow
def test_a_run_records_the_alignment_and_the_raw_metrics(tmp_path) -> None:
    spec = build_spec(["dps"], ["phase-retrieval", "inpaint-box"], ["dps.steps=3"], model="fashion32",
                      images="fashion32-test", num_images=2)
    out = run(spec, out=tmp_path / "r", progress=False).out
    rows = run_rows(out)
    assert "phase-retrieval: scored after alignment to the truth" in write_tables(out)
    for row in rows:
        assert row["status"] == "ok"
        if row["operator"] == "phase-retrieval":
            assert isinstance(row["alignment"], str) and row["alignment"]
            for metric in ("psnr", "ssim"):  # the aligned score is the best, so never below the raw one
                assert math.isfinite(row[f"{metric}_raw"])
            assert row["psnr"] >= row["psnr_raw"] - 1e-9
        else:
            assert "alignment" not in row or row["alignment"] in (None, "") or \
                (isinstance(row["alignment"], float) and math.isnan(row["alignment"]))
