"""What each built-in solver assumes of the measurement noise, and so what it does under Poisson noise.

Every solver's derivation is for Gaussian noise, or for none. Those that use a noise level read it through
`noise_level(op)` (operators/base.py): sigma_y under Gaussian noise; under Poisson and Poisson-Gaussian noise
the effective sqrt(sigma_y^2 + 1 / (2 rate)), the Poisson noise's std at intensity 1/2 (operators/noise.py). So
under Poisson noise they run their Gaussian rule at that std, never at sigma_y = 0, where some would turn
noiseless (DDNM's plain projection, DDRM's and RePaint's exact data) or divide by zero. Only DPS has a rule of
its own for Poisson noise, its official code's (solvers/dps.py). No solver implements a Poisson likelihood that
its paper or code does not have.

A plugin solver may state its own assumption as a class attribute `noise_assumed = "..."`. docs/operators.md's
table is `markdown_table()` (tests/test_noise_solvers.py checks).
"""
from __future__ import annotations

EFFECTIVE = "under Poisson noise the effective sigma"
NONE = "no noise model: ignores the noise, whichever it is"

NOISE_ASSUMED: dict[str, str] = {
    "dps": "Gaussian, the squared residual of A(x0_hat) without sigma_y; noise=poisson: the official code's step, "
           "times the mean of 1 / abs(2 y - 1) per image (cancels under normalize=grad); poisson-gaussian: the "
           "Gaussian step",
    "latent-dps": "as dps, with A applied to decode(z0_hat)",
    "psld": "Gaussian, the residual of A(decode(z0_hat)) without sigma_y (its norm, the code's step, by default) and "
            "the gluing term through A^T y; ignores the noise model (no Poisson factor, unlike latent-dps)",
    "resample": "Gaussian without sigma_y: its DPS step the norm of the residual of A(decode(z0_hat)), its fits the "
                "mean squared residual down to tol; noise=poisson: the code's DPS step, times the mean of "
                "1 / abs(2 y - 1) per image (as dps), the fits unchanged",
    "deepinv-dps": "Gaussian, deepinv's L2 data fidelity without sigma_y; ignores the noise model",
    "ddrm": f"Gaussian of std noise_level(op) (its nsr per singular value); {EFFECTIVE}",
    "ddnm": f"Gaussian of std noise_level(op) in DDNM+'s lambda_t and injected noise; {EFFECTIVE}",
    "diffpir": f"Gaussian, sigma_n = max(noise_level(op), 0.001) in rho_t; {EFFECTIVE}",
    "pigdm": f"Gaussian of std noise_level(op) in (r_t^2 A A^T + sigma^2 I)^-1; {EFFECTIVE}",
    "daps": f"Gaussian of std tau (default 0.003536, the code's, whatever the noise); tau=none: noise_level(op), "
            f"{EFFECTIVE}",
    "latent-daps": f"as daps, on A(decode(z0)) with the code's clamped gradient: Gaussian of std tau (default "
                   f"0.003536, whatever the noise); tau=none: noise_level(op), {EFFECTIVE}",
    "pnp-flow": "Gaussian, the squared residual of A(x) without sigma_y (the code's step sigma^2 lr and its fidelity's "
                "1 / sigma^2 cancel); ignores the noise model",
    "ot-ode": f"Gaussian of std noise_level(op) in (r_t^2 A A^T + sigma^2 I)^-1; {EFFECTIVE}",
    "reddiff": "Gaussian, the squared residual of A(mu) without sigma_y (absorbed in lambda, as in the code); "
               "ignores the noise model",
    "repaint": f"Gaussian: noisy_y=match counts noise_level(op) in the noise injected with y; {EFFECTIVE}",
    "score-ald": f"Gaussian, variance noise_level(op)^2 + gamma_i^2 in the annealed likelihood; {EFFECTIVE}",
    "score-ald-ddpm": f"Gaussian, variance noise_level(op)^2 + gamma_t^2; {EFFECTIVE}",
    "flowdps": "Gaussian, the norm of the residual of A(x0_hat) without sigma_y (the code's data consistency); "
               "ignores the noise model",
    "d-flow": "Gaussian, the squared residual of A(T(z)) without sigma_y (absorbed in lam, as in the code); "
              "ignores the noise model",
    "tikhonov": f"Gaussian, weight 1 / max(noise_level(op), 0.001)^2; {EFFECTIVE}",
    "tweedie": f"Gaussian denoising at the time matched to noise_level(op) (t=none); {EFFECTIVE}",
    "ddpm": f"Gaussian denoising from the time matched to noise_level(op) (t=none); {EFFECTIVE}",
    "sdedit": f"{NONE} (y, or its back-projection, is the guide it noises)",
    "hole-fill": f"{NONE} (a filter of fixed width)",
    "gaussian-filter": f"{NONE} (a fixed filter of y)",
}


def noise_assumption(cls: type) -> str:
    """A solver class's assumption: its own `noise_assumed`, else the built-in table's line."""
    own = getattr(cls, "noise_assumed", None)
    if isinstance(own, str) and own:
        return own
    return NOISE_ASSUMED.get(getattr(cls, "name", ""), "not stated (a plugin without `noise_assumed`)")


def markdown_table(names: list[str]) -> str:
    """docs/operators.md's table: each built-in solver and what it assumes of the noise (no "|" in a line, which
    would end its cell)."""
    lines = ["| solver | assumes, and does under Poisson noise |", "|---|---|"]
    lines += [f"| `{name}` | {NOISE_ASSUMED[name]} |" for name in names]
    return "\n".join(lines)
