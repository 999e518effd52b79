"""The flow parametrisation is exact where theory says so (models/parametrization.py, models/flow.py):

- the conversions between VE sigma, VP alpha_bar and flow time, and between eps, x0 and velocity, invert each
  other;
- the analytic Gaussian prior written natively as a flow (models/gaussian_flow.py) gives, through
  `FlowModel.eps`, the VP Gaussian's eps, and its VE denoiser at any sigma is the closed form;
- any VP model viewed as a flow and integrated by Euler steps on the flow times of a VP grid equals DDIM
  (eta = 0) on that grid, to float precision (solvers/flow_steps.py);
- a ScoreModel written before flows existed keeps working: it is not continuous, and its flow view is defined.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ipbench.checks import gaussian_truth as gm
from ipbench.models.base import ScoreModel, linear_alphas_cumprod
from ipbench.models.denoiser import denoise, sigma_grid
from ipbench.models.flow import FlowModel, velocity
from ipbench.models.gaussian import GaussianScoreModel
from ipbench.models.gaussian_flow import GaussianFlowModel
from ipbench.models.parametrization import (alpha_bar_of_sigma, eps_of_velocity, flow_state_of_vp,
                                            flow_time_of_alpha_bar, flow_time_of_sigma, sigma_of_alpha_bar,
                                            sigma_of_flow_time, velocity_of_x0, vp_state_of_flow, x0_of_velocity)
from ipbench.models.unet import UNetConfig, UNetScoreModel
from ipbench.solvers.diffusion import reverse_process
from ipbench.solvers.flow_steps import flow_ode, flow_times

DOUBLE = dict(dtype=torch.float64)


def _gaussian() -> GaussianScoreModel:
    return gm.fit_model((1, 8, 8))


def test_the_noise_level_conversions_invert_each_other() -> None:
    sigma = torch.logspace(-3, 3, 50, **DOUBLE)
    ab = alpha_bar_of_sigma(sigma)
    s = flow_time_of_sigma(sigma)
    torch.testing.assert_close(sigma_of_alpha_bar(ab), sigma, rtol=1e-10, atol=0)
    torch.testing.assert_close(sigma_of_flow_time(s), sigma, rtol=1e-10, atol=0)
    torch.testing.assert_close(flow_time_of_alpha_bar(ab), s, rtol=1e-9, atol=0)  # 1 - ab cancels at small sigma
    assert bool((s > 0).all() and (s < 1).all())


def test_the_states_and_predictions_convert_exactly() -> None:
    """From x0 and eps: every coordinate's state is that path's formula, and v, eps, x0 determine each other."""
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 1, 3, 3, generator=gen, **DOUBLE)
    sigma = torch.tensor([0.01, 0.3, 1.0, 40.0], **DOUBLE).view(-1, 1, 1, 1)
    ab, s = alpha_bar_of_sigma(sigma), flow_time_of_sigma(sigma)
    x_t, x_s = ab.sqrt() * x0 + (1 - ab).sqrt() * eps, (1 - s) * x0 + s * eps
    torch.testing.assert_close(flow_state_of_vp(x_t, ab), x_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(vp_state_of_flow(x_s, s), x_t, rtol=1e-12, atol=1e-12)
    v = eps - x0
    torch.testing.assert_close(eps_of_velocity(x_s, v, s), eps, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x0_of_velocity(x_s, v, s), x0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(velocity_of_x0(x_s, x0, s), v, rtol=1e-9, atol=1e-9)


def test_the_gaussian_flow_gives_the_vp_gaussians_eps_at_every_time() -> None:
    vp = _gaussian()
    flow = GaussianFlowModel(vp)
    gen = torch.Generator().manual_seed(1)
    t = torch.tensor([0, 1, 10, 250, 500, 999])
    x_t = torch.randn(len(t), *vp.image_shape, generator=gen, **DOUBLE)
    expected = vp.eps(x_t, t)
    assert float(expected.abs().mean()) > 0.1  # not a trivially small eps
    torch.testing.assert_close(flow.eps(x_t, t), expected, rtol=1e-9, atol=1e-10)


def test_a_continuous_model_is_denoised_at_the_sigma_asked_for() -> None:
    """Off the grid, the flow Gaussian's VE denoiser is the closed form at that sigma (a VP Gaussian whose
    one-time grid is that sigma), where the discrete VP model snaps to its nearest time."""
    vp = _gaussian()
    flow = GaussianFlowModel(vp)
    grid = sigma_grid(vp)
    sigma = (grid[300] * grid[301]) ** 0.5  # between two grid times
    exact = GaussianScoreModel(vp.mean.flatten(), vp.colour_basis, vp.spectrum,
                               torch.tensor([float(alpha_bar_of_sigma(sigma))], **DOUBLE))
    x = torch.randn(3, *vp.image_shape, generator=torch.Generator().manual_seed(2), **DOUBLE)
    torch.testing.assert_close(denoise(flow, x, sigma), denoise(exact, x, sigma), rtol=1e-9, atol=1e-10)
    assert not torch.allclose(denoise(vp, x, sigma), denoise(exact, x, sigma), rtol=1e-6, atol=1e-8)


def test_the_flow_view_of_a_vp_model_is_its_flow_form_on_the_grid() -> None:
    vp = _gaussian()
    flow = GaussianFlowModel(vp)
    x_s = torch.randn(2, *vp.image_shape, generator=torch.Generator().manual_seed(3), **DOUBLE)
    for t in (5, 400, 990):
        s = float(flow_time_of_alpha_bar(vp.alphas_cumprod[t]))
        torch.testing.assert_close(velocity(vp, x_s, s), velocity(flow, x_s, s), rtol=1e-8, atol=1e-9)


def _random_unet() -> UNetScoreModel:
    torch.manual_seed(0)
    model = UNetScoreModel(UNetConfig(image_shape=(1, 8, 8), channels=8, channel_mult=(1,), num_res_blocks=1,
                                      attention_resolutions=(), dropout=0.0))
    with torch.no_grad():  # away from the zero-initialised identity blocks, so the network is not trivial
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def _ddim_and_flow_ode(model: ScoreModel, steps: int) -> tuple[Tensor, Tensor]:
    t_start = model.num_timesteps - 1
    x_t = torch.randn(4, *model.image_shape, generator=torch.Generator().manual_seed(4))
    x_t = x_t.to(model.alphas_cumprod.dtype if isinstance(model, GaussianScoreModel) else torch.float32)
    with torch.no_grad():
        ddim = reverse_process(model, x_t, t_start, steps, 0.0, [], clip=False)
        start = flow_state_of_vp(x_t, float(model.alphas_cumprod[t_start]))
        flow = flow_ode(model, start, flow_times(model, t_start, steps))
    return ddim, flow


def test_a_vp_model_sampled_as_a_flow_is_ddim_with_eta_zero() -> None:
    ddim, flow = _ddim_and_flow_ode(_gaussian(), 20)
    torch.testing.assert_close(flow, ddim, rtol=1e-9, atol=1e-9)
    ddim, flow = _ddim_and_flow_ode(_random_unet(), 25)
    assert float(ddim.abs().mean()) > 0.1
    torch.testing.assert_close(flow, ddim, rtol=1e-4, atol=1e-4)  # float32 over 25 steps


def test_a_score_model_plugin_from_before_flows_still_runs_in_every_view() -> None:
    class Legacy(ScoreModel):  # the plugin interface as documented: alphas_cumprod, image_shape, eps
        def __init__(self) -> None:
            super().__init__(linear_alphas_cumprod(), (1, 4, 4))

        def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
            return 0.5 * x_t

    legacy = Legacy()
    assert not legacy.continuous and not isinstance(legacy, FlowModel)
    x = torch.ones(2, 1, 4, 4)
    assert torch.isfinite(denoise(legacy, x, 0.5)).all()
    assert torch.isfinite(velocity(legacy, x, 0.3)).all()


def test_a_flow_model_inside_the_runs_wrappers_keeps_its_continuous_views() -> None:
    """The runner wraps every model (models/acceleration.py, models/counting.py); a flow model's flow and VE
    views must pass through them unsnapped, and be counted."""
    from ipbench.models.acceleration import accelerate
    from ipbench.models.counting import CountingModel

    flow = GaussianFlowModel(_gaussian())
    wrapped = CountingModel(accelerate(flow))
    assert wrapped.continuous
    x = torch.randn(2, *flow.image_shape, generator=torch.Generator().manual_seed(5), **DOUBLE)
    s = 0.4137  # off the VP grid's flow times
    torch.testing.assert_close(velocity(wrapped, x, s), velocity(flow, x, s), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(denoise(wrapped, x, 0.77), denoise(flow, x, 0.77), rtol=1e-10, atol=1e-12)
    assert wrapped.nfe == 2
