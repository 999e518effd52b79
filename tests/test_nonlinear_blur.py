"""Nonlinear deblurring (`deblur-nonlinear`): bkse's blur network loaded from a hub-cache file of random weights of
the published shapes (nothing is downloaded), its forward map against DPS's formula and the network's layers
recomputed here with torch.nn.functional, its gradient against finite differences, the per-image kernel latent,
the one-line errors for a missing or foreign file and unsupported images, and the solvers that decline it.

References, written again here from the sources: DPS's NonlinearBlurOperator.forward (DPS2022/diffusion-posterior-
sampling at effbde7, guided_diffusion/measurements.py:195-200) on [-1, 1] data, and bkse's KernelWizard.adaptKernel
(VinAIResearch/blur-kernel-space-exploring at f2fe73e, models/kernel_encoding/kernel_wizard.py:102-161, with
models/backbones/unet_parts.py:27-109 and resnet.py:71-89) for default.yml's configuration.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.errors import UsageError
from ipbench.operators import Operator, is_linear, measure, noise_level
from ipbench.operators import nonlinear_blur as nb
from ipbench.solvers import SOLVERS
from tests.conftest import generators
from tests.test_nonlinear_operators import GRADIENT_SOLVERS, LINEAR_ONLY
from tests.test_solvers import make_fast

F64 = torch.float64
SHAPE = (3, 128, 128)  # the smallest size the network takes: one latent cell


def random_state(seed: int, extractor: bool = False) -> dict[str, torch.Tensor]:
    """Random weights of the forward map's published shapes: normal, std 1 / sqrt(fan-in), a tenth of that in the
    residual blocks (as bkse initialises them, resnet.py:83, so that 30 of them leave a blur of a few grey levels, not
    a saturated image), biases 0.01 std. `extractor`: also the kernel extractor's tensors, as the published file has
    them, stored as zero-stride views of one number (a few bytes instead of 370 MB)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in nb.forward_shapes().items():
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        std = (0.1 if ".conv" in key else 1) / math.sqrt(fan_in) if len(shape) > 1 else 0.01
        state[key] = std * torch.randn(tuple(shape), generator=g)
    if extractor:
        state.update({k: torch.zeros(1).expand(*shape) for k, shape in nb.extractor_shapes().items()})
    return state


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch hub cache holding checkpoints/GOPRO_wVAE.pth: random weights with the kernel extractor's tensors."""
    home = tmp_path_factory.mktemp("torch")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(random_state(0, extractor=True), checkpoints / nb.WEIGHTS_FILE)
    return home


