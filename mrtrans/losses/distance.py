"""DistanceGAN's distance-preservation constraint (Benaim & Wolf, NIPS 2017).

A mapping G_AB should keep the distances between samples: for images x_i, x_j of A,

    L_distance = E | (||x_i - x_j||_1 - mu_A) / sigma_A - (||G(x_i) - G(x_j)||_1 - mu_B) / sigma_B |

where mu and sigma are the mean and standard deviation of such distances in each domain, estimated
over the training set before training. The self-distance form compares the two halves of one image
(here left and right: the first array axis of a slice is RAS x), for batches of one image:

    L_self = E | (||L(x) - R(x)||_1 - mu_A) / sigma_A - (||L(G(x)) - R(G(x))||_1 - mu_B) / sigma_B |

with mu and sigma of half-to-half distances. ``||.||_1`` is taken as the mean absolute difference (the
L1 norm divided by the number of pixels), which leaves the normalised term unchanged.

This is not HarmonicGAN's smoothness term: DistanceGAN keeps *global* distances between whole images
(or halves) in line across domains; HarmonicGAN (Appendix 6.1 of its paper) asks that *neighbouring
patches* with similar features inside one image keep similar translations (a graph Laplacian).
"""

from __future__ import annotations

import numpy as np
import torch

Stats = tuple[float, float]  # (mean, standard deviation)


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B (B - 1) / 2,) mean absolute differences of every pair i < j."""
    flat = x.flatten(1)
    i, j = torch.triu_indices(len(flat), len(flat), offset=1, device=x.device)
    return (flat[i] - flat[j]).abs().mean(dim=1)


def half_distances(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B,) mean absolute difference of the first and second half along H (RAS x: left/right)."""
    half = x.shape[-2] // 2
    return (x[..., :half, :] - x[..., half : 2 * half, :]).abs().flatten(1).mean(dim=1)


def distance_statistics(images: np.ndarray, mode: str, max_items: int = 1000, seed: int = 0, chunk: int = 64) -> Stats:
    """Mean and standard deviation of the distances of ``mode`` (``pairs`` or ``self``) over a domain's
    training images (N, H, W), from at most ``max_items`` random pairs or images (seeded), read in chunks."""
    rng = np.random.default_rng(seed)
    n = len(images)
    if mode == "self":
        first = np.sort(rng.choice(n, size=min(n, max_items), replace=False))
        second = None
    else:
        if n < 2:
            raise ValueError("pairwise distance statistics need at least two images")
        first = rng.integers(0, n, size=max_items)
        second = (first + rng.integers(1, n, size=max_items)) % n  # never the same image
    values = []
    for start in range(0, len(first), chunk):
        a = torch.from_numpy(np.asarray(images[first[start : start + chunk]], dtype=np.float32))[:, None]
        if second is None:
            values.append(half_distances(a))
        else:
            b = torch.from_numpy(np.asarray(images[second[start : start + chunk]], dtype=np.float32))[:, None]
            values.append((a - b).abs().flatten(1).mean(dim=1))
    all_values = torch.cat(values).double()
    return float(all_values.mean()), max(float(all_values.std()), 1e-6)


def distance_loss(x: torch.Tensor, gx: torch.Tensor, source: Stats, target: Stats, mode: str) -> torch.Tensor:
    """L_distance (``mode="pairs"``, needs B >= 2) or L_self (``mode="self"``) of G on the batch ``x`` -> ``gx``."""
    measure = pairwise_distances if mode == "pairs" else half_distances
    before = (measure(x) - source[0]) / source[1]
    after = (measure(gx) - target[0]) / target[1]
    return (before - after).abs().mean()
