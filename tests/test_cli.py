"""The bench CLI through click's CliRunner: files and tables produced, and one-line errors with exit 2."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.results.rounding import decimals_for

PLUGIN = Path(__file__).parent / "plugins" / "toy_solver.py"


@pytest.fixture
def invoke():
    def call(*args: str):
        return CliRunner().invoke(cli, [str(a) for a in args])

    return call


def test_run_writes_rows_metadata_tables_and_grids(invoke, tmp_path, small_model_path):
    out = tmp_path / "run"
    result = invoke("run", "--solver", "hole-fill", "--solver", "tweedie", "--op", "inpaint", "--op", "deblur",
                    "--model", small_model_path, "--images", "photos", "--num-images", "3", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    for name in ("rows.jsonl", "run.json", "table.md", "table.csv", "table.tex", "grid-inpaint-box.png",
                 "grid-deblur-gauss.png"):
        assert (out / name).is_file(), name
    assert "| hole-fill |" in result.output and "| tweedie |" in result.output
    assert "inpaint-box PSNR" in result.output and "LPIPS" in result.output
    summary = pd.read_csv(out / "table.csv")
    assert set(summary["solver"]) == {"hole-fill", "tweedie"}
    assert set(summary["operator"]) == {"inpaint-box", "deblur-gauss"}
    assert (summary["n"] == 3).all() and (summary["failed"] == 0).all()
    rows = pd.read_json(out / "rows.jsonl", lines=True)
    fill_inpaint = rows[(rows.solver == "hole-fill") & (rows.operator == "inpaint-box")]["psnr"]
    psnr_mean = summary.query("solver == 'hole-fill' and operator == 'inpaint-box' and metric == 'psnr'")["mean"].item()
    assert psnr_mean == pytest.approx(fill_inpaint.mean())
    se = summary.query("solver == 'hole-fill' and operator == 'inpaint-box' and metric == 'psnr'")["se"].item()
    assert se == pytest.approx(fill_inpaint.std() / 3 ** 0.5)  # one seed: one row per image
    assert f"{psnr_mean:.{decimals_for(se, 2)}f} ±" in (out / "table.md").read_text()  # rounded where its SE ends
    assert r"\begin{tabular}" in (out / "table.tex").read_text()

    # table and grid can be remade from the folder alone
    assert invoke("table", out).exit_code == 0
    grid = invoke("grid", out, "--max-images", "2")
    assert grid.exit_code == 0 and "grid-inpaint-box.png" in grid.output

    # the same command again resumes: nothing new
    again = invoke("run", "--solver", "hole-fill", "--solver", "tweedie", "--op", "inpaint", "--op", "deblur",
                   "--model", small_model_path, "--images", "photos", "--num-images", "3", "--out", out, "--no-progress")
    assert again.exit_code == 0 and "rows: 0 new, 12 already done" in again.output


def test_plugin_solver_runs_with_its_parameter(invoke, tmp_path, small_model_path):
    out = tmp_path / "plug"
    result = invoke("run", "--plugin", PLUGIN, "--solver", "toy-shrink", "--op", "denoise", "--param", "weight=0.25",
                    "--model", small_model_path, "--images", "photos", "--num-images", "2", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r["solver"] for r in rows} == {"toy-shrink"} and {r["solver.weight"] for r in rows} == {0.25}
    listing = invoke("list", "--plugin", PLUGIN)
    assert "toy-shrink" in listing.output and "weight: float = 0.5" in listing.output


def test_list_shows_every_operator_with_parameters(invoke):
    result = invoke("list")
    assert result.exit_code == 0
    for text in ("inpaint-box (alias inpaint)", "side: float = 0.5", "inpaint-random", "p: float = 0.7",
                 "deblur-gauss (alias deblur)", "padding: str in {reflect", "denoise", "sigma_y: float = 0.025",
                 "tweedie", "hole-fill (alias blur)", "gaussian-filter", "score-ald-ddpm", "gaussian", "photos", "lpips-vgg: lpips "):
        assert text in result.output, text


def test_list_shows_where_each_solver_applies(invoke):
    from tests.plugins import flaky_solvers  # noqa: F401  (registers masks-only and broken-check, once per process)

    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[lines.index("  masks-only: Applies to inpainting only (it declares so); back-projects.") + 2] == \
        "      does not apply to: ct (needs a mask, got ParallelBeamCT); deblur-gauss (needs a mask, got Blur); " \
        "deblur-motion (needs a mask, got Blur); denoise (needs a mask, got Denoising); hdr (needs a mask, got " \
        "ClippedExposure); jpeg (needs a mask, got JPEGRoundTrip); mri (needs a mask, got CartesianMRI); " \
        "phase-retrieval (needs a mask, got FourierMagnitude); sr (needs a mask, got Downsampling)"
    assert "deblur-gauss (its check raised ValueError: cannot tell)" in result.output  # a broken check, no traceback
    assert "      applies to: every operator" in lines  # the solvers that declare nothing
    latent = lines.index("  latent-dps: DPS on a latent prior: the measurement gradient through the decoder.")
    assert "      runs on: latent priors (through the decoder)" in lines[latent + 1:latent + 9]
    assert "      runs on: any prior (it does not use it)" in lines and "      runs on: pixel-space priors" in lines


@pytest.mark.parametrize("args, fragment", [
    (["--solver", "nope", "--op", "inpaint"], "unknown solver 'nope'; valid: "),
    (["--solver", "hole-fill", "--op", "nope"], "unknown operator 'nope'; valid: "),
    (["--solver", "hole-fill", "--op", "inpaint", "--metric", "kid"], "--metric: unknown metric kid; valid: psnr, ssim"),
    (["--solver", "hole-fill", "--op", "inpaint", "--param", "zeta=1"], "no selected solver or operator has a parameter 'zeta'"),
    (["--solver", "hole-fill", "--op", "inpaint", "--param", "hole-fill.sigma=wide"], "hole-fill.sigma='wide': expected float"),
    (["--solver", "hole-fill", "--op", "inpaint", "--param", "inpaint.side=2"], "inpaint-box.side=2.0"),
    (["--solver", "hole-fill", "--op", "deblur", "--param", "padding=mirror"], "valid values are reflect, circular"),
    (["--solver", "hole-fill", "--op", "inpaint", "--param", "sigma"], "expected NAME=VALUE"),
    (["--op", "inpaint"], "no solver given"),
    (["--solver", "hole-fill", "--op", "inpaint", "--model", "nope"], "unknown model 'nope'"),
    (["--solver", "hole-fill", "--op", "inpaint", "--images", "/no/such/dir"], "/no/such/dir"),
    (["--config", "/no/such.toml"], "/no/such.toml: no such file"),
    (["--solver", "hole-fill", "--op", "inpaint", "--config", "/no/such.toml"], "drop --solver/--op"),
    (["--solver", "hole-fill", "--op", "inpaint", "--plugin", "/no/such.py"], "/no/such.py: not a Python file"),
])
def test_user_mistakes_give_one_line_and_exit_2(invoke, tmp_path, args, fragment):
    result = invoke("run", *args, "--out", tmp_path / "x", "--no-progress")
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_cuda_on_a_machine_without_it_is_a_clear_error(invoke, tmp_path, small_model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke("run", "--solver", "hole-fill", "--op", "denoise", "--device", "cuda", "--model", small_model_path,
                    "--out", tmp_path / "x")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_table_of_a_folder_that_is_not_a_run(invoke, tmp_path):
    result = invoke("table", tmp_path)
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_config_suite_runs(invoke, tmp_path, small_model_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(f'''
model = "{small_model_path}"
images = "photos"
num_images = 2
seeds = [0, 1]

[[solver]]
name = "blur"
label = "blur-wide"
sigma = 3.0

[[solver]]
name = "tweedie"

[[operator]]
name = "inpaint-random"
p = 0.5
''')
    result = invoke("run", "--config", suite, "--out", tmp_path / "suite", "--no-progress")
    assert result.exit_code == 0, result.output
    rows = pd.read_json(tmp_path / "suite" / "rows.jsonl", lines=True)
    assert len(rows) == 2 * 2 * 2
    assert set(rows["solver"]) == {"blur-wide", "tweedie"} and set(rows["operator.p"]) == {0.5}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[solver]]\nname = "blur"\nwidth = 2\n[[operator]]\nname = "denoise"\n')
    result = invoke("run", "--config", bad, "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "solver hole-fill has no parameter 'width'" in result.output  # blur: its alias


def test_fast_is_the_gpu_preset_and_says_it_does_nothing_on_cpu(invoke, tmp_path, small_model_path):
    out = tmp_path / "run"
    result = invoke("run", "--solver", "tweedie", "--op", "denoise", "--model", small_model_path, "--images", "photos",
                    "--num-images", "1", "--device", "cpu", "--fast", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "--fast: no effect on CPU" in result.output
    acceleration = json.loads((out / "run.json").read_text())["acceleration"]
    assert acceleration == {"precision": "fp32", "channels_last": False, "compile": False, "tf32": False,
                            "cuda_graphs": False, "layout_opt": False, "fast": False}


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(torch, "compile") or not any(shutil.which(c) for c in ("gcc", "cc", "clang")),
                    reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.slow  # over 5 s on a 2-core CPU
def test_cuda_graphs_path_runs_through_bench_run_and_matches_eager(invoke, tmp_path):
    """--cuda-graphs (plain compile on CPU) through the runner, with a gradient solver and a no-grad one:
    rows as eager's to float rounding, and run.json says which path ran."""
    args = ["run", "--solver", "dps", "--solver", "tweedie", "--op", "inpaint", "--num-images", "2",
            "--param", "dps.steps=3", "--device", "cpu", "--no-progress"]
    eager = invoke(*args, "--out", tmp_path / "eager")
    graphs = invoke(*args, "--cuda-graphs", "--out", tmp_path / "graphs")
    assert eager.exit_code == 0 and graphs.exit_code == 0, graphs.output
    rows = {name: pd.read_json(tmp_path / name / "rows.jsonl", lines=True) for name in ("eager", "graphs")}
    assert (rows["graphs"]["status"] == "ok").all()
    assert (rows["graphs"]["psnr"] - rows["eager"]["psnr"]).abs().max() < 1e-3
    acceleration = json.loads((tmp_path / "graphs" / "run.json").read_text())["acceleration"]
    assert acceleration["cuda_graphs"] and acceleration["compile"]


