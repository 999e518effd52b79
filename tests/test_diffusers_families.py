"""`diffusers:DIR` for the flow-matching and EDM families (models/diffusers_unet.py, models/ve.py), on small random
UNet2DModels saved by the test (nothing downloaded): each is the family diffusers' own scheduler says it is,
checked against that scheduler's formulas, and what cannot be reproduced is one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ipbench.errors import UsageError
from ipbench.models import load_model
from ipbench.models.denoiser import denoise
from ipbench.models.flow import FlowModel, velocity
from ipbench.models.ve import VEModel

diffusers = pytest.importorskip("diffusers", reason="diffusers is an optional extra")


def _unet():
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                                 layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    with torch.no_grad():
        for p in unet.parameters():  # diffusers zero-initialises some layers; random everywhere instead
            p.normal_(0.0, 0.1)
    return unet.eval()


def _folder(root: Path, scheduler) -> tuple[Path, object]:
    unet = _unet()
    unet.save_pretrained(root)
    scheduler.save_pretrained(root)
    return root, unet


def _x(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_a_flow_matching_folder_is_a_flow_model_stepping_as_its_scheduler(tmp_path):
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    folder, unet = _folder(tmp_path / "flow", scheduler)
    model = load_model(f"diffusers:{folder}")
    assert isinstance(model, FlowModel) and model.continuous
    scheduler.set_timesteps(4)
    x = _x()
    t, sigma, sigma_next = scheduler.timesteps[1], float(scheduler.sigmas[1]), float(scheduler.sigmas[2])
    with torch.no_grad():
        output = unet(x, t.expand(2)).sample
        scheduler._step_index = 1  # the step from sigmas[1] to sigmas[2], as the scheduler takes it
        theirs = scheduler.step(output, t, x).prev_sample
        ours = x + (sigma_next - sigma) * velocity(model, x, sigma)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert float(output.abs().mean()) > 0.01  # not a network that outputs nothing


def test_an_edm_folder_is_a_ve_denoiser_with_the_schedulers_preconditioning(tmp_path):
    scheduler = diffusers.EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5)
    folder, unet = _folder(tmp_path / "edm", scheduler)
    model = load_model(f"diffusers:{folder}")
    assert isinstance(model, VEModel) and model.continuous
    x = _x()
    for sigma in (0.01, 0.7, 30.0):
        s = torch.tensor(sigma)
        with torch.no_grad():
            inner = unet(scheduler.precondition_inputs(x, s), scheduler.precondition_noise(s).expand(2)).sample
            theirs = scheduler.precondition_outputs(x, inner, s)
            torch.testing.assert_close(denoise(model, x, sigma), theirs, rtol=1e-5, atol=1e-5)
    sigmas = (1 / model.alphas_cumprod - 1).sqrt()  # its VP grid: its own training range, increasing
    assert abs(float(sigmas[0]) - 0.002) < 1e-6 and abs(float(sigmas[-1]) - 80.0) < 1e-3
    with torch.no_grad():  # and its eps view is the exact conversion of its denoiser at each time
        t = torch.tensor([100, 700])
        ab = model.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        x_t = x * ab.sqrt()
        sigma_t = ((1 - ab) / ab).sqrt()
        expected = (x - model.denoise_ve(x, sigma_t.flatten())) / sigma_t
        torch.testing.assert_close(model.eps(x_t, t), expected, rtol=1e-5, atol=1e-5)


def test_a_score_sde_ve_folder_and_an_inverted_flow_are_refused_in_one_line(tmp_path):
    folder, _ = _folder(tmp_path / "sde", diffusers.ScoreSdeVeScheduler())
    with pytest.raises(UsageError, match="ScoreSdeVeScheduler is not supported") as info:
        load_model(f"diffusers:{folder}")
    assert "\n" not in str(info.value)
    folder, _ = _folder(tmp_path / "inv", diffusers.FlowMatchEulerDiscreteScheduler(invert_sigmas=True))
    with pytest.raises(UsageError, match="invert_sigmas"):
        load_model(f"diffusers:{folder}")
