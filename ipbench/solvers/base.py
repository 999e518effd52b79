"""The Solver base class and registry.

A solver is a dataclass subclass of `Solver` with a `name`, its hyperparameters as typed fields with
defaults, and one method `solve(y, op, model, generators) -> x_hat` (images in [0, 1]), registered
with `@register_solver`; `unsupported(op, like)` may say which operators it does not apply to, and `prior` on
which priors it is defined (pixel-space ones, or latent ones: models/latent.py). `generators` holds one
torch.Generator per image of the batch: draw image i's randomness from generators[i] only (see
`randn_per_image`), and take norms per image, so a result never depends on the batch it was computed in.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from deepinv.physics import Physics
from torch import Tensor

from ipbench.errors import UsageError
from ipbench.models.base import ScoreModel, to_image
from ipbench.models.latent import autoencoder_of
from ipbench.params import Param, check_times, coerce, dataclass_params, resolve
from ipbench.registry import Registry
from ipbench.solvers.presets import Preset


@dataclass
class Solver:
    """Base of all solvers; subclasses are dataclasses whose fields are the hyperparameters."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    # Published per-task settings ({"paper": Preset}), applied by `--preset` or a suite's `preset` (presets.py)
    presets: ClassVar[dict[str, Preset]] = {}
    # The priors the solver is defined on: "pixel" (the diffusion runs on images), "latent" (a LatentPrior: the
    # diffusion runs on an autoencoder's latents and the solver works through its decoder), or "any" (a classical
    # solver that does not use the prior, so it runs beside either kind on the same images).
    prior: ClassVar[str] = "pixel"

    def solve(self, y: Tensor, op: Physics, model: ScoreModel, generators: Sequence[torch.Generator]) -> Tensor:
        """Reconstruct x_hat (N, C, H, W) in [0, 1] image units from measurements y."""
        raise NotImplementedError

    def deterministic(self) -> bool:
        """True where the output does not depend on `generators` (a classical solver, one denoising step):
        `bench run --samples K` then runs it once per measurement instead of K times. The contract tests check
        the claim both ways (tests/test_solvers.py)."""
        return False

    def nfe_depends_on_data(self) -> bool:
        """True where the network evaluations an image costs depend on the image (a line search, an adaptive
        step): `bench check` then does not ask that an image cost the same alone as in a batch, and a row's NFE
        is its batch's mean."""
        return False

    def unsupported(self, op: Physics, like: Tensor) -> str | None:
        """Why this solver does not apply to `op` for images shaped like `like` (zeros, (N, C, H, W), on
        the run's device), or None if it does. A run records an unsupported pair as `skipped` rows with this
        reason (shown as n/a), not as a failure; DDRM, for instance, needs an SVD of A."""
        return None

    @classmethod
    def params(cls) -> list[Param]:
        return dataclass_params(cls)

    def check_model(self, model: ScoreModel) -> None:
        """Refuse (UsageError naming the field, its value and the valid range) field values that `model`
        cannot run as set, before anything runs: a value the solver would otherwise replace by another
        (a step count cut to the times there are, a sigma clamped to the model's grid) is a silently wrong
        row. The base checks diffusion times and step counts against T (`params.check_times`); a solver
        with bounds between its fields, or on the model's grid or image shape, adds them."""
        check_times(self.params(), self.hyperparameters(), model.num_timesteps, f"solver {self.name}")

    def as_run(self, op: Physics, model: ScoreModel) -> dict[str, Any]:
        """The fields whose value as run is decided by the operator, not by the field (a start time matched
        to sigma_y, and a step count that time caps), with the values this `op` gives; every row records them
        as `ran.NAME`. Most solvers have none."""
        return {}

    def report_step(self, t: int, x_t: Tensor, x0_hat: Tensor) -> None:
        """Hand one step (its time, x_t and x0_hat, model units) to the hook a caller may have set as
        `solver.step_hook` (`bench run --trace K` does; k-diffusion's `callback` is the model). Diffusion
        solvers call it once per step; without a hook it does nothing."""
        hook = self.__dict__.get("step_hook")
        if hook is not None:
            hook(t, x_t.detach(), x0_hat.detach())

    def __post_init__(self) -> None:
        """Every field checked against its type, range and choices, however the solver was made."""
        for p in self.params():
            coerce(p, getattr(self, p.name), f"solver {self.name}")

    @classmethod
    def create(cls, values: dict[str, Any] | None = None) -> "Solver":
        """An instance with `values` (strings or typed) checked against the fields."""
        return cls(**resolve(cls.params(), values or {}, f"solver {cls.name}"))

    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SOLVERS: Registry[type[Solver]] = Registry("solver")

