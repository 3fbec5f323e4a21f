"""Adversarial objectives. The paper replaces the GAN log-likelihood by least squares (Mao et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """Loss of discriminator scores against the real (1) or fake (0) label.

    Args:
        prediction: raw PatchGAN scores (B, 1, H', W').
        target_is_real: label of every patch.
        mode: ``"lsgan"`` (mean squared error, Eq. 1-2 with least squares) or ``"vanilla"`` (BCE on logits).
    """
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown GAN mode {mode!r}")