@pytest.fixture
def hub(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch.hub.get_dir() pointed at the module's cache; its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(weights_dir))
    assert Path(torch.hub.get_dir()) == weights_dir / "hub"
    return weights_dir / "hub" / "checkpoints"


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def build(shape=SHAPE, n: int = 2, seed: int = 0, **params):
    return Operator.create(nb.NAME, params).build(shape, generators(n, seed), "cpu")


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message and message.strip()
    return message


# --- bkse's adaptKernel, layer by layer, from the state dict -------------------------------------------------------


def residual(w: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    """ResidualBlock_noBN: x + conv2(relu(conv1(x))), 3 x 3, padding 1."""
    h = F.relu(F.conv2d(x, w[p + "conv1.weight"], w[p + "conv1.bias"], padding=1))
    return x + F.conv2d(h, w[p + "conv2.weight"], w[p + "conv2.bias"], padding=1)


def adapter(w: dict, p: str, x: torch.Tensor, k: torch.Tensor, depth: int) -> torch.Tensor:
    """UnetSkipConnectionBlock with norm none, levels 0 (outermost) to 4 (innermost): down = [LeakyReLU(0.2) in
    place,] conv 4x4/2 without bias; up = ReLU, transposed conv 4x4/2 (bias only outermost)[, tanh]; the skip
    concatenates the level's input after the in-place LeakyReLU."""
    if depth == 0:
        h = F.conv2d(x, w[p + "down.0.weight"], stride=2, padding=1)
        h = adapter(w, p + "submodule.", h, k, 1)
        return torch.tanh(F.conv_transpose2d(F.relu(h), w[p + "up.1.weight"], w[p + "up.1.bias"], stride=2, padding=1))
    x = F.leaky_relu(x, 0.2)
    h = F.conv2d(x, w[p + "down.1.weight"], stride=2, padding=1)
    h = torch.cat([h, k], 1) if depth == 4 else adapter(w, p + "submodule.", h, k, depth + 1)
    return torch.cat([F.conv_transpose2d(F.relu(h), w[p + "up.1.weight"], stride=2, padding=1), x], 1)


def adapt_kernel(w: dict, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """KernelWizard.adaptKernel(x, k) of default.yml (nf 64, 10 front and 20 back residual blocks)."""
    conv = lambda h, i, **kw: F.conv2d(h, w[f"{i}.weight"], w[f"{i}.bias"], padding=1, **kw)  # noqa: E731
    h = F.leaky_relu(conv(x, "feature_extractor.0"), 0.1)
    h = F.leaky_relu(conv(h, "feature_extractor.2", stride=2), 0.1)
    h = F.leaky_relu(conv(h, "feature_extractor.4", stride=2), 0.1)
    for i in range(6, 16):
        h = residual(w, f"feature_extractor.{i}.", h)
    h = adapter(w, "adapter.model.", h, k, 0)
    for i in range(20):
        h = residual(w, f"recon_trunk.{i}.", h)
    h = F.leaky_relu(F.pixel_shuffle(conv(h, "recon_trunk.20"), 2), 0.1)
    h = F.leaky_relu(F.pixel_shuffle(conv(h, "recon_trunk.23"), 2), 0.1)
    h = F.leaky_relu(conv(h, "recon_trunk.26"), 0.1)
    return x + conv(h, "recon_trunk.28")


def dps_forward(w: dict, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """DPS's forward on its [-1, 1] data x_m = 2 x - 1, mapped back to [0, 1]: one image at a time, as DPS runs."""
    x_m = 2 * x - 1
    blurred = adapt_kernel(w, (x_m + 1.0) / 2.0, k)
    y_m = (blurred * 2.0 - 1.0).clamp(-1, 1)
    return (y_m + 1) / 2


# --- loading and the forward map ----------------------------------------------------------------------------------


def test_the_hub_file_loads_strict_and_a_is_dps_forward_map(hub: Path) -> None:
    """The default reads GOPRO_wVAE.pth from the hub cache: the network holds the file's forward-map tensors exactly
    (all 145 of them, nothing else), and A(x) is DPS's clamp(2 G(x, k) - 1, -1, 1) in image units with G bkse's
    adaptKernel recomputed layer by layer here, per image with its own latent, to float32 rounding; the clamp acts
    (some pixels saturate, most do not)."""
    physics = build()
    file = torch.load(hub / nb.WEIGHTS_FILE, weights_only=True)
    loaded = physics.network.state_dict()
    assert set(loaded) == {k for k in file if not k.startswith(nb.EXTRACTOR_PREFIX)}
    assert all(torch.equal(loaded[k], file[k]) for k in loaded)
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = physics.A(x)
        want = torch.cat([dps_forward(file, x[i:i + 1], physics.latents[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(y, want, rtol=0, atol=2e-5)
    saturated = float(((y == 0) | (y == 1)).float().mean())
    assert 0.001 < saturated < 0.5, saturated
    assert 0.01 < float((y - x).abs().mean()) < 0.5  # the network changes the image: not the identity


def test_a_greyscale_image_is_measured_as_grey_rgb(hub: Path) -> None:
    """1 x 128 x 256: the latent is (512, 1, 2), and y is the channel mean of the RGB operator's y on R = G = B
    (same generators, so same latents)."""
    grey = build((1, 128, 256), n=1, seed=3)
    rgb = build((3, 128, 256), n=1, seed=3)
    assert grey.latents.shape == (1, 512, 1, 2) and torch.equal(grey.latents, rgb.latents)
    x = torch.rand(1, 1, 128, 256, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(grey.A(x), rgb.A(x.repeat(1, 3, 1, 1)).mean(1, keepdim=True), rtol=0, atol=1e-6)


def test_the_kernel_latent_is_drawn_per_image_from_its_generator(hub: Path) -> None:
    """Image i's latent is 1.2 times N(0, I) of shape (512, H / 128, W / 128) from its own generator (DPS's
    torch.randn(1, 512, 2, 2) * 1.2 at 256 px): the same alone or in a batch, other per image."""
    batch = build((3, 256, 256), n=3, seed=10)
    assert batch.latents.shape == (3, 512, 2, 2)
    for i in range(3):
        want = 1.2 * torch.randn(512, 2, 2, generator=torch.Generator().manual_seed(10 + i))
        assert torch.equal(batch.latents[i], want)
    alone = Operator.create(nb.NAME).build((3, 256, 256), [torch.Generator().manual_seed(11)], "cpu")
    assert torch.equal(alone.latents[0], batch.latents[1])
    assert not torch.equal(batch.latents[0], batch.latents[1])


def test_an_images_measurement_does_not_depend_on_its_batch(hub: Path) -> None:
    """Image b measured in a batch [g_a, g_b] gets the y it gets alone with g_b (its blur and its noise)."""
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(12))
    gens, alone = generators(2, seed=30), [torch.Generator().manual_seed(31)]
    with torch.no_grad():
        y = measure(Operator.create(nb.NAME).build(SHAPE, gens, "cpu"), x, gens)
        y_b = measure(Operator.create(nb.NAME).build(SHAPE, alone, "cpu"), x[1:], alone)
    torch.testing.assert_close(y[1], y_b[0], rtol=0, atol=1e-6)


def test_the_measurement_noise_follows_the_operator_draws(hub: Path) -> None:
    """measure adds sigma_y n (default 0.025, DPS's 0.05 on [-1, 1]) drawn from each generator after its latent."""
    assert Operator.create(nb.NAME).sigma_y == 0.025
    gens = generators(1, seed=20)
    physics = Operator.create(nb.NAME).build(SHAPE, gens, "cpu")
    assert noise_level(physics) == pytest.approx(0.025)
    x = torch.rand(1, *SHAPE, generator=torch.Generator().manual_seed(21))
    with torch.no_grad():
        y = measure(physics, x, gens)
        g = torch.Generator().manual_seed(20)
        torch.randn(512, 1, 1, generator=g)  # the latent's draw
        torch.testing.assert_close(y, physics.A(x) + 0.025 * torch.randn(1, *SHAPE, generator=g), rtol=0, atol=1e-6)


def test_gradient_matches_finite_differences(hub: Path) -> None:
    """d/de ||y - A(x + e v)||^2 at e = 0 by autograd (DPS, RED-diff, Score-ALD) and by deepinv's A_vjp (DAPS) against
    a central difference, float64, in a random direction v. The ReLUs and the clamp make A piecewise smooth: a step
    of 1e-7 crosses few of their kinks (the difference is 5e-7 relative to the derivative here, 2e-3 at 1e-5)."""
    physics = build(n=1).double()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(1, *SHAPE, generator=g, dtype=F64)
    v = torch.randn(1, *SHAPE, generator=g, dtype=F64)
    y = torch.rand(1, *SHAPE, generator=g, dtype=F64)
    misfit = lambda z: (y - physics.A(z)).square().sum()  # noqa: E731
    x_var = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(misfit(x_var), x_var)
    h = 1e-7
    with torch.no_grad():
        central = float((misfit(x + h * v) - misfit(x - h * v)) / (2 * h))
        vjp = physics.A_vjp(x, physics.A(x) - y)  # = grad / 2
    assert abs(central) > 1.0  # not a flat misfit
    assert float((grad * v).sum()) == pytest.approx(central, rel=1e-5)
    assert float((2 * vjp * v).sum()) == pytest.approx(central, rel=1e-5)


def test_it_is_nonlinear_and_the_linear_only_solvers_decline(hub: Path) -> None:
    """Flagged nonlinear, with no adjoint, and truly so (A(a u + b v) differs from a A u + b A v); the solvers built
    on A^T, A^+, an SVD or a mask decline with a reason, those that take A through autograd accept it (RED-diff
    starting from A_dagger(y) = A(y), its H_pinv for deblur_nl, utils/degredations.py:875-876)."""
    physics = build(n=1)
    assert not is_linear(physics) and not hasattr(physics, "A_adjoint")
    g = torch.Generator().manual_seed(7)
    u, v = torch.rand(1, *SHAPE, generator=g), torch.rand(1, *SHAPE, generator=g)
    with torch.no_grad():
        gap = float((physics.A(0.7 * u - 1.3 * v) - 0.7 * physics.A(u) + 1.3 * physics.A(v)).norm())
        assert gap > 1e-2 * float(physics.A(u).norm())
        assert torch.equal(physics.A_dagger(u), physics.A(u))
    like = torch.zeros(1, *SHAPE)
    for name in LINEAR_ONLY:
        reason = make_fast(name).unsupported(physics, like)
        assert isinstance(reason, str) and reason.strip(), name
    for name in GRADIENT_SOLVERS:
        assert make_fast(name).unsupported(physics, like) is None, name
    assert LINEAR_ONLY | GRADIENT_SOLVERS <= set(SOLVERS.names())


# --- files and errors ---------------------------------------------------------------------------------------------


def test_weights_param_reads_another_file_and_the_subset_file_loads(empty_hub: Path, tmp_path: Path) -> None:
    """`weights=PATH` reads that file; a file of the forward map's tensors alone (no kernel extractor) loads too
    (constant tensors, as zero-stride views: only the loading is tested here)."""
    path = tmp_path / "subset.pth"
    state = {k: torch.full((1,), 0.5).expand(*shape) for k, shape in nb.forward_shapes().items()}
    torch.save(state, path)
    physics = build(n=1, weights=str(path))
    assert all(torch.equal(physics.network.state_dict()[k], state[k]) for k in state)
    assert Operator.create(nb.NAME, {"weights": str(path)}).input_files() == {f"operator {nb.NAME}.weights": str(path)}


def test_missing_hub_file_is_one_line_naming_it_and_its_source(empty_hub: Path) -> None:
    with pytest.raises(UsageError) as info:
        build(n=1)
    message = one_line(info)
    assert f"weights file {empty_hub / nb.WEIGHTS_FILE} not found" in message
    assert "drive.google.com/file/d/1vRoDpIsrTRYZKsOMPNbPcMtFDpCT6Foy" in message
    assert f"--param {nb.NAME}.weights=" in message
    assert not empty_hub.exists()  # nothing downloaded, nothing created


def test_missing_weights_param_file_is_one_line(empty_hub: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        build(n=1, weights=str(tmp_path / "none.pth"))
    message = one_line(info)
    assert f"{nb.NAME}.weights=" in message and str(tmp_path / "none.pth") in message and nb.WEIGHTS_FILE in message


@pytest.mark.parametrize("damage", ["shape", "missing", "extra", "extractor-shape", "not-a-torch-file"])
def test_a_foreign_file_is_one_line_naming_it(empty_hub: Path, tmp_path: Path, damage: str) -> None:
    """A file that is not this network's (a tensor of another shape, one missing, one unknown, a kernel-extractor
    tensor of another shape, no torch file at all) is refused in one line that names it and what is wrong."""
    path = tmp_path / f"{damage}.pth"
    state = {k: torch.zeros(1).expand(*s) for k, s in nb.forward_shapes().items()}
    if damage == "shape":
        state["adapter.model.up.1.weight"] = torch.zeros(64, 64, 4, 4)
    elif damage == "missing":
        del state["recon_trunk.28.bias"]
    elif damage == "extra":
        state["head.weight"] = torch.zeros(3)
    elif damage == "extractor-shape":
        state.update({k: torch.zeros(1).expand(*s) for k, s in nb.extractor_shapes().items()})
        state["kernel_extractor.model.1.weight"] = torch.zeros(64, 64, 7, 7)
    if damage == "not-a-torch-file":
        path.write_bytes(b"not a checkpoint")
    else:
        torch.save(state, path)
    with pytest.raises(UsageError) as info:
        build(n=1, weights=str(path))
    message = one_line(info)
    assert str(path) in message
    fragment = {"shape": "shape mismatch", "missing": "missing key", "extra": "unexpected key",
                "extractor-shape": "kernel_extractor.model.1.weight",
                "not-a-torch-file": "not a plain file of tensors"}[damage]
    assert fragment in message, message


@pytest.mark.parametrize(("shape", "fragment"), [((3, 32, 32), "32 x 32"), ((3, 256, 200), "256 x 200"),
                                                 ((2, 128, 128), "2-channel")])
def test_unsupported_images_are_one_line_before_any_file(empty_hub: Path, shape, fragment: str) -> None:
    """Sides must be multiples of 128 and images RGB or grey; said before the weights are looked for."""
    with pytest.raises(UsageError) as info:
        build(shape, n=1)
    message = one_line(info)
    assert fragment in message and "not found" not in message


def test_bench_list_shows_it_without_the_weights(empty_hub: Path) -> None:
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    assert f"{nb.NAME} (alias nonlinear-blur)" in result.output and "weights: str = ''" in result.output
