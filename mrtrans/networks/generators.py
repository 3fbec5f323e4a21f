"""ResNet generator of Johnson et al. (2016), as used by CycleGAN (Zhu et al. 2017) and HarmonicGAN.

c7s1-64, d128, d256, R256 x num_res_blocks, u128, u64, c7s1-out, tanh: reflection padding and
instance normalisation throughout (no affine parameters, no running statistics).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """x + (pad, conv3x3, norm, relu, pad, conv3x3, norm)(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator.

    Args:
        in_channels: input channels (1 for one MRI sequence).
        out_channels: output channels.
        base_channels: channels of the first convolution (64 in the paper).
        num_res_blocks: residual blocks at the bottleneck (9 for 256x256).
        num_downsampling: stride-2 stages; inputs must be divisible by 2**num_downsampling.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        num_res_blocks: int = 9,
        num_downsampling: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, base_channels, kernel_size=7),
            _norm(base_channels),
            nn.ReLU(inplace=True),
        ]
        channels = base_channels
        for _ in range(num_downsampling):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1),
                _norm(channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        layers += [ResidualBlock(channels) for _ in range(num_res_blocks)]
        for _ in range(num_downsampling):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W) in [-1, 1]."""
        return self.model(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """N(0, 0.02) convolution weights and zero biases, as in CycleGAN."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
