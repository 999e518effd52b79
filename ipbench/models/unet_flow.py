"""The ipbench UNet as a flow-matching velocity model (models/flow.py): the same network as the eps model
(models/unet.py), its time input the flow time s scaled to the DDPM model's range of times.

v_theta(x_s, s) = UNet(x_s, s * T) with T = num_timesteps (1000), so the sinusoidal time embedding sees the
same range of values as in the eps model, and the two families differ in their objective only. Its VP grid
(for solvers written against eps(x_t, t)) is the eps model's linear schedule from the same config.
"""
from __future__ import annotations

from torch import Tensor

from ipbench.models.base import linear_alphas_cumprod
from ipbench.models.flow import FlowModel
from ipbench.models.unet import UNet, UNetConfig, UNetWeights


class UNetFlowModel(UNetWeights, FlowModel):
    """A UNet velocity model on the linear path x_s = (1 - s) x0 + s eps."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg.image_shape, linear_alphas_cumprod(cfg.num_timesteps, cfg.beta_start, cfg.beta_end))
        self.cfg = cfg
        self.net = UNet(cfg)

    def velocity(self, x_s: Tensor, s: Tensor) -> Tensor:
        return self.net(x_s, s * self.cfg.num_timesteps)
