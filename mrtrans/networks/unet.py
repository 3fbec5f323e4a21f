"""pix2pix's U-Net generator (Isola et al. 2017; the authors' ``UnetGenerator``, U-Net-256 for ``num_downs`` 8).

An encoder of ``num_downs`` stride-2 4x4 convolutions (LeakyReLU 0.2) down to 1x1 for a 2**num_downs input, a
decoder of transposed convolutions (ReLU), each decoder stage fed the matching encoder stage's output (skip
connections), tanh at the end. Channels: ngf, 2 ngf, 4 ngf, then 8 ngf; dropout 0.5 in the decoder stages of
the num_downs - 5 innermost 8-ngf blocks. Instance normalisation without affine parameters or running
statistics (the authors' ``--norm instance``; their pix2pix default is batch norm with batch size 1, which in
training mode normalises each image the same way).
"""

from __future__ import annotations

import torch
from torch import nn

from mrtrans.networks.generators import init_weights

MIN_DOWNS = 5  # the four outer stages and the innermost one


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class UnetBlock(nn.Module):
    """One level: down (conv), the inner levels, up (transposed conv); its input is concatenated to its output."""

    def __init__(
        self,
        outer: int,
        inner: int,
        inside: nn.Module | None = None,
        in_channels: int | None = None,
        outermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        down_conv = nn.Conv2d(in_channels or outer, inner, kernel_size=4, stride=2, padding=1)
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, kernel_size=4, stride=2, padding=1), nn.Tanh()]
            layers = [down_conv, inside, *up]
        elif inside is None:  # innermost: no normalisation of the 1x1 code
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, kernel_size=4, stride=2, padding=1), _norm(outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, *up]
        else:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, kernel_size=4, stride=2, padding=1), _norm(outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, _norm(inner), inside, *up]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """(B, in, H, W) in [-1, 1] -> (B, out, H, W) in [-1, 1]; H and W multiples of 2**num_downs."""

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64, num_downs: int = 8
    ) -> None:
        super().__init__()
        if num_downs < MIN_DOWNS:
            raise ValueError(f"num_downs {num_downs}: the U-Net needs at least {MIN_DOWNS}")
        ngf = base_channels
        block = UnetBlock(ngf * 8, ngf * 8)
        for _ in range(num_downs - MIN_DOWNS):
            block = UnetBlock(ngf * 8, ngf * 8, block, dropout=True)
        block = UnetBlock(ngf * 4, ngf * 8, block)
        block = UnetBlock(ngf * 2, ngf * 4, block)
        block = UnetBlock(ngf, ngf * 2, block)
        self.model = UnetBlock(out_channels, ngf, block, in_channels=in_channels, outermost=True)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
