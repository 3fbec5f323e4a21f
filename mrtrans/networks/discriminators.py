"""70x70 PatchGAN discriminator (Isola et al. 2017), built from MONAI's PatchDiscriminator.

With ``num_layers=3``: C64 (stride 2, no norm) - C128 - C256 (stride 2) - C512 (stride 1) - C1,
4x4 kernels, instance norm, LeakyReLU 0.2: the CycleGAN discriminator, whose output pixels each
see a 70x70 input patch.
"""

from __future__ import annotations

import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

from mrtrans.networks.generators import init_weights


class PatchGAN(nn.Module):
    """Args: in_channels, base_channels (64), num_layers (3 gives the 70x70 receptive field)."""

    def __init__(self, in_channels: int = 1, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.net = PatchDiscriminator(
            spatial_dims=2,
            channels=base_channels,
            in_channels=in_channels,
            out_channels=1,
            num_layers_d=num_layers,
            kernel_size=4,
            norm="INSTANCE",
            bias=True,
            padding=1,
        )
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H', W') raw scores (no sigmoid); MONAI returns every layer, we keep the last."""
        return self.net(x)[-1]
