"""An analytic Gaussian prior whose score is exact at every diffusion time.

The prior on model-units images x (C, H, W) is N(mu, Sigma) with a stationary covariance

    Sigma = (P (x) I) F^H diag(S) F (P^T (x) I),

P an orthogonal C x C colour transform (PCA of the pixel colours), F the orthonormal 2-D DFT applied to
each decorrelated channel, S >= 0 a power spectrum symmetric under (u, v) -> (-u, -v) so that Sigma is
real. Under x_t = sqrt(ab) x0 + sqrt(1 - ab) eps the posterior mean of eps is, in closed form,

    E[eps | x_t] = sqrt(1 - ab) (ab Sigma + (1 - ab) I)^{-1} (x_t - sqrt(ab) mu),

a spectral multiplier. For a linear operator A with Gaussian noise the posterior of x given y is Gaussian
too; `posterior_mean` solves for it by conjugate gradients, `posterior_dense` exactly for small images.
This is ipbench's instant CPU model and the ground truth that posterior solvers are checked against.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.linalg import LinearMap, conjugate_gradient
from ipbench.models.base import MAX_IMAGE_CHANNELS, MAX_SIDE, MAX_TIMESTEPS, ScoreModel, linear_alphas_cumprod, to_model

class GaussianScoreModel(ScoreModel):
    """Exact VP-DDPM epsilon model of a stationary Gaussian prior (see module docstring)."""

    def __init__(self, mean: Tensor, colour_basis: Tensor, spectrum: Tensor, alphas_cumprod: Tensor | None = None) -> None:
        channels, height, width = spectrum.shape
        if alphas_cumprod is None:
            alphas_cumprod = linear_alphas_cumprod()
        super().__init__(alphas_cumprod, (channels, height, width))
        self.register_buffer("mean", mean.to(torch.float64).reshape(channels, 1, 1))
        self.register_buffer("colour_basis", colour_basis.to(torch.float64))
        self.register_buffer("spectrum", spectrum.to(torch.float64).clamp_min(1e-10))

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, images: Tensor, radial: bool = True) -> "GaussianScoreModel":
        """Fit to images (N, C, H, W) in [0, 1]: channel means, PCA colour basis, power spectrum.

        With `radial` the spectrum is averaged over rings of equal frequency radius, which makes it
        isotropic, smooth and well estimated from a handful of images.
        """
        x = to_model(images.to(torch.float64))
        channels = x.shape[1]
        mean = x.mean(dim=(0, 2, 3))
        centred = x - mean.view(1, -1, 1, 1)
        pixels = centred.permute(1, 0, 2, 3).reshape(channels, -1)
        _, basis = torch.linalg.eigh(pixels @ pixels.T / pixels.shape[1])
        decorrelated = torch.einsum("ck,nchw->nkhw", basis, centred)
        power = torch.fft.fft2(decorrelated, norm="ortho").abs().square().mean(dim=0)
        if radial:
            power = _radial_average(power)
        return cls(mean, basis, power)

    # -- spectral algebra ----------------------------------------------------------------------
    def apply_spectral(self, x: Tensor, multiplier: Tensor) -> Tensor:
        """(P (x) I) F^H diag(multiplier) F (P^T (x) I) x for x of shape (N, C, H, W).

        `multiplier` broadcasts against (N, C, H, W) and must be symmetric in frequency, as any
        function of the spectrum is.
        """
        w = torch.einsum("ck,nchw->nkhw", self.colour_basis, x.to(torch.float64))
        w = torch.fft.ifft2(torch.fft.fft2(w, norm="ortho") * multiplier, norm="ortho").real
        return torch.einsum("ck,nkhw->nchw", self.colour_basis, w)

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        multiplier = (1.0 - ab).sqrt() / (ab * self.spectrum + (1.0 - ab))
        return self.apply_spectral(x_t.to(torch.float64) - ab.sqrt() * self.mean, multiplier).to(x_t.dtype)

    def sample(self, n: int, generators: list[torch.Generator]) -> Tensor:
        """n prior samples in [0, 1] image units (not clamped), one generator per sample."""
        if len(generators) < n:
            raise ValueError(f"sample({n}) needs {n} generators, got {len(generators)}")
        z = torch.stack([torch.randn(self.image_shape, generator=g, dtype=torch.float64, device=g.device) for g in generators[:n]])
        x = self.mean + self.apply_spectral(z.to(self.mean.device), self.spectrum.sqrt())
        return ((x + 1.0) / 2.0).float()

    # -- exact posteriors for linear operators (image units) ----------------------------------
    def image_prior(self) -> tuple[Tensor, LinearMap, LinearMap]:
        """Image-units prior: mean (C,1,1), and maps x -> Sigma_img x and x -> Sigma_img^{1/2} x."""
        mean = (self.mean + 1.0) / 2.0
        cov = lambda x: self.apply_spectral(x, self.spectrum / 4.0)  # noqa: E731  (x_img = (x + 1) / 2)
        root = lambda x: self.apply_spectral(x, self.spectrum.sqrt() / 2.0)  # noqa: E731
        return mean, cov, root

    def posterior_mean(self, y: Tensor, A: LinearMap, A_adjoint: LinearMap, sigma_y: float,
                       tol: float = 1e-7, max_iter: int = 5000) -> Tensor:
        """E[x | y] for y = A x + n, n ~ N(0, sigma_y^2 I), x ~ this prior, all in image units.

        A and A_adjoint are applied to float64 tensors: pass a float64 operator, e.g. the maps of
        `ipbench.operators.as_float64(physics)` (deepinv stores blur kernels as float32).

        Whitened conjugate gradients: with x = m + Sigma^{1/2} z, solve
        (I + Sigma^{1/2} A^T A Sigma^{1/2} / sigma_y^2) z = Sigma^{1/2} A^T (y - A m) / sigma_y^2,
        a system whose eigenvalues are >= 1, to relative residual `tol` per image.
        """
        if sigma_y <= 0:
            raise UsageError(f"the Gaussian posterior needs sigma_y > 0, got {sigma_y}")
        mean, _, root = self.image_prior()
        y = y.to(torch.float64)
        m = mean.expand(y.shape[0], *self.image_shape)
        normal = lambda z: z + root(A_adjoint(A(root(z)))) / sigma_y**2  # noqa: E731
        rhs = root(A_adjoint(y - A(m))) / sigma_y**2
        z = conjugate_gradient(normal, rhs, tol=tol, max_iter=max_iter)
        return m + root(z)

    def posterior_dense(self, y: Tensor, A: LinearMap, sigma_y: float) -> tuple[Tensor, Tensor]:
        """Exact posterior mean and per-pixel variance by dense linear algebra (small images only).

        Returns (mean, variance), each (N, C, H, W). A must act on single images of this model's
        shape and accept float64 (see `posterior_mean`); y is (N, ...) measurements. Cost is O(D^3) in
        D = C*H*W, so D is limited to 4096.
        """
        size = self.channels * self.image_shape[1] * self.image_shape[2]
        if size > 4096:
            raise UsageError(f"posterior_dense needs C*H*W <= 4096, got {size}; use posterior_mean")
        mean, cov, _ = self.image_prior()
        basis = torch.eye(size, dtype=torch.float64, device=self.mean.device).view(size, *self.image_shape)
        sigma_prior = cov(basis).reshape(size, size)  # symmetric
        a_matrix = A(basis).reshape(size, -1).T  # (M, D)
        gain = sigma_prior @ a_matrix.T @ torch.linalg.inv(a_matrix @ sigma_prior @ a_matrix.T
                                                           + sigma_y**2 * torch.eye(a_matrix.shape[0], dtype=torch.float64))
        m = mean.expand(*self.image_shape).reshape(size)
        residual = y.to(torch.float64).reshape(y.shape[0], -1) - (a_matrix @ m)
        post_mean = m + residual @ gain.T
        post_cov = sigma_prior - gain @ a_matrix @ sigma_prior
        variance = post_cov.diagonal().expand(y.shape[0], size)
        shape = (y.shape[0], *self.image_shape)
        return post_mean.reshape(shape), variance.reshape(shape)

    def config(self) -> dict:
        return {"image_shape": list(self.image_shape), "alphas_cumprod": self.alphas_cumprod.tolist()}

    @classmethod
    def from_config(cls, config: dict, state_dict: dict[str, Tensor]) -> "GaussianScoreModel":
        """The model a checkpoint holds; its shapes and schedule checked first (a UsageError naming them)."""
        schedule = config.get("alphas_cumprod")
        schedule = None if schedule is None else torch.tensor(schedule, dtype=torch.float64)
        mean, basis, spectrum = state_dict["mean"].flatten(), state_dict["colour_basis"], state_dict["spectrum"]
        problem = gaussian_problem(mean, basis, spectrum, schedule)
        if problem is not None:
            raise UsageError(problem)
        return cls(mean, basis, spectrum, schedule)


def gaussian_problem(mean: Tensor, basis: Tensor, spectrum: Tensor, schedule: Tensor | None) -> str | None:
    """What makes these tensors no Gaussian model within the UNet's bounds (its image shape, T), or None."""
    if spectrum.ndim != 3 or not 1 <= spectrum.shape[0] <= MAX_IMAGE_CHANNELS or \
            not all(1 <= s <= MAX_SIDE for s in spectrum.shape[1:]):
        return (f"declares a spectrum of shape {tuple(spectrum.shape)}; it must be (C, H, W) with C in "
                f"1..{MAX_IMAGE_CHANNELS} and sides in 1..{MAX_SIDE}")
    channels = spectrum.shape[0]
    if mean.numel() != channels or tuple(basis.shape) != (channels, channels):
        return (f"declares mean {tuple(mean.shape)} and colour_basis {tuple(basis.shape)} for {channels} channels; "
                f"they must be ({channels},) and ({channels}, {channels})")
    if not all(bool(torch.isfinite(t).all()) for t in (mean, basis, spectrum)):
        return "declares non-finite mean, colour_basis or spectrum values"
    if schedule is not None and (schedule.ndim != 1 or not 1 <= schedule.numel() <= MAX_TIMESTEPS
                                 or not bool(((schedule > 0) & (schedule <= 1)).all())
                                 or bool((schedule[1:] > schedule[:-1]).any())):
        return (f"declares alphas_cumprod of {schedule.numel()} values; they must be 1..{MAX_TIMESTEPS} "
                "values in (0, 1], non-increasing")
    return None


def _radial_average(power: Tensor) -> Tensor:
    """Average (C, H, W) power over rings of equal normalised frequency radius."""
    channels, height, width = power.shape
    fy = torch.fft.fftfreq(height, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64).view(1, -1)
    ring = ((fy.square() + fx.square()).sqrt() * max(height, width)).round().long().flatten()
    count = torch.bincount(ring).clamp_min(1).to(torch.float64)
    out = torch.empty_like(power)
    for c in range(channels):
        sums = torch.bincount(ring, weights=power[c].flatten())
        out[c] = (sums / count)[ring].view(height, width)
    return out