# What a solver's code may raise that is its failure to report: SystemExit too, which would otherwise end a
# command with its code (0: "passed") before anything is reported. KeyboardInterrupt stays the user's.
SOLVER_FAILURES = (Exception, SystemExit)


def register_solver(cls: type[Solver]) -> type[Solver]:
    """Class decorator: make `cls` available as `bench run --solver <cls.name>`.

    A subclass written without its own @dataclass would inherit the base's (fieldless) dataclass: its
    annotated attributes would be no hyperparameters. It is made a dataclass here, so they are."""
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise UsageError(f"register_solver: {cls!r} is not a subclass of ipbench.Solver")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise UsageError(f"register_solver: {cls.__name__} needs a class attribute `name = \"...\"` "
                         "(its --solver name)")
    if "__dataclass_fields__" not in cls.__dict__:
        cls = dataclass(cls)
    return SOLVERS.add(cls.name, cls, cls.aliases)


def prior_problem(solver: Solver, model: ScoreModel) -> str | None:
    """Why `solver` is not defined on `model`'s kind of prior (pixel or latent), or None: a pixel-space solver
    would treat a latent prior's latents as pixels, and a latent solver needs a decoder."""
    if solver.prior == "any":
        return None
    autoencoder = autoencoder_of(model)
    if autoencoder is not None and solver.prior != "latent":
        return (f"{solver.name} works on pixel-space priors; this model is a latent prior (its diffusion runs on "
                f"{'x'.join(map(str, autoencoder.latent_shape))} latents): use a latent solver (bench list)")
    if autoencoder is None and solver.prior == "latent":
        return f"{solver.name} needs a latent prior (a diffusion over an autoencoder's latents); this model is pixel-space"
    return None


def randn_per_image(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise (len(generators), *shape[1:]), image i drawn from generators[i]."""
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=dtype)
                        for g in generators]).to(device)


def rand_per_image(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> Tensor:
    """Uniform [0, 1) noise (len(generators), *shape[1:]), image i drawn from generators[i]."""
    return torch.stack([torch.rand(tuple(shape[1:]), generator=g, device=g.device) for g in generators]).to(device)


def misfit_gradient(op: Physics, y: Tensor, x: Tensor, scale: float = 1.0) -> Tensor:
    """grad_x of ||A(to_image(x / scale)) - y||^2 / 2 summed over the batch (each image's gradient its own),
    by autograd so that A may be any differentiable operator: A^T (A to_image(x / scale) - y) / (2 scale) for
    a linear A (d image / d model = 1/2). No graph is kept."""
    with torch.enable_grad():
        x_var = x.detach().requires_grad_(True)
        misfit = (op.A(to_image(x_var / scale)) - y).flatten(1).square().sum() / 2
        (grad,) = torch.autograd.grad(misfit, x_var)
    return grad


def per_image_norm(x: Tensor) -> Tensor:
    """||x_i|| for each image, shaped (N, 1, 1, 1) for broadcasting."""
    return x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def output_problem(x_hat: Any, x: Tensor) -> str | None:
    """Why `x_hat` cannot be scored against `x` (None if it can): type, shape, dtype and device."""
    expected = f"expected a real floating-point tensor of shape {tuple(x.shape)} on {x.device}"
    if not isinstance(x_hat, Tensor):
        return f"solver returned a {type(x_hat).__name__}; {expected}"
    if x_hat.shape != x.shape:
        return f"solver returned shape {tuple(x_hat.shape)}; {expected}"
    if not x_hat.is_floating_point():  # integer, bool and complex tensors
        return f"solver returned dtype {x_hat.dtype}; {expected}"
    if x_hat.device != x.device:
        return f"solver returned a tensor on {x_hat.device}; {expected}"
    return None
