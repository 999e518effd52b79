"""No count or level is silently replaced by another: a step count beyond the times a grid has, a grid that
rounds the count, a sigma beyond the model's noise levels or a kernel wider than the image is refused before
the run (one line naming the field, the value and the valid range, exit 2, nothing written), and a count
that only the operator decides (ddpm's steps from the time matched to sigma_y) is recorded in each row."""
from __future__ import annotations

import json
import typing

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.models.base import time_for_sigma
from ipbench.solvers import SOLVERS

# (solver, --param values, the one line's fragment) on the test model: T = 1000, 3 x 32 x 32, sigma 0.01..157.4
REFUSED = [
    ("dps", ["steps=1001"], "solver dps.steps=1001: must be in 1..1000 (the model has 1000 diffusion times)"),
    ("latent-dps", ["steps=1001"], "solver latent-dps.steps=1001: must be in 1..1000"),  # refused on any prior
    ("psld", ["steps=1001"], "solver psld.steps=1001: must be in 1..1000"),  # refused on any prior
    ("resample", ["steps=1001"], "solver resample.steps=1001: must be in 1..1000"),  # a latent solver too
    ("ddnm", ["steps=5000"], "solver ddnm.steps=5000: must be in 1..1000"),
    ("pigdm", ["steps=1001"], "solver pigdm.steps=1001: must be in 1..1000"),
    ("reddiff", ["steps=1001"], "solver reddiff.steps=1001: must be in 1..1000"),
    ("score-ald-ddpm", ["steps=1001"], "solver score-ald-ddpm.steps=1001: must be in 1..1000"),
    ("repaint", ["steps=2000"], "solver repaint.steps=2000: must be in 1..1000"),
    ("repaint", ["steps=20", "jump_n_sample=2", "jump_length=20"],
     "solver repaint.jump_length=20: must be in 1..19 (resampling (jump_n_sample=2) jumps back within steps=20)"),
    ("ddpm", ["steps=1001"], "solver ddpm.steps=1001: must be in 1..1000"),
    ("pnp-flow", ["steps=1001"], "solver pnp-flow.steps=1001: must be in 1..1000"),
    ("ot-ode", ["s_start=0.3", "steps=127"], "solver ot-ode.steps=127: must be in 1..126 (the model's diffusion "
                                             "times from t=125, the nearest to s_start=0.3, down to 0)"),
    ("ddpm", ["t=10", "steps=12"], "solver ddpm.steps=12: must be in 1..11 (the times t=10..0)"),
    ("sdedit", ["t0=100", "steps=102"], "solver sdedit.steps=102: must be in 1..101 (the times t0=100..0)"),
    ("sdedit", ["steps=1001"], "solver sdedit.steps=1001: must be in 1..1000"),
    ("ddrm", ["steps=30"], "solver ddrm.steps=30: the grid (skip = T // steps = 33 on T = 1000) has 31 times; "
                           "valid near it: 25 or 40"),
    ("ddrm", ["steps=1001"], "solver ddrm.steps=1001: must be in 1..1000"),
    ("diffpir", ["skip_type=uniform", "steps=1001"], "solver diffpir.steps=1001: must be in 1..1000 "
                                                     "(skip_type=uniform on T = 1000 times)"),
    ("score-ald", ["schedule=strided", "sigma_max=0.5", "steps=146"],
     "solver score-ald.steps=146: must be in 1..145 (schedule=strided from sigma_max's time 144 to 0)"),
    ("score-ald", ["sigma_max=1000"], "solver score-ald.sigma_max=1000: must be in [0.01, 157.4]"),
    ("daps", ["sigma_max=500"], "solver daps.sigma_max=500: must be in [0.01, 157.4]"),
    ("daps", ["sigma_min=0.001", "ode_sigma_min=0.0001"], "solver daps.sigma_min=0.001: must be in [0.01, 157.4]"),
    ("daps", ["ode_sigma_min=0.001"], "solver daps.ode_sigma_min=0.001: must be in [0.01, 157.4]"),
    ("latent-daps", ["sigma_max=500"], "solver latent-daps.sigma_max=500: must be in [0.01, 157.4]"),
    ("latent-daps", ["sigma_min=0.001", "ode_sigma_min=0.0001"],
     "solver latent-daps.sigma_min=0.001: must be in [0.01, 157.4]"),
    ("latent-daps", ["ode_sigma_min=0.001"], "solver latent-daps.ode_sigma_min=0.001: must be in [0.01, 157.4]"),
    ("flowdps", ["steps=1001"], "solver flowdps.steps=1001: must be in 1..1000"),
    ("d-flow", ["steps=1001"], "solver d-flow.steps=1001: must be in 1..1000"),
    ("gaussian-filter", ["kernel_size=65"], "solver gaussian-filter.kernel_size=65: must be in 1..63 "
                                            "(reflect padding on 32 px images)"),
]
# Count fields that no grid replaces, and why: each is run exactly as set (or bounded through another field).
EXEMPT = {
    ("daps", "steps"): "annealing levels snapped to the model's grid with repeats kept: the count runs as set",
    ("daps", "ode_steps"): "Euler steps on a snapped grid with repeats kept: the count runs as set",
    ("daps", "langevin_steps"): "a loop count",
    ("latent-daps", "steps"): "annealing levels snapped to the model's grid with repeats kept: the count runs as set",
    ("latent-daps", "ode_steps"): "Euler steps on a snapped grid with repeats kept: the count runs as set",
    ("latent-daps", "langevin_steps"): "a loop count (HMC or Langevin steps per level)",
    ("score-ald", "steps_each"): "a loop count",
    ("deepinv-dps", "num_steps"): "deepinv's sampler steps through continuous times: any count runs as set",
    ("repaint", "jump_n_sample"): "bounded through jump_length (a jump point must exist)",
    ("ddpm", "t"): "a diffusion time below T (tests/test_bad_values.py)",
    ("tweedie", "t"): "a diffusion time below T (tests/test_bad_values.py)",
    ("sdedit", "t0"): "a diffusion time below T (tests/test_bad_values.py)",
    ("flowdps", "dc_steps"): "a loop count (gradient steps on the clean estimate)",
    ("d-flow", "iterations"): "a loop count (L-BFGS step calls)",
    ("d-flow", "lbfgs_iter"): "L-BFGS's own max_iter: an upper bound its tolerances may stop short of",
    ("reddiff", "sigma_x0"): "the spread of q around mu, not a noise level of the model's grid",
    ("pnp-flow", "samples"): "a loop count",
    ("resample", "skip"): "a period: a fit every skip grid steps (none where skip exceeds the fits' range)",
    ("resample", "lookahead"): "a loop count, ending at the grid's last step as in the code (ddim.py:274)",
    ("resample", "latent_iters"): "an upper bound its stopping rules may stop short of, as the code's max_iters",
    ("resample", "pixel_iters"): "an upper bound its stopping rule may stop short of, as the code's max_iters",
    ("resample", "window"): "a loop count (the iterations the latent fit's stopping rule looks back)",
}


