"""Cycle consistency (Eq. 4) and the optional identity loss of CycleGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 between F(G(x)) and x (or G(F(y)) and y)."""
    return F.l1_loss(reconstructed, real)


def identity_loss(same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 between G(y) and y: G should leave an image of its own target domain alone."""
    return F.l1_loss(same, real)