def test_sharded_run_writes_tables_once_every_shard_is_done(invoke, tmp_path, small_model_path):
    args = ["run", "--solver", "tweedie", "--op", "denoise", "--model", small_model_path, "--images", "photos",
            "--num-images", "3", "--out", tmp_path / "run", "--no-progress"]
    first = invoke(*args, "--shard", "0/2")
    assert first.exit_code == 0, first.output
    assert "shard 0/2: 2 of the 3 images" in first.output and "1 rows of the run are still to come" in first.output
    assert not (tmp_path / "run" / "table.md").exists()
    last = invoke(*args, "--shard", "1/2")
    assert last.exit_code == 0, last.output
    assert "n = 3 per cell" in (tmp_path / "run" / "table.md").read_text()
    assert "n = 3 per cell" in invoke("table", tmp_path / "run").output
    closing = last.output.strip().splitlines()[-1]  # names the rows files a sharded run has, not rows.jsonl
    assert "rows.shard-0-of-2.jsonl, rows.shard-1-of-2.jsonl, run.json" in closing and "rows.jsonl" not in closing
    bad = invoke(*args, "--shard", "2/2")
    assert bad.exit_code == 2 and "--shard 2/2: K must be in 0..N-1" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_bench_help_loads_no_heavy_package() -> None:
    """`bench --help` and `import ipbench` stay quick: commands import torch, pandas, matplotlib and the rest
    inside their functions (docs/architecture.md)."""
    import subprocess
    import sys

    code = ("import sys, ipbench, ipbench.cli; "
            "print(' '.join(m for m in ('torch', 'deepinv', 'lpips', 'pandas', 'scipy', 'matplotlib', 'jinja2', 'optuna') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_run_records_the_command_as_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    """run.json's `command`: `bench ...` from the entry point, `python -m ipbench ...` from the module (as
    torchrun -m ipbench starts it), nothing from other code."""
    from ipbench.cli import _command_line

    monkeypatch.setattr("sys.argv", ["/venv/bin/bench", "run", "--op", "inpaint", "--param", "dps.zeta=0.5 "])
    assert _command_line() == "bench run --op inpaint --param 'dps.zeta=0.5 '"
    monkeypatch.setattr("sys.argv", ["/src/ipbench/__main__.py", "run", "--shard", "auto"])
    assert _command_line() == "python -m ipbench run --shard auto"
    monkeypatch.setattr("sys.argv", ["/usr/lib/python3/site-packages/pytest/__main__.py", "-q"])
    assert _command_line() is None


def _every_command(group: click.Group = cli, path: str = "bench") -> list[tuple[str, click.Command]]:
    """(its name as typed, command) of every command under `group`, subgroups walked too."""
    found = []
    for name, command in group.commands.items():
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found += _every_command(command, f"{path} {name}")
    return found


def test_every_option_of_every_command_has_help_text() -> None:
    options = [(f"{where} {option.opts[0]}", option) for where, command in [("bench", cli), *_every_command()]
               for option in command.params if isinstance(option, click.Option)]
    assert len(options) > 50  # the walk found the commands' options
    missing = [name for name, option in options if not (option.help or "").strip()]
    assert not missing, f"options without help text: {missing}"


def test_version_is_the_package_version(invoke) -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"bench (ipbench) {version('ipbench')}"


def test_metric_help_lists_every_extra_metric_of_the_registry(invoke) -> None:
    from ipbench.results.metric_registry import DEFAULT_METRICS, METRICS

    text = " ".join(invoke("run", "--help").output.split())
    extras = [name for name in METRICS if name not in DEFAULT_METRICS]
    assert "fid" in extras and f"repeatable: {', '.join(extras)}." in text


def test_sample_writes_into_runs_by_default_never_the_current_folder(invoke, tmp_path, monkeypatch, small_model_path):
    monkeypatch.chdir(tmp_path)
    for model in ("gaussian-fashion32", str(small_model_path)):
        result = invoke("sample", "--model", model, "-n", "1", "--steps", "2", "--device", "cpu")
        assert result.exit_code == 0, result.output
    stem = small_model_path.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([
        f"samples-{stem}-n1-steps2-eta1-seed0.png", "samples-gaussian-fashion32-n1-steps2-eta1-seed0.png"])


def _tiny_run(folder: Path) -> Path:
    """A run folder as `bench run` leaves it mid-run, written by hand: run.json and one of its two rows."""
    folder.mkdir()
    config = {"model": "fashion32", "images": None, "num_images": 2, "seeds": [0],
              "solvers": [{"name": "tweedie", "label": "tweedie", "params": {}, "code": None}],
              "operators": [{"name": "denoise", "label": "denoise", "params": {"sigma_y": 0.025}, "code": None}]}
    meta = {"config": config, "model": {"name": "fashion32", "image_shape": [1, 32, 32]},
            "images": {"source": "fashion32-test", "ids": ["a", "b"]}}
    (folder / "run.json").write_text(json.dumps(meta))
    row = {"solver": "tweedie", "operator": "denoise", "image": "a", "seed": 0, "status": "ok", "psnr": 20.0,
           "ssim": 0.5, "lpips": 0.1, "seconds": 0.01, "nfe": 1}
    (folder / "rows.jsonl").write_text(json.dumps(row) + "\n")
    return folder


@pytest.mark.parametrize("command, expected, not_loaded", [
    ("status", "total: 1/2 rows", ("torch", "deepinv", "lpips", "pandas", "scipy", "matplotlib", "jinja2")),
    ("table", "| tweedie |", ("torch", "deepinv", "lpips", "scipy", "matplotlib", "jinja2")),
    ("report", "wrote ", ("torch", "deepinv", "lpips", "scipy.stats")),
    ("grid", "grid-denoise.png", ("torch", "deepinv", "lpips", "pandas", "scipy", "matplotlib", "jinja2")),
])
def test_light_commands_do_not_import_torch(tmp_path: Path, command: str, expected: str,
                                            not_loaded: tuple[str, ...]) -> None:
    """`bench status` and `bench table` read JSON files (and pandas for the table), `bench report` them and
    the run's PNGs, `bench grid` composes the PNGs: no torch nor deepinv, which take seconds to import
    (docs/architecture.md), and the report no scipy.stats (half a second) where no pair has more than 300
    images that differ."""
    import subprocess
    import sys

    from PIL import Image

    from ipbench.run_paths import measurement_png, reconstruction_png, truth_png

    run_dir = _tiny_run(tmp_path / "run")
    for path in (truth_png(run_dir, "a"), measurement_png(run_dir, "denoise", "a", 0),
                 reconstruction_png(run_dir, "denoise", "tweedie", "a", 0)):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (32, 32), 128).save(path)
    code = ("import sys\nfrom ipbench.cli import cli\n"
            f"cli.main([{command!r}, {str(run_dir)!r}], prog_name='bench', standalone_mode=False)\n"
            f"print('loaded:', *[m for m in {not_loaded!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "loaded:"


def _all_command_paths() -> list[list[str]]:
    return [where.split()[1:] for where, _ in _every_command()]


@pytest.mark.parametrize("args, culprit", [
    (["run", "--solverr", "dps"], "--solverr"),  # an unknown option
    (["run", "--batch-size", "0"], "--batch-size"),  # outside an option's range
    (["run", "--batch-size", "many"], "--batch-size"),  # not of an option's type
    (["run", "--precision", "fp8"], "--precision"),  # not one of an option's choices
    (["run", "--out"], "--out"),  # an option without its value
    (["table"], "RUN"),  # a missing argument
    (["report", "a", "--resamples", "1e9"], "--resamples"),
    (["nosuch"], "nosuch"),  # an unknown command
    (["--nosuch"], "--nosuch"),  # an unknown option of the group
])
def test_click_parsing_mistakes_are_one_line_naming_the_culprit(args, culprit):
    result = CliRunner().invoke(cli, args, prog_name="bench")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and culprit in lines[0]


@pytest.mark.parametrize("path", _all_command_paths(), ids=" ".join)
def test_every_command_answers_an_unknown_option_in_one_line(path):
    required = ["--jobs", "1"] if path == ["submit"] else []  # else its missing --jobs is the first mistake
    result = CliRunner().invoke(cli, [*path, *required, "--no-such-option"], prog_name="bench")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("Error: bench") and "--no-such-option" in result.output
