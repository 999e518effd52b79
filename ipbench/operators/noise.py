"""Measurement noise: the models an operator can carry, their per-image draws, and the sigma solvers are given.

With z = A(x) in image units and z+ = max(z, 0):

    gaussian          y = z + sigma_y n,                 n ~ N(0, I)        (the default)
    poisson           y = P(rate z+) / rate                                 (sigma_y must be 0)
    poisson-gaussian  y = P(rate z+) / rate + sigma_y n

`rate` is photons per unit intensity (the count's mean at intensity 1); deepinv calls its inverse the gain.
These are deepinv 0.5.0's models (deepinv/physics/noise.py): `GaussianNoise(sigma)`, `PoissonNoise(gain=1/rate,
normalize=True, clip_positive=True)` (class at :417, the draw `torch.poisson(clip(x / gain, min=0)) * gain` at
:487-505) and `PoissonGaussianNoise(gain=1/rate, sigma=sigma_y, clip_positive=True)` (class at :548, the Poisson
draw times the gain, then `+ randn * sigma`, :633-648); `Operator.build` attaches them to the Physics. Hence
E[y] = z+ and Var[y] = z+ / rate (+ sigma_y^2). clip_positive because some operators give slightly negative z
(the bicubic filter of `sr` has negative taps), where a Poisson mean is undefined.

The default rate, 255, is the DPS code's Poisson noise at its rate 1 (DPS2022/diffusion-posterior-sampling at
effbde7, guided_diffusion/measurements.py:264, `np.random.poisson(data * 255.0 * rate) / 255.0 / rate` on
[0, 1] data), so their rate r is rate = 255 r here. That code also clips z to [0, 1] before drawing and y to
at most 1 after (:261, :266); ipbench clips only below, as deepinv does, and leaves y unclipped, as it does
for Gaussian noise.

`measure` draws image i's noise from generators[i] only (Poisson counts first, then the Gaussian part), so an
image's measurement does not depend on its batch.

Solvers built on a Gaussian likelihood read one std through `noise_level(op)` (`gaussian_sigma` here): sigma_y
for Gaussian noise; under Poisson noise sqrt(sigma_y^2 + 1 / (2 rate)), the noise's std at intensity 1/2, which
is also the root of its variance averaged over intensities uniform in [0, 1]. One number per operator, not per
image or batch, so that a reconstruction does not depend on its batch either (docs/operators.md, Noise).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from deepinv.physics import GaussianNoise, PoissonGaussianNoise, PoissonNoise
from deepinv.physics.noise import NoiseModel
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.params import Param, Range

GAUSSIAN, POISSON, POISSON_GAUSSIAN = "gaussian", "poisson", "poisson-gaussian"
NOISE_MODELS = (GAUSSIAN, POISSON, POISSON_GAUSSIAN)
DEFAULT_RATE = 255.0  # photons per unit intensity: the DPS code's rate 1 (module docstring)
MAX_RATE = 1e9  # relative std 3e-5 at intensity 1, nearly noiseless; counts stay far below torch.poisson's int64
MAX_COUNT = 2.0**62  # torch.poisson's count overflows int64 above about 9.2e18 and comes back negative
REFERENCE_INTENSITY = 0.5  # where the effective sigma of Poisson noise is taken (module docstring)

NOISE_PARAMS = [
    Param("noise", str, GAUSSIAN, choices=NOISE_MODELS),
    Param("rate", float, DEFAULT_RATE, range=Range(0, MAX_RATE, low_open=True)),
]
NOISE_NAMES = tuple(p.name for p in NOISE_PARAMS)


def recorded_params(params: dict[str, Any], where: str) -> dict[str, Any]:
    """`params` (resolved, with sigma_y and the noise parameters) as an operator keeps and records them.

    Under Gaussian noise `noise` and `rate` are dropped: a Gaussian operator's parameters, hence its rows and
    its run's identity, are what they were before Poisson noise existed, so older runs resume unchanged. Under
    Poisson noise both stay and the rows show them. Combinations that would mean something other than they
    say are refused: a rate without Poisson noise, and sigma_y > 0 with pure Poisson noise."""
    noise, rate, sigma_y = params["noise"], params["rate"], params["sigma_y"]
    if noise == GAUSSIAN:
        if rate != DEFAULT_RATE:
            raise UsageError(f"{where}.rate={rate!r}: applies to noise=poisson or noise=poisson-gaussian only "
                             f"(noise is gaussian); set noise too, or drop rate")
        return {k: v for k, v in params.items() if k not in NOISE_NAMES}
    if noise == POISSON and sigma_y != 0:
        raise UsageError(f"{where}.sigma_y={sigma_y!r}: noise=poisson has no Gaussian part; set sigma_y=0, or "
                         f"noise=poisson-gaussian for both")
    return dict(params)


def noise_model(params: dict[str, Any]) -> NoiseModel:
    """The deepinv noise model of an operator's parameters (`noise` absent: Gaussian)."""
    noise, sigma_y = params.get("noise", GAUSSIAN), float(params["sigma_y"])
    if noise == GAUSSIAN:
        return GaussianNoise(sigma=sigma_y)
    gain = 1.0 / float(params["rate"])
    if noise == POISSON:
        return PoissonNoise(gain=gain, normalize=True, clip_positive=True)
    if noise == POISSON_GAUSSIAN:
        return PoissonGaussianNoise(gain=gain, sigma=sigma_y, clip_positive=True)
    raise UsageError(f"noise {noise!r}: valid values are {', '.join(NOISE_MODELS)}")


