"""Cycle consistency (Eq. 4) and the optional identity loss of CycleGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """Mean L1 between F(G(x)) and x (or G(F(y)) and y); ``distance="mse"``: mean squared error (DiscoGAN's
    reconstruction loss, Kim et al. 2017 Eq. 3)."""
    if distance == "mse":
        return F.mse_loss(reconstructed, real)
    if distance != "l1":
        raise ValueError(f"unknown reconstruction distance {distance!r}")
    return F.l1_loss(reconstructed, real)


def identity_loss(same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 between G(y) and y: G should leave an image of its own target domain alone."""
    return F.l1_loss(same, real)
