"""DiscoGAN's networks (Kim et al., ICML 2017), for one-channel 256x256 slices.

Generator: an encoder of stride-2 4x4 convolutions (64, 128, 256, 512 channels; LeakyReLU 0.2, batch
normalisation after all but the first) and a decoder of stride-2 4x4 transposed convolutions back to
the input size (ReLU, batch normalisation), tanh output. The paper's generator has four of each for
64x64 images; at 256x256 the same four stages leave a 16x16 bottleneck (``num_downsampling``).

Discriminator: the generator's encoder followed by a 4x4 convolution to one channel: raw scores (logits)
over 13x13 overlapping patches at 256x256 (the paper's 64x64 input gives one score).
"""

from __future__ import annotations

import torch
from torch import nn

from mrtrans.networks.generators import init_weights


def _encoder(in_channels: int, base_channels: int, stages: int) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    channels, out = in_channels, base_channels
    for stage in range(stages):
        layers.append(nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=stage == 0))
        if stage > 0:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        channels, out = out, out * 2
    return layers, channels


class DiscoGenerator(nn.Module):
    """(B, in, H, W) in [-1, 1] -> (B, out, H, W) in [-1, 1]; H, W divisible by 2**num_downsampling."""

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64, num_downsampling: int = 4
    ) -> None:
        super().__init__()
        layers, channels = _encoder(in_channels, base_channels, num_downsampling)
        for stage in range(num_downsampling):
            last = stage == num_downsampling - 1
            out = out_channels if last else channels // 2
            layers.append(nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.model = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DiscoDiscriminator(nn.Module):
    """(B, in, H, W) -> (B, 1, H', W') logits (no sigmoid: the loss applies it)."""

    def __init__(self, in_channels: int = 1, base_channels: int = 64, num_layers: int = 4) -> None:
        super().__init__()
        layers, channels = _encoder(in_channels, base_channels, num_layers)
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=0))
        self.model = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
