"""deepinv-dps (ipbench/solvers/deepinv_dps.py): a batch in one deepinv sampler run gives each image what it gets
alone, so the solver's speed can be compared with batched solvers and its results do not depend on the batch."""
from __future__ import annotations

import pytest
import torch

from ipbench.data import load_images
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from tests.conftest import SMALL_SHAPE, generators


@pytest.mark.parametrize("step", ["deepinv", "paper"])
def test_a_batch_solves_each_image_as_it_is_solved_alone(small_model, step, monkeypatch):
    """inpaint-random draws a different mask per image, so the batched physics is really per image; each image's
    generator is fresh for both runs, and the batch's images must come out as their one-image runs do. The batch
    is one sampler run: every network call sees all three images."""
    x = load_images("photos", SMALL_SHAPE, num_images=3).images
    op = Operator.create("inpaint-random", {})
    physics = op.build(SMALL_SHAPE, generators(3), torch.device("cpu"))
    y = measure(physics, x, generators(3))
    solver = SOLVERS.get("deepinv-dps").create({"num_steps": "6", "weight": "0.5", "step": step})
    batch_sizes = []
    eps = small_model.eps
    monkeypatch.setattr(small_model, "eps", lambda x_t, t: batch_sizes.append(x_t.shape[0]) or eps(x_t, t))
    batched = solver.solve(y, physics, small_model, generators(3, seed=7))
    assert batch_sizes and set(batch_sizes) == {3}
    for i in range(3):
        alone = op.build(SMALL_SHAPE, generators(3)[i:i + 1], torch.device("cpu"))
        single = solver.solve(y[i:i + 1], alone, small_model, generators(3, seed=7)[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], single, rtol=0, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-2)  # different images, masks and noise


def test_different_generators_give_different_samples(small_model):
    """The per-image draws really come from the generators given (a sampler left on its own generator would not
    change with them)."""
    x = load_images("photos", SMALL_SHAPE, num_images=1).images
    physics = Operator.create("denoise", {}).build(SMALL_SHAPE, generators(1), torch.device("cpu"))
    y = measure(physics, x, generators(1))
    solver = SOLVERS.get("deepinv-dps").create({"num_steps": "6"})
    a, b = (solver.solve(y, physics, small_model, generators(1, seed=s)) for s in (1, 2))
    again = solver.solve(y, physics, small_model, generators(1, seed=1))
    assert torch.equal(a, again) and not torch.allclose(a, b, atol=1e-3)