def noise_kind(model: NoiseModel) -> str:
    """Which of NOISE_MODELS a noise model built by `noise_model` is; any other model (a Physics made outside
    `Operator.build`) counts as Gaussian of its `sigma`, 0 without one, as `noise_level` always read it."""
    if isinstance(model, PoissonGaussianNoise):
        return POISSON_GAUSSIAN
    if isinstance(model, PoissonNoise):
        return POISSON
    return GAUSSIAN


def _scalar(value: Any) -> float:
    return float(torch.as_tensor(value).flatten()[0])


def poisson_rate(model: NoiseModel) -> float | None:
    """Photons per unit intensity of a Poisson model (1 / deepinv's gain); None for Gaussian noise."""
    return None if noise_kind(model) == GAUSSIAN else 1.0 / _scalar(model.gain)


def gaussian_part(model: NoiseModel) -> float:
    """The std of the additive Gaussian part (0 for pure Poisson noise)."""
    return 0.0 if noise_kind(model) == POISSON else _scalar(getattr(model, "sigma", 0.0))


def gaussian_sigma(model: NoiseModel) -> float:
    """The std a Gaussian-likelihood solver is given: sigma_y, or under Poisson noise the std at intensity 1/2,
    sqrt(sigma_y^2 + 1/2 / rate) (module docstring)."""
    rate = poisson_rate(model)
    sigma = gaussian_part(model)
    return sigma if rate is None else math.sqrt(sigma**2 + REFERENCE_INTENSITY / rate)


def draw_noisy(model: NoiseModel, clean: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """y from z = `clean` (a batch) under `model`, image i's draws from generators[i] only.

    Gaussian: y = z + sigma n (the draw `measure` always made). Poisson: counts from torch.poisson with the
    image's generator, as deepinv's PoissonNoise draws them (clip at 0, divide by the gain, times the gain),
    then the Gaussian part, as PoissonGaussianNoise adds it."""
    sigma = gaussian_part(model)
    y = clean
    if noise_kind(model) != GAUSSIAN:
        gain = torch.as_tensor(model.gain).flatten()[0].to(clean.device)  # float32, as deepinv holds it
        means = torch.clip(clean / gain, min=0.0)  # deepinv's arithmetic, so that the counts are its counts
        if bool((means > MAX_COUNT).any()):
            raise UsageError(f"Poisson noise: a mean count of {float(means.max()):.3g} photons (intensity "
                             f"{float(clean.max()):.3g} at rate {1 / float(gain):g}) is beyond what torch.poisson "
                             f"can count ({MAX_COUNT:.3g}); lower the rate")
        counts = [torch.poisson(m.to(g.device), generator=g) for m, g in zip(means, generators)]
        y = torch.stack(counts).to(clean.device) * gain
    if sigma == 0:
        return y
    noise = torch.stack([torch.randn(clean.shape[1:], generator=g, device=g.device, dtype=clean.dtype)
                         for g in generators]).to(clean.device)
    return y + sigma * noise


def describe_noise(params: dict[str, Any]) -> str:
    """An operator's noise in words, from its recorded parameters (no `noise` key: Gaussian)."""
    noise, sigma_y = params.get("noise", GAUSSIAN), params.get("sigma_y")
    if noise == GAUSSIAN:
        return f"Gaussian, sigma_y {sigma_y:g}" if isinstance(sigma_y, (int, float)) else "Gaussian"
    rate = params.get("rate", DEFAULT_RATE)
    if noise == POISSON:
        return f"Poisson, rate {rate:g} photons per unit intensity"
    return f"Poisson-Gaussian, rate {rate:g} photons per unit intensity, sigma_y {sigma_y:g}"