@pytest.mark.parametrize("solver, values, fragment", REFUSED, ids=[f"{s}-{'-'.join(v)}" for s, v, _ in REFUSED])
def test_a_count_the_model_cannot_run_as_set_is_refused(tmp_path, small_model_path, solver, values, fragment):
    out = tmp_path / "run"
    params = [arg for value in values for arg in ("--param", f"{solver}.{value}")]
    result = CliRunner().invoke(cli, ["run", "--solver", solver, "--op", "denoise", *params, "--model",
                                      str(small_model_path), "--images", "photos", "--num-images", "1", "--out",
                                      str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.output
    assert not out.exists()


def test_every_count_field_is_bounded_or_exempt() -> None:
    """A new int field (or noise level) of a built-in solver must be thought about here: refused beyond what
    runs (a case of REFUSED) or exempt with its reason."""
    refused = {(s, v.split("=")[0]) for s, values, fragment in REFUSED for v in values
               if f"{SOLVERS.get(s).name}.{v.split('=')[0]}=" in fragment}
    builtin = [SOLVERS.get(n) for n in SOLVERS if SOLVERS.get(n).__module__.startswith("ipbench.")]
    fields = {(cls.name, p.name) for cls in builtin for p in cls.params()
              if int in (p.type, *typing.get_args(p.type)) or "sigma_" in p.name}
    assert fields - refused - set(EXEMPT) == set()
    assert set(EXEMPT) <= fields and not refused & set(EXEMPT)


@pytest.mark.parametrize("solver, steps", [("ddpm", 20), ("ddpm", 3), ("tweedie", None)])
def test_what_the_operator_decides_is_recorded_in_the_row(tmp_path, small_model, small_model_path, solver, steps):
    """ddpm's grid from the time matched to sigma_y has at most t + 1 times: the row says how many ran (and the
    network evaluations agree), and tweedie's row says its matched time."""
    out = tmp_path / "run"
    params = ["--param", f"{solver}.steps={steps}"] if steps is not None else []
    result = CliRunner().invoke(cli, ["run", "--solver", solver, "--op", "denoise", "--param", "sigma_y=0.025",
                                      *params, "--model", str(small_model_path), "--images", "photos",
                                      "--num-images", "1", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    t = time_for_sigma(small_model.alphas_cumprod, 0.025)
    assert row["status"] == "ok" and row["ran.t"] == t
    if steps is not None:
        assert row["solver.steps"] == steps and row["ran.steps"] == min(steps, t + 1) == row["nfe"]
