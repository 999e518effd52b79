"""Noise models (operators/noise.py): their moments, their draws against deepinv's, per-image draws on every
operator, the Gaussian draw unchanged, and one-line errors for values that do not fit together.

Moment tolerances come from the sample size: 5 standard errors of the sample mean (sqrt(var / n)) and of the
sample variance (sqrt((mu4 - var^2) / n), mu4 the central fourth moment); the draws are seeded, so a test
either always passes or always fails.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from deepinv.physics import GaussianNoise, PoissonGaussianNoise, PoissonNoise
from PIL import Image

from ipbench.errors import UsageError
from ipbench.operators import OPERATORS, Operator, measure, noise_level
from ipbench.operators.noise import DEFAULT_RATE, noise_model

from .conftest import generators, skip_if_tested_elsewhere

F64 = torch.float64
LEVELS = [0.0, 0.02, 0.3, 1.0, 1.7]  # intensities z = A x; 0.02 at rate 20 is a mean count of 0.4
PER_LEVEL = 40_000


def _levels(n_images: int = 2) -> torch.Tensor:
    """A batch whose pixels take each of LEVELS PER_LEVEL / n_images times per image, plus negative ones."""
    per_image = PER_LEVEL // n_images
    row = torch.tensor([z for z in LEVELS for _ in range(per_image)] + [-0.1] * 100)
    return row.repeat(n_images, 1).view(n_images, 1, 1, -1)


def _moments_hold(samples: torch.Tensor, mean: float, var: float, mu4: float) -> None:
    n = samples.numel()
    samples = samples.to(F64)
    assert abs(float(samples.mean()) - mean) <= 5 * math.sqrt(var / n) + 1e-12
    if var == 0:
        assert float(samples.var()) == 0
        return
    assert abs(float(samples.var()) - var) <= 5 * math.sqrt((mu4 - var**2) / n)


def _poisson_moments(z: float, rate: float, sigma: float) -> tuple[float, float, float]:
    """Mean, variance and central fourth moment of P(rate z) / rate + sigma n: a Poisson count with mean
    lam has variance lam and central fourth moment lam + 3 lam^2; a Gaussian's is 3 sigma^4; for a sum of
    independent parts mu4 = mu4_1 + 6 var_1 var_2 + mu4_2."""
    lam = rate * z
    var_p, mu4_p = lam / rate**2, (lam + 3 * lam**2) / rate**4
    var_g, mu4_g = sigma**2, 3 * sigma**4
    return z, var_p + var_g, mu4_p + 6 * var_p * var_g + mu4_g


@pytest.mark.parametrize(("noise", "rate", "sigma"), [("poisson", 20.0, 0.0), ("poisson", 255.0, 0.0),
                                                      ("poisson-gaussian", 20.0, 0.05)])
def test_poisson_noise_has_its_mean_and_variance(noise: str, rate: float, sigma: float) -> None:
    """E[y] = z+ and Var[y] = z+ / rate + sigma_y^2 at each intensity; z < 0 is clipped to 0 (no photons)."""
    physics = Operator.create("denoise", {"noise": noise, "rate": rate, "sigma_y": sigma}).build(
        (1, 1, 1), generators(2), "cpu")
    clean = _levels()
    y = measure(physics, clean, generators(2, seed=7))
    for z in LEVELS:
        _moments_hold(y[clean == z], *_poisson_moments(z, rate, sigma))
    _moments_hold(y[clean < 0], *_poisson_moments(0.0, rate, sigma))
    if noise == "poisson":  # counts: y is a multiple of 1 / rate
        counts = (y * rate).to(F64)
        assert float((counts - counts.round()).abs().max()) < 1e-3


def test_the_counts_are_deepinvs_for_the_images_generator() -> None:
    """Image i's y is what deepinv's PoissonNoise / PoissonGaussianNoise draw for image i alone from a
    generator in the state of generators[i] (deepinv/physics/noise.py, PoissonNoise.forward and
    PoissonGaussianNoise.forward, clip_positive=True)."""
    clean = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.1
    for params, reference in [({"noise": "poisson", "rate": 30.0, "sigma_y": 0.0},
                               lambda g: PoissonNoise(gain=1 / 30.0, clip_positive=True, rng=g)),
                              ({"noise": "poisson-gaussian", "rate": 30.0, "sigma_y": 0.02},
                               lambda g: PoissonGaussianNoise(gain=1 / 30.0, sigma=0.02, clip_positive=True, rng=g))]:
        physics = Operator.create("denoise", params).build((2, 8, 8), generators(3), "cpu")
        ours = measure(physics, clean, generators(3, seed=40))
        for i, g in enumerate(generators(3, seed=40)):
            theirs = reference(g)(clean[i:i + 1])
            assert torch.equal(ours[i:i + 1], theirs.to(ours.dtype))


def test_gaussian_measurement_is_the_draw_it_always_was() -> None:
    """Gaussian noise: y = A x + sigma_y n, n drawn by torch.randn per image from its generator, the formula
    of every run made before Poisson noise existed (recomputed here), bit for bit."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    operator = Operator.create("deblur-gauss", {"sigma_y": 0.05})
    assert "noise" not in operator.params and "rate" not in operator.params
    physics = operator.build((3, 16, 16), generators(3, seed=9), "cpu")
    assert isinstance(physics.noise_model, GaussianNoise)
    y = measure(physics, x, generators(3, seed=9))
    sigma = float(torch.as_tensor(physics.noise_model.sigma).flatten()[0])
    noise = torch.stack([torch.randn((3, 16, 16), generator=g) for g in generators(3, seed=9)])
    assert torch.equal(y, physics.A(x) + sigma * noise)
    assert noise_level(physics) == sigma


