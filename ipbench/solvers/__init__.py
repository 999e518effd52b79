"""Solvers: the base class, the registry and one file per solver."""
from ipbench.solvers.base import SOLVERS, Solver, randn_per_image, register_solver
from ipbench.solvers import (  # noqa: F401  (importing registers the built-in solvers, one module each)
    daps as _daps,
    ddnm as _ddnm,
    ddpm as _ddpm,
    ddrm as _ddrm,
    deepinv_dps as _deepinv_dps,
    diffpir as _diffpir,
    dflow as _dflow,
    dps as _dps,
    flowdps as _flowdps,
    gaussian_filter as _gaussian_filter,
    hole_fill as _hole_fill,
    latent_daps as _latent_daps,
    latent_dps as _latent_dps,
    ot_ode as _ot_ode,
    pigdm as _pigdm,
    pnp_flow as _pnp_flow,
    psld as _psld,
    reddiff as _reddiff,
    repaint as _repaint,
    resample as _resample,
    score_ald as _score_ald,
    score_ald_ddpm as _score_ald_ddpm,
    sdedit as _sdedit,
    tikhonov as _tikhonov,
    tweedie as _tweedie,
)

__all__ = ["SOLVERS", "Solver", "register_solver", "randn_per_image"]
