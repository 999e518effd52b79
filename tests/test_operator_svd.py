"""operators/svd.py: the SVDs that spectral solvers (DDRM, DiffPIR, PiGDM) use are the operators' own."""
from __future__ import annotations

import pytest
import torch

from ipbench.operators import Operator
from ipbench.operators.svd import DiagonalSVD, SeparableSVD, operator_svd, svd_problem

SHAPE = (3, 16, 16)


def _physics(name: str, params: dict, n: int = 3):
    generators = [torch.Generator().manual_seed(i) for i in range(n)]
    return Operator.create(name, params).build(SHAPE, generators, torch.device("cpu"))


@pytest.mark.parametrize("name, params, kind", [
    ("inpaint-box", {}, DiagonalSVD), ("inpaint-random", {}, DiagonalSVD), ("denoise", {}, DiagonalSVD),
    ("deblur-gauss", {}, SeparableSVD), ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0}, SeparableSVD),
    ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0, "padding": "circular"}, SeparableSVD),
    ("deblur-gauss", {"kernel_size": 5, "sigma": 1.0, "padding": "valid"}, SeparableSVD),
    ("sr", {}, SeparableSVD), ("sr", {"factor": 2, "filter": "none"}, SeparableSVD),
    ("sr", {"factor": 2, "filter": "gaussian", "padding": "circular"}, SeparableSVD),
])
def test_the_svd_reproduces_the_operator(name, params, kind):
    """A x = U diag(s) V^T x, V^T is orthogonal (V V^T x = x) and U^T A x = s V^T x, to float32 round-off,
    on a random batch; the factors are computed from probes, so this checks them against deepinv's A."""
    physics = _physics(name, params)
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(7))
    svd = operator_svd(physics, x)
    assert isinstance(svd, kind)
    y = physics.A(x)
    assert torch.allclose(svd.U(svd.singular * svd.Vt(x)), y, atol=1e-5)
    assert torch.allclose(svd.V(svd.Vt(x)), x, atol=1e-5)
    assert torch.allclose(svd.Ut(y), svd.singular * svd.Vt(x), atol=1e-5)
    assert float(svd.singular.min()) >= 0


def test_per_image_masks_give_per_image_singular_values():
    physics = _physics("inpaint-random", {})
    svd = operator_svd(physics, torch.zeros(3, *SHAPE))
    assert svd.singular.shape[0] == 3 and not torch.equal(svd.singular[0], svd.singular[1])
    assert torch.equal(svd.singular, physics.mask.expand_as(svd.singular))


def test_a_non_separable_kernel_has_no_svd_and_says_why():
    physics = _physics("deblur-motion", {})
    like = torch.zeros(3, *SHAPE)
    assert operator_svd(physics, like) is None
    assert "not a mask, the identity, or a separable linear operator" in svd_problem(physics, like)
    assert svd_problem(_physics("deblur-gauss", {}), like) is None
