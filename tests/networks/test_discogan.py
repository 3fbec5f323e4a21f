"""UNIT, DiscoGAN and DistanceGAN (issue 14): networks and losses on tiny tensors, a few hundred CPU steps,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import torch

from mrtrans.networks.discogan import DiscoDiscriminator, DiscoGenerator


def test_discogan_shapes() -> None:
    gen = DiscoGenerator(1, 1, base_channels=8, num_downsampling=4)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    y = gen(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert DiscoDiscriminator(1, 8, 4)(x).shape == (2, 1, 1, 1)  # the paper's 64x64: one score
    assert DiscoDiscriminator(1, 8, 4)(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 13, 13)
