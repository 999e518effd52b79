"""Data consistency: how far a reconstruction's measurement A(x_hat) lies from y, relative to y's noise.

Pearson's chi-squared per measurement, with the variance the operator's noise model gives at A(x_hat):

    fit = (1 / m) sum_i (y_i - mu_i)^2 / v_i,    v_i = sigma_y^2 + max(mu_i, 1 / rate) / rate,

mu = A(x_hat) under Gaussian noise and max(A(x_hat), 0) under Poisson noise (the mean of y there: the
counts are drawn from the clipped intensity, operators/noise.py), 1 / rate = 0 for Gaussian noise. For the
true image E[fit] = 1 exactly under Gaussian noise (a chi-squared with m degrees of freedom, over m) and
under Poisson noise wherever the mean is at least one photon; the floor of one photon's mean in v keeps a
measurement whose predicted mean is (nearly) zero from dividing by zero. A reconstruction that ignores the
data has fit >> 1; one that fits the noise as well has fit < 1 (an exact pseudo-inverse of an invertible A
reaches 0). Measurements that are zero where the predicted Poisson mean is zero (a black background)
carry no noise and agree exactly: they are left out of the sum and of m. No degrees of freedom are taken
off for the reconstruction's own: the prior, not the data, fixes most of x_hat, so there is no count to
take off. With no noise at all (sigma_y = 0, Gaussian) the fit is undefined: nan.
"""
from __future__ import annotations

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.operators.noise import gaussian_part, poisson_rate


def measurement_fit(physics: Physics, x_hat: Tensor, y: Tensor) -> Tensor:
    """Per image of the batch, the reduced chi-squared of `y` against A(`x_hat`) (module docstring), float64;
    nan for an image whose measurement has no noise to compare with."""
    with torch.no_grad():
        predicted = physics.A(x_hat).to(torch.float64)
    y = y.to(torch.float64)
    model = physics.noise_model
    sigma, rate = gaussian_part(model), poisson_rate(model)
    if rate is None:
        mean, variance = predicted, torch.full_like(predicted, sigma**2)
        counted = torch.ones_like(predicted, dtype=torch.bool)
    else:
        mean = predicted.clamp(min=0)
        variance = sigma**2 + mean.clamp(min=1.0 / rate) / rate
        counted = (mean > 0) | (y != 0)  # zero predicted and zero seen: no noise, nothing to fit
    terms = torch.where(counted, (y - mean).pow(2) / variance.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
    m = counted.flatten(1).sum(1)
    fit = terms.flatten(1).sum(1) / m.clamp(min=1)
    noiseless = (variance <= 0).flatten(1).all(1) | (m == 0)
    return torch.where(noiseless, torch.full_like(fit, float("nan")), fit)
