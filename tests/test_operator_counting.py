"""The operator-call counter of benchmarks/solver_speed.py (operators/counting.py): on toy physics, a solver's
sequence of calls gives exact counts, forward-only and with-gradient calls kept apart, and the counting copy
behaves as the operator (its class checks, its results, its tensors)."""
from __future__ import annotations

import copy

import torch
from deepinv.physics import Inpainting, LinearPhysics, Physics

from ipbench.operators.counting import count_calls
from ipbench.solvers.base import misfit_gradient
from ipbench.solvers.reddiff import has_own_inverse


class Square(Physics):
    """A(x) = x^2, with an A^+ of its own that calls A inside (a nested call, part of the dagger's cost)."""

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return x.square()

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.A(y.clamp_min(0).sqrt()).sqrt()


class Cube(Physics):
    """A(x) = x^3 with deepinv's generic A_dagger (none of its own)."""

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return x**3


class Double(LinearPhysics):
    """A = 2 I, with an `exact_svd` as the operators that give their own have."""

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return 2 * x

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return 2 * y

    def exact_svd(self, like: torch.Tensor) -> None:
        return None


def batch(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))


def test_forward_and_gradient_calls_of_a_dps_and_daps_like_sequence_are_counted_apart():
    op, counts = count_calls(Square())
    x, y = batch(), batch().square()
    with torch.no_grad():
        op.A(x)                                    # a forward-only call on 3 images
        op.A(x[:1])                                # image by image, as deepinv's DPS: 1 image
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((op.A(x_var) - y).square().sum(), x_var)  # DPS's gradient: A with backward
    torch.testing.assert_close(grad, 4 * x * (x.square() - y))
    with torch.enable_grad():
        op.A(x.clone().requires_grad_(True))       # in a graph, never backpropagated: a forward
    vjp = op.A_vjp(x, torch.ones_like(x))          # DAPS: deepinv's autograd A_vjp (its inner A not counted)
    torch.testing.assert_close(vjp, 2 * x)
    op.A_dagger(y)                                 # its own A^+: its inner A call is part of it
    assert (counts.forward, counts.backward, counts.vjp, counts.dagger) == (3 + 1 + 3 + 3, 3, 3, 3)
    assert (counts.forward_only, counts.with_gradient, counts.adjoint, counts.svd) == (7, 6, 0, 0)
    assert counts.depth == 0
    misfit_gradient(op, y, x)                      # the solvers' shared misfit gradient: A with backward
    assert (counts.forward_only, counts.with_gradient) == (7, 9)


def test_linear_adjoint_vjp_and_svd_are_counted_as_what_they_cost():
    op, counts = count_calls(Double())
    x = batch(2)
    op.A_vjp(x, x)            # deepinv's LinearPhysics.A_vjp is A_adjoint: one adjoint, no forward
    op.A_adjoint(x)
    op.exact_svd(x)           # counted in calls, not images
    op.exact_svd(x)
    assert (counts.forward, counts.backward, counts.vjp, counts.adjoint, counts.svd) == (0, 0, 0, 4, 2)


def test_the_counting_copy_behaves_as_the_operator():
    square, cube = Square(), Cube()
    assert has_own_inverse(count_calls(square)[0]) and not has_own_inverse(count_calls(cube)[0])
    op, counts = count_calls(cube)
    assert isinstance(op, Cube) and type(op).__name__ == "Cube" and not hasattr(op, "A_adjoint")
    torch.testing.assert_close(op.A(batch()), batch() ** 3)
    cube.A(batch())           # the original stays uncounted
    assert counts.forward == 3


def test_a_deep_copy_counts_into_the_same_counts_and_the_original_keeps_its_tensors():
    mask = (batch(2) > 0).float()
    physics = Inpainting(img_size=(1, 4, 4), mask=mask)
    op, counts = count_calls(physics)
    single = copy.deepcopy(op)    # a solver may slice a batched mask this way
    single.mask = mask[:1]
    single.A(batch(1))
    op.mask = mask[1:]            # a tensor set on the counting copy stays off the original
    assert counts.forward == 1 and isinstance(single, Inpainting)
    assert physics.mask.shape[0] == 2 and torch.equal(physics.mask, mask)
