"""RePaint (solvers/repaint.py): the resampling schedule, NFE, the measurement kept on known pixels, and
the operators it applies to."""
from __future__ import annotations

import pytest
import torch

from ipbench.models.counting import CountingModel
from ipbench.operators import Operator, measure
from ipbench.solvers import SOLVERS
from ipbench.solvers.repaint import jump_schedule, reverse_steps
from tests.conftest import SMALL_SHAPE, generators


def test_jump_schedule_by_hand():
    """steps 5, jump_length 2, jump_n_sample 2: jump points j in {0, 2} (j < steps - L = 3), each passed twice
    on the way down; traced by hand from the paper's Algorithm 1 and the official get_schedule_jump."""
    assert jump_schedule(5, 2, 2) == [4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]


@pytest.mark.parametrize("steps, length, n_sample", [(250, 10, 10), (100, 10, 3), (37, 5, 4), (8, 10, 10), (50, 1, 2)])
def test_jump_schedule_shape(steps, length, n_sample):
    """From steps - 1 to -1 in moves of +-1, never above steps - 1; every jump point j = 0, L, 2L, ... <
    steps - L adds (n_sample - 1) L forward and as many reverse moves, so the reverse moves (NFE) are
    steps + J (n_sample - 1) L, J = len(range(0, steps - L, L)). The paper's 250, 10, 10: 250 + 24 * 9 * 10 = 2410."""
    order = jump_schedule(steps, length, n_sample)
    assert order[0] == steps - 1 and order[-1] == -1
    assert all(abs(b - a) == 1 for a, b in zip(order[:-1], order[1:]))
    assert max(order) == steps - 1 and min(order) == -1
    extra = len(range(0, steps - length, length)) * (n_sample - 1) * length
    assert reverse_steps(order) == steps + extra
    assert len(order) - 1 == steps + 2 * extra
    if (steps, length, n_sample) == (250, 10, 10):
        assert reverse_steps(order) == 2410


def test_no_resampling_is_the_plain_reverse_process():
    assert jump_schedule(6, 10, 1) == [5, 4, 3, 2, 1, 0, -1]
    assert jump_schedule(6, 2, 1) == [5, 4, 3, 2, 1, 0, -1]


def _inpaint(small_model, op_name: str, sigma_y: float, n: int = 3):
    x = small_model.sample(n, generators(n, 7)).clamp(0, 1)
    gens = generators(n, 11)
    physics = Operator.create(op_name, {"sigma_y": sigma_y}).build(SMALL_SHAPE, gens, torch.device("cpu"))
    return x, physics, measure(physics, x, gens)


@pytest.mark.parametrize("noisy_y", ["match", "ignore"])
@pytest.mark.parametrize("op_name", ["inpaint-box", "inpaint-random"])
def test_noiseless_measurement_is_kept_on_the_known_pixels(small_model, op_name, noisy_y):
    """With sigma_y = 0 the last step writes sqrt(1) y + 0 noise on the mask: the output is y there (to
    float32 round-off of the [0, 1] <-> [-1, 1] round trip), with and without resampling."""
    x, physics, y = _inpaint(small_model, op_name, 0.0)
    known = physics.mask.bool().expand_as(y)
    for jumps in ({"jump_n_sample": 1}, {"jump_length": 2, "jump_n_sample": 2}):
        solver = SOLVERS.get("repaint").create({"steps": 10, "noisy_y": noisy_y, **jumps})
        x_hat = solver.solve(y, physics, small_model, generators(3, 100))
        assert float((x_hat - y)[known].abs().max()) < 1e-6
        assert float((x_hat - x)[~known].abs().mean()) > 1e-3  # the hole is generated, not copied


def test_noisy_measurement_is_denoised_on_the_known_pixels_with_match(small_model):
    """sigma_y = 0.1: `ignore` returns the noisy y on the mask (error sigma_y^2 per pixel); `match` stops
    injecting below the time matched to sigma_y, so the last reverse steps denoise the known pixels. On the
    Gaussian prior (per-pixel prior std ~0.1-0.2 in image units) that must beat y's own error clearly."""
    x, physics, y = _inpaint(small_model, "inpaint-box", 0.1, n=8)
    known = physics.mask.bool().expand_as(y)
    ignore, match = (SOLVERS.get("repaint").create({"steps": 50, "noisy_y": mode}).solve(y, physics, small_model,
                                                                                         generators(8, 1))
                     for mode in ("ignore", "match"))
    torch.testing.assert_close(ignore[known], y[known], rtol=0, atol=1e-6)  # float32 round trip
    mse_y = float((y - x)[known].square().mean())
    mse_match = float((match - x)[known].square().mean())
    assert 0.005 < mse_y < 0.015  # sigma_y^2 = 0.01
    assert mse_match < 0.6 * mse_y, (mse_match, mse_y)


def test_nfe_is_the_number_of_reverse_moves(small_model):
    x, physics, y = _inpaint(small_model, "inpaint-box", 0.025)
    model = CountingModel(small_model)
    SOLVERS.get("repaint").create({"steps": 20, "jump_length": 3, "jump_n_sample": 3}).solve(
        y, physics, model, generators(3))
    assert model.nfe == reverse_steps(jump_schedule(20, 3, 3)) == 20 + 6 * 2 * 3


@pytest.mark.parametrize("op_name, applies", [("inpaint-box", True), ("inpaint-random", True), ("deblur-gauss", False),
                                              ("deblur-motion", False), ("sr", False), ("denoise", False)])
def test_applies_to_masks_only(op_name, applies):
    gens = generators(2)
    physics = Operator.create(op_name).build(SMALL_SHAPE, gens, torch.device("cpu"))
    reason = SOLVERS.get("repaint").create().unsupported(physics, torch.zeros(2, *SMALL_SHAPE))
    assert (reason is None) == applies
    if not applies:
        assert "mask" in reason
