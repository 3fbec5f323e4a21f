"""The smoothness term of HarmonicGAN (Zhang, Pfister, Li, ICLR 2019), Eq. 6-8 and 11-12.

Nodes of the graph are the non-overlapping ``patch_size`` x ``patch_size`` patches of an image
(32 x 32 = 1024 nodes for 256 x 256 and 8 x 8 patches). Each patch gets a feature vector: a soft
histogram of its intensities (Eq. 11-12) or VGG-16 relu4_3 features. Features are normalised to sum
to 1 per patch, so every entry is in [0, 1] and the L1 distance of two patches is in [0, 2].

    w_ij(X) = exp(-||f_i(x) - f_j(x)||_1 / sigma^2)                         (affinity, Sec. 3.1)
    L_smooth(G, X, Y) = mean_ij w_ij(X) ||f_i(G(x)) - f_j(G(x))||_1
                      + mean_ij w_ij(G(X)) ||f_i(F(G(x))) - f_j(F(G(x)))||_1      (Eq. 6)

All pairs of patches within an image are used (1024^2 per 256 x 256 image; no sampling), and the
sum of Eq. 6 is taken as a mean over pairs so that lambda_smooth = 1 keeps the term on the scale of
the other losses. The affinities are constants of the step (no gradient flows into w): the
generator must make similar source patches similar after translation, not make patches dissimilar
to switch their weights off.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Features = Callable[[torch.Tensor], torch.Tensor]


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C * p * p): non-overlapping patches in row-major order."""
    b, c, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch size {patch_size}")
    return F.unfold(x, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def soft_histogram(
    x: torch.Tensor, patch_size: int = 8, bins: int = 16, value_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """Differentiable per-patch histogram with triangular votes (Eq. 11-12).

    Intensities are mapped to [0, 255] and split into ``bins`` equal bins (width 16 for 16 bins).
    A pixel votes psi_b = max(0, 1 - |v - mu_b| / width) for bin centres mu_b, i.e. to its two nearest
    centres with weights summing to 1. Values beyond the outer centres are clamped onto them, so every
    pixel casts exactly one vote and a patch's histogram sums to its pixel count.

    Args:
        x: (B, 1, H, W) images in ``value_range``.
    Returns:
        (B, N, bins) vote counts per patch (not normalised).
    """
    lo, hi = value_range
    width = 255.0 / bins
    centres = (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5) * width  # (bins,)
    v = (patchify(x, patch_size) - lo) * (255.0 / (hi - lo))  # (B, N, P)
    v = v.clamp(float(centres[0]), float(centres[-1]))
    votes = (1 - (v.unsqueeze(-1) - centres).abs() / width).relu()  # (B, N, P, bins)
    return votes.sum(dim=2)


def histogram_features(
    x: torch.Tensor, patch_size: int = 8, bins: int = 16, value_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """(B, 1, H, W) -> (B, N, bins): soft histogram divided by the pixels per patch (sums to 1)."""
    return soft_histogram(x, patch_size, bins, value_range) / (x.shape[1] * patch_size * patch_size)


def cnn_patch_features(feature_map: torch.Tensor, image_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """CNN features (B, C, h, w) -> (B, N, C) per image patch, L1-normalised per patch.

    relu4_3 of VGG-16 has stride 8, so for 8 x 8 patches each feature location is one patch; other
    patch sizes average the map onto the patch grid.
    """
    grid = (image_size[0] // patch_size, image_size[1] // patch_size)
    if feature_map.shape[-2:] != grid:
        feature_map = F.adaptive_avg_pool2d(feature_map, grid)
    f = feature_map.flatten(2).transpose(1, 2)  # (B, N, C), non-negative after ReLU
    return f / (f.sum(dim=-1, keepdim=True) + 1e-8)


def patch_affinity(features: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, N, F) -> (B, N, N) affinities w_ij = exp(-L1(f_i, f_j) / sigma^2); symmetric, 1 on the diagonal."""
    return torch.exp(-torch.cdist(features, features, p=1) / sigma**2)


def smoothness_penalty(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """mean_ij w_ij * L1(f_i, f_j) for weights (B, N, N) and features (B, N, F) of the translated image."""
    return (weights * torch.cdist(features, features, p=1)).mean()


def smoothness_loss(
    source: torch.Tensor, translated: torch.Tensor, reconstructed: torch.Tensor, features: Features, sigma: float
) -> torch.Tensor:
    """One direction of Eq. 6 (or Eq. 7): the graph of x weights G(x), the graph of G(x) weights F(G(x)).

    Args:
        source: x, (B, 1, H, W).
        translated: G(x).
        reconstructed: F(G(x)).
        features: image -> (B, N, F) patch features in [0, 1] summing to 1 per patch.
        sigma: affinity bandwidth.
    """
    with torch.autocast(device_type=source.device.type, enabled=False):  # distances need fp32
        with torch.no_grad():  # the source graph only gives weights: no autograd bookkeeping
            w_src = patch_affinity(features(source.float()), sigma)
        f_fake = features(translated.float())
        f_rec = features(reconstructed.float())
        w_fake = patch_affinity(f_fake.detach(), sigma)
        return smoothness_penalty(w_src, f_fake) + smoothness_penalty(w_fake, f_rec)
