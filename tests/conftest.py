"""Shared fixtures: a small Gaussian score model (3x32x32, fitted to the bundled photos) as a checkpoint."""
from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ipbench.data import load_images
from ipbench.models import GaussianScoreModel, save_checkpoint

SMALL_SHAPE = (3, 32, 32)


class ShellPayload:
    """Unpickling this runs a shell command (os.system) that creates `marker`: what the loaders must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """The tests run many ops on tiny tensors: one intra-op thread is faster, and immune to OpenMP
    spin-waits when the cores are shared (two threads made some modules 5-10x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test suite started under torchrun or inside a SLURM job must not shard the runs it makes: the
    launchers' variables are removed for every test (tests that want them set their own)."""
    from ipbench.benchmark.shard import LAUNCHER_VARIABLES

    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def small_model() -> GaussianScoreModel:
    return GaussianScoreModel.fit(load_images("photos", SMALL_SHAPE).images)


@pytest.fixture(scope="session")
def small_latent_prior():
    """A latent prior over SMALL_SHAPE images: a random linear autoencoder to 3x16x16 latents and a Gaussian fitted
    to the photos' latents (models/linear_autoencoder.py), for the solvers that run on latent priors."""
    from ipbench.models.linear_autoencoder import gaussian_latent_prior

    return gaussian_latent_prior(load_images("photos", SMALL_SHAPE).images, (3, 16, 16))


def prior_for(solver_name: str, small_model, small_latent_prior):
    """The small prior a solver is defined on: the latent one for latent solvers, else the pixel Gaussian."""
    from ipbench.solvers import SOLVERS

    return small_latent_prior if SOLVERS.get(solver_name).prior == "latent" else small_model


@pytest.fixture(scope="session")
def small_model_path(small_model: GaussianScoreModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "gaussian32.pt"
    save_checkpoint(small_model, path)
    return path


# Registered operators that the registry-wide contract tests (tests/test_operators.py, tests/test_noise.py) cannot
# build at their 16 and 32 px sizes, and where their contract is tested instead.
TESTED_ELSEWHERE = {
    "deblur-nonlinear": "needs bkse's weights file and sides that are multiples of 128; its contract is tested in "
                        "tests/test_nonlinear_blur.py on random weights at 128 and 256 px",
}


def skip_if_tested_elsewhere(name: str) -> None:
    """pytest.skip, with the reason, for an operator of TESTED_ELSEWHERE (by any of its names)."""
    from ipbench.operators import OPERATORS

    canonical = OPERATORS.canonical(name)
    if canonical in TESTED_ELSEWHERE:
        pytest.skip(f"{canonical} {TESTED_ELSEWHERE[canonical]}")


def generators(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


@pytest.fixture(scope="session")
def synthetic_ffhq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the FFHQ folder 00000: three small PNGs named like the first three images."""
    from ipbench.data import save_png

    folder = tmp_path_factory.mktemp("ffhq") / "00000"
    for i in range(3):
        save_png(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)), folder / f"{i:05d}.png")
    return folder


@pytest.fixture(autouse=True)
def _ffhq_points_at_synthetic_images(monkeypatch: pytest.MonkeyPatch, synthetic_ffhq_dir: Path) -> None:
    """Tests never read a user's real FFHQ copy, and the registered ffhq-1k set always resolves."""
    monkeypatch.setenv("IPBENCH_FFHQ_DIR", str(synthetic_ffhq_dir))


class CompilationLog(list):
    """Graph compilations as (forward|backward, warm-up|call); `delay` seconds are added to each one."""

    delay = 0.0


@pytest.fixture
def recorded_compilation(monkeypatch: pytest.MonkeyPatch) -> Iterator[CompilationLog]:
    """torch.compile as seen by CompiledModel, swapped for a backend that traces forward and backward graphs
    through AOTAutograd (as inductor does) but runs them as traced, without code generation: fast, and no
    C++ compiler needed. Each graph compilation is recorded as (forward|backward, warm-up|call)."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    from ipbench.models import compile as compile_module

    events = CompilationLog()
    phase = ["call"]

    def compiler(kind: str):
        def compile_graph(graph, example_inputs):
            time.sleep(events.delay)
            events.append((kind, phase[0]))
            return make_boxed_func(graph.forward)
        return compile_graph

    backend = aot_autograd(fw_compiler=compiler("forward"), bw_compiler=compiler("backward"))
    real_compile, real_warm_up = torch.compile, compile_module.CompiledModel._warm_up

    def traced_compile(fn, mode=None, options=None, dynamic=None):
        return real_compile(fn, backend=backend, dynamic=dynamic)

    def marked_warm_up(self, x_t, t):
        phase[0] = "warm-up"
        try:
            real_warm_up(self, x_t, t)
        finally:
            phase[0] = "call"

    torch._dynamo.reset()
    monkeypatch.setattr(compile_module.torch, "compile", traced_compile)
    monkeypatch.setattr(compile_module.CompiledModel, "_warm_up", marked_warm_up)
    yield events
    torch._dynamo.reset()


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty torch hub cache (its checkpoints folder is yielded); metric networks built from an earlier
    cache are forgotten, before and after, so each test loads its own files."""
    from ipbench.results import fid, lpips_networks

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    lpips_networks.lpips_network.cache_clear()
    fid.inception.cache_clear()
    yield tmp_path / "torch" / "hub" / "checkpoints"
    lpips_networks.lpips_network.cache_clear()
    fid.inception.cache_clear()


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium that starts here (its path), for the browser tests; they skip with one line where
    none is installed or it cannot start (a sandbox-less container, say), which is not the page's fault."""
    import tempfile

    from ipbench.checks.browser import find_chromium, open_page
    from ipbench.errors import UsageError

    found = find_chromium()
    if found is None:
        pytest.skip("chromium not installed (apt-get install chromium); browser checks skipped")
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.html"
        probe.write_text("<!doctype html><title>probe</title>")
        try:
            open_page(probe, timeout=60)
        except UsageError as exc:
            pytest.skip(f"chromium does not start here ({exc}); browser checks skipped")
    return found
