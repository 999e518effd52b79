"""Operators: named factories of deepinv Physics, and the measurement they make.

A factory is a function `(shape, generators, device, *, param=default, ...) -> deepinv Physics` for a
batch of len(generators) images of shape (C, H, W); randomness (a random mask, a box position) is
drawn from each image's own generator, so an image's operator does not depend on its batch. Noise is
not part of the factory: every operator has the parameters `sigma_y` (image units), `noise` (gaussian,
poisson, poisson-gaussian) and `rate` (photons per unit intensity); `Operator.build` attaches the deepinv
noise model they define (operators/noise.py), and `measure` draws that noise per image from the same
generators.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from deepinv.physics import LinearPhysics, Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.operators.noise import NOISE_NAMES, NOISE_PARAMS, draw_noisy, gaussian_sigma, noise_model, recorded_params
from ipbench.params import NON_NEGATIVE, Param, Range, function_params, resolve
from ipbench.registry import Registry

Shape = tuple[int, int, int]
Factory = Callable[..., Physics]

DEFAULT_SIGMA_Y = 0.025  # image units; the DPS paper's sigma = 0.05 on [-1, 1]


@dataclass(frozen=True)
class OperatorFactory:
    """A registered operator: its name, factory function and parameters (sigma_y, noise and rate first)."""

    name: str
    make: Factory
    params: list[Param]
    summary: str
    files: tuple[str, ...] = ()  # parameters that name an input file (its content hash goes into run.json)


OPERATORS: Registry[OperatorFactory] = Registry("operator")


def register_operator(name: str, aliases: tuple[str, ...] = (), choices: dict[str, tuple[str, ...]] | None = None,
                      ranges: dict[str, Range] | None = None, files: tuple[str, ...] = ()
                      ) -> Callable[[Factory], Factory]:
    """Register `make(shape, generators, device, *, ...)` as operator `name`; `choices` and `ranges` give
    the valid values of its keyword parameters (checked when a run is specified), `files` the parameters
    that name an input file, whose content a resumed run checks (a mask file changed under the same name).
    Every operator gets the noise parameters sigma_y, noise and rate (operators/noise.py) before its own."""
    def register(make: Factory) -> Factory:
        own = function_params(make, choices, ranges)
        shared = [Param("sigma_y", float, DEFAULT_SIGMA_Y, range=NON_NEGATIVE), *NOISE_PARAMS]
        clash = [p.name for p in own if p.name in {q.name for q in shared}]
        if clash:
            raise UsageError(f"register_operator {name}: parameter {clash[0]!r} is one every operator has; rename it")
        params = [*shared, *own]
        summary = (make.__doc__ or "").strip().splitlines()[0] if make.__doc__ else ""
        OPERATORS.add(name, OperatorFactory(name, make, params, summary, files), aliases)
        return make

    return register


@dataclass
class Operator:
    """An operator with its parameters resolved: what a run measures with.

    `params` are the values recorded in rows and in the run's identity: under Gaussian noise without `noise`
    and `rate` (operators/noise.py, `recorded_params`), so a Gaussian operator's identity is unchanged."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # its name in results and seeding (the name unless given, e.g. two denoise levels)

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @classmethod
    def create(cls, name: str, values: dict[str, Any] | None = None, label: str | None = None) -> "Operator":
        factory = OPERATORS.get(name)
        where = f"operator {factory.name}"
        params = recorded_params(resolve(factory.params, values or {}, where), where)
        return cls(factory.name, params, label or factory.name)

    def input_files(self) -> dict[str, str]:
        """{'operator LABEL.PARAM': path} of the parameters that name an input file and are set."""
        return {f"operator {self.label}.{name}": str(self.params[name])
                for name in OPERATORS.get(self.name).files if self.params.get(name)}

    @property
    def sigma_y(self) -> float:
        return float(self.params["sigma_y"])

    @property
    def noise(self) -> str:
        """The noise model's name (operators/noise.py); gaussian where `params` has none."""
        return str(self.params.get("noise", "gaussian"))

    def build(self, shape: Shape, generators: Sequence[torch.Generator], device: torch.device) -> Physics:
        """The batch's Physics, with its deepinv noise model attached (`measure` draws from it per image)."""
        kwargs = {k: v for k, v in self.params.items() if k != "sigma_y" and k not in NOISE_NAMES}
        physics = OPERATORS.get(self.name).make(tuple(shape), list(generators), torch.device(device), **kwargs)
        physics.noise_model = noise_model(self.params)
        return physics


def is_linear(physics: Physics) -> bool:
    """Whether A is linear: deepinv's own split, a `LinearPhysics` (with A^T) or a plain `Physics` (A only).

    The one linearity test of the package: a solver whose derivation needs A^T, A^+ or an SVD reads it in
    `unsupported` (through `linear_problem`), the operator tests skip the adjoint checks by it."""
    return isinstance(physics, LinearPhysics)


def linear_problem(physics: Physics, uses: str) -> str | None:
    """The reason a solver gives for a nonlinear operator (None for a linear one); `uses` names what of A
    its derivation needs ("A^T", "an SVD of A", ...)."""
    if is_linear(physics):
        return None
    return f"needs a linear operator ({uses}); {type(physics).__name__} is nonlinear"


def as_float64(physics: Physics) -> Physics:
    """A float64 copy of a physics (for exact computations such as the Gaussian posterior)."""
    import copy

    return copy.deepcopy(physics).to(torch.float64)