def _operator_params(name: str, tmp_path: Path) -> dict:
    if OPERATORS.canonical(name) != "inpaint-mask":
        return {}
    observed = np.random.default_rng(0).random((16, 16)) >= 0.4
    path = tmp_path / "mask.png"
    Image.fromarray(np.where(observed, 255, 0).astype(np.uint8), mode="L").save(path)
    return {"path": str(path)}


NOISES = [{"noise": "poisson", "sigma_y": 0.0, "rate": 40.0}, {"noise": "poisson-gaussian", "sigma_y": 0.03}]


@pytest.mark.parametrize("noise", NOISES, ids=lambda p: p["noise"])
@pytest.mark.parametrize("name", OPERATORS.names())
def test_poisson_measurement_of_an_image_does_not_depend_on_its_batch(name: str, noise: dict, tmp_path: Path) -> None:
    """On every operator: image b of a batch measured with generators [g_a, g_b, g_c] gets the y it gets
    measured alone with g_b; other generators give other counts."""
    skip_if_tested_elsewhere(name)
    shape = (3, 16, 16)
    operator = Operator.create(name, {**_operator_params(name, tmp_path), **noise})
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(5))
    gens = generators(3, seed=100)
    y = measure(operator.build(shape, gens, "cpu"), x, gens)
    alone = [torch.Generator().manual_seed(101)]
    y_b = measure(operator.build(shape, alone, "cpu"), x[1:2], alone)
    assert torch.allclose(y[1], y_b[0], rtol=0, atol=1e-6)
    other = generators(3, seed=200)
    assert not torch.allclose(measure(operator.build(shape, other, "cpu"), x, other), y)


def test_noise_level_is_the_effective_sigma_under_poisson_noise() -> None:
    """Gaussian-likelihood solvers get sqrt(sigma_y^2 + 1 / (2 rate)): the noise's std at intensity 1/2 (its
    variance z / rate + sigma_y^2 at z = 1/2, from the moment test above), never 0 under Poisson noise."""
    def level(params: dict) -> float:
        return noise_level(Operator.create("denoise", params).build((1, 4, 4), generators(1), "cpu"))

    assert level({"sigma_y": 0.04}) == pytest.approx(0.04)
    assert level({"noise": "poisson", "sigma_y": 0, "rate": 50.0}) == pytest.approx(math.sqrt(0.5 / 50))
    assert level({"noise": "poisson-gaussian", "sigma_y": 0.03, "rate": 50.0}) == pytest.approx(
        math.sqrt(0.03**2 + 0.5 / 50))
    assert level({"noise": "poisson", "sigma_y": 0}) == pytest.approx(math.sqrt(0.5 / DEFAULT_RATE))


def test_operator_params_record_the_noise_only_when_it_is_not_gaussian() -> None:
    assert Operator.create("sr").params == Operator.create("sr", {"noise": "gaussian", "rate": DEFAULT_RATE}).params
    assert set(Operator.create("sr").params) == {"sigma_y", "factor", "filter", "padding"}
    poisson = Operator.create("sr", {"noise": "poisson", "sigma_y": "0", "rate": "100"})
    assert {k: poisson.params[k] for k in ("sigma_y", "noise", "rate")} == {"sigma_y": 0.0, "noise": "poisson",
                                                                             "rate": 100.0}
    assert poisson.noise == "poisson" and Operator.create("sr").noise == "gaussian"
    assert isinstance(noise_model(poisson.params), PoissonNoise)


@pytest.mark.parametrize(("values", "message"), [
    ({"noise": "laplace"}, "operator denoise.noise='laplace': valid values are gaussian, poisson, poisson-gaussian"),
    ({"noise": "poisson"}, "operator denoise.sigma_y=0.025: noise=poisson has no Gaussian part; set sigma_y=0, or "
                           "noise=poisson-gaussian for both"),
    ({"rate": 100}, "operator denoise.rate=100.0: applies to noise=poisson or noise=poisson-gaussian only (noise "
                    "is gaussian); set noise too, or drop rate"),
    ({"noise": "poisson", "sigma_y": 0, "rate": 0}, "operator denoise.rate=0.0: must be in (0, 1e+09]"),
    ({"noise": "poisson", "sigma_y": 0, "rate": 1e10}, "operator denoise.rate=10000000000.0: must be in (0, 1e+09]"),
    ({"noise": "poisson", "sigma_y": 0, "rate": "many"}, "operator denoise.rate='many': expected float"),
])
def test_bad_noise_values_are_one_line_errors(values: dict, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        Operator.create("denoise", values)
    assert str(caught.value) == message


def test_a_count_torch_cannot_draw_is_refused() -> None:
    """A mean count above 2^62 would overflow torch.poisson's int64 and come back negative: refused instead."""
    physics = Operator.create("denoise", {"noise": "poisson", "sigma_y": 0, "rate": 1e9}).build(
        (1, 1, 1), generators(1), "cpu")
    with pytest.raises(UsageError, match="beyond what torch.poisson can count"):
        measure(physics, torch.full((1, 1, 1, 1), 1e10), generators(1))