def noise_level(physics: Physics) -> float:
    """The Gaussian noise std (image units) that solvers assume for a physics built by `Operator.build`:
    sigma_y under Gaussian noise; under Poisson noise the effective sqrt(sigma_y^2 + 1 / (2 rate)), its std at
    intensity 1/2 (operators/noise.py, `gaussian_sigma`)."""
    return gaussian_sigma(physics.noise_model)


def measure(physics: Physics, x: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """y = A(x) plus the operator's noise, drawn per image from its generator (after any operator draws):
    A(x) + sigma_y n, n ~ N(0, I), under Gaussian noise; Poisson counts (then sigma_y n) otherwise."""
    return draw_noisy(physics.noise_model, physics.A(x), generators)


def back_project(physics: Physics, y: Tensor) -> Tensor:
    """A normalised back-projection A^T y / A^T 1, the seeds' starting point for one-step solvers.

    It is y itself for denoising and inpainting (on known pixels), a (twice-)blurred image for blur.
    Pixels that A does not see (A^T 1 = 0) get the per-image, per-channel mean of the seen pixels.
    An operator whose A^T 1 is no per-pixel weight gives its own `back_projection(y)` (MRI: the zero-filled A^T y).
    """
    if not isinstance(physics, LinearPhysics):
        raise UsageError(f"back-projection needs a linear operator, got {type(physics).__name__}")
    own = getattr(physics, "back_projection", None)
    if callable(own):
        return own(y)
    weight = physics.A_adjoint(torch.ones_like(y))
    seen = weight > 1e-6
    x = torch.where(seen, physics.A_adjoint(y) / torch.where(seen, weight, torch.ones_like(weight)), torch.zeros_like(weight))
    counts = seen.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    fill = x.sum(dim=(2, 3), keepdim=True) / counts
    return torch.where(seen, x, fill.expand_as(x))


def measurement_image(physics: Physics, y: Tensor) -> Tensor:
    """The measurement as an image: y itself when it has the image's shape (denoising, inpainting with zeros
    in the holes, blur), else y resized to the image's height and width by bicubic interpolation
    (super-resolution; torch `interpolate`, half-pixel centres, which puts low-resolution pixel i at
    i f + (f - 1) / 2 where deepinv's decimation takes it at i f + 1/2: a shift of (f - 2) / 2 px). An operator
    whose y is no image gives its own `picture(y)` (CT: the filtered back-projection; MRI: the zero-filled image)."""
    if not isinstance(physics, LinearPhysics):
        raise UsageError(f"the measurement as an image needs a linear operator, got {type(physics).__name__}")
    picture = getattr(physics, "picture", None)
    if callable(picture):
        return picture(y)
    shape = physics.A_adjoint(y).shape  # the image batch's
    if y.shape == shape:
        return y
    if y.dim() != 4 or y.shape[:2] != shape[:2]:
        raise UsageError(f"the measurement {tuple(y.shape)} is not an image batch with the channels of {tuple(shape)}")
    return torch.nn.functional.interpolate(y, size=tuple(shape[-2:]), mode="bicubic", align_corners=False)


def shown_measurement(physics: Physics, y: Tensor, like: Tensor) -> Tensor:
    """The measurement as a run's figures show it, an image batch shaped like `like`: y when it has the
    image's shape, with an alpha channel that is 0 on pixels A does not see (inpainting holes); else its
    back-projection (super-resolution). An operator with its own `picture(y)` shows that (phase retrieval's
    spectrum, CT's filtered back-projection, MRI's zero-filled image); else a nonlinear one shows y when it has the
    image's shape (HDR), else mid-grey (nothing to show)."""
    picture = getattr(physics, "picture", None)
    if callable(picture):
        return picture(y)
    if not is_linear(physics):
        return y if y.shape == like.shape else torch.full_like(like, 0.5)
    if y.shape != like.shape:
        return back_project(physics, y)
    seen = visible_mask(physics, like).amax(dim=1, keepdim=True)
    return torch.cat([y, seen], dim=1) if bool((seen == 0).any()) else y


def pseudo_inverse(physics: Physics, y: Tensor, damping: float = 1e-3) -> Tensor:
    """A^+ y: exact for masks and the identity, else the damped least squares (A^T A + damping I)^-1 A^T y.

    The damped solve is by conjugate gradients with per-image stopping (deepinv's `A_dagger` stops on
    the whole batch, which makes an image's result depend on its batch), to relative residual 1e-4 or
    200 iterations; `damping` bounds the noise amplification of ill-conditioned operators such as blur.
    """
    from deepinv.physics import Denoising, Inpainting

    from ipbench.linalg import conjugate_gradient

    if isinstance(physics, (Inpainting, Denoising)):
        return physics.A_dagger(y)
    normal = lambda z: physics.A_adjoint(physics.A(z)) + damping * z  # noqa: E731
    return conjugate_gradient(normal, physics.A_adjoint(y), tol=1e-4, max_iter=200, strict=False)


def visible_mask(physics: Physics, like: Tensor) -> Tensor:
    """1 where A sees a pixel (A^T 1 > 0), else 0; shape of `like` (an image batch). An operator whose A^T 1 is
    no per-pixel weight gives its own `visible(like)` (MRI: every pixel)."""
    own = getattr(physics, "visible", None)
    if callable(own):
        return own(like)
    weight = physics.A_adjoint(torch.ones_like(physics.A(like)))
    return (weight > 1e-6).to(like.dtype)
