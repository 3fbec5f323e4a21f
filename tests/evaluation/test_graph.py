"""Graph statistics of the smoothness term (mrtrans.evaluation.graph) on hand-made slices."""

import numpy as np
import pandas as pd

from mrtrans.config import LossConfig
from mrtrans.evaluation.graph import graph_statistics, summarize_graph


def _slice(lesion_patches: int, patch: int = 4, size: int = 32):
    """A flat brain (value 0) filling the slice, one lesion of value 0.8 covering ``lesion_patches`` whole patches in a
    row.
    """
    image = np.zeros((1, size, size), np.float32)
    region = np.zeros((1, size, size), bool)
    region[0, 8 : 8 + patch, 4 : 4 + patch * lesion_patches] = True
    image[region] = 0.8
    return image, region


def test_a_lesion_of_k_patches_gives_k_tumor_nodes_and_all_their_edges():
    for k in (1, 3, 5):
        image, region = _slice(k)
        per_lesion, per_slice = graph_statistics(
            image, region, region, LossConfig(patch_size=4, sigma=0.5), min_pixels=4
        )
        assert per_lesion["tumor_nodes"].tolist() == [k]
        assert per_lesion["tumor_edges"].tolist() == [k * (k - 1) // 2]  # identical patches: w = 1 for every pair
        n = 64  # 8 x 8 brain nodes
        # Every node is fully linked to the nodes of its own kind (w = 1), not to the other kind (w ~ e^-8).
        assert per_slice["brain_nodes"].tolist() == [n]
        expected = ((n - k) * (n - k - 1) + k * (k - 1)) / n
        assert abs(per_slice["effective_neighbours"].iloc[0] - expected) < 0.05
        assert per_slice["lesion_healthy_mass"].iloc[0] < 1e-2  # the graph separates the lesion


def test_a_lesion_inside_one_patch_is_not_at_this_scale():
    image, region = _slice(3, patch=4)
    small = graph_statistics(image, region, region, LossConfig(patch_size=16, sigma=0.5), min_pixels=4)
    assert small[0]["tumor_nodes"].tolist() == [0]  # 48 px in a 16x16 patch: under half of it
    assert not summarize_graph(*small, min_nodes=8)["mechanism_can_act"]
    big = graph_statistics(image, region, region, LossConfig(patch_size=1, sigma=0.5), min_pixels=4)
    assert big[0]["tumor_nodes"].tolist() == [48] and summarize_graph(*big, min_nodes=8)["mechanism_can_act"]
    assert isinstance(small[0], pd.DataFrame)


def test_many_slices_hold_the_affinities_of_one_chunk_at_a_time(monkeypatch):
    """All N affinity matrices at once were 13 GB for 3,200 slices of 1,024 nodes (the benchmark was killed for memory):
    they are made a chunk at a time, with the same statistics as slice by slice."""
    from mrtrans.evaluation import graph

    slices = [_slice(k) for k in (1, 2, 3, 4, 5)]
    images, regions = np.concatenate([s[0] for s in slices]), np.concatenate([s[1] for s in slices])
    cfg = LossConfig(patch_size=4, sigma=0.5)
    one_by_one = [graph_statistics(images[i : i + 1], regions[i : i + 1], regions[i : i + 1], cfg, 4) for i in range(5)]
    sizes = []
    affinity = graph.patch_affinity
    monkeypatch.setattr(graph, "patch_affinity", lambda f, s: sizes.append(len(f)) or affinity(f, s))
    monkeypatch.setattr(graph, "AFFINITY_CHUNK", 2)
    per_lesion, per_slice = graph_statistics(images, regions, regions, cfg, min_pixels=4)
    assert sizes == [2, 2, 1]
    assert per_lesion["tumor_nodes"].tolist() == [p["tumor_nodes"].iloc[0] for p, _ in one_by_one]
    expected = [s["effective_neighbours"].iloc[0] for _, s in one_by_one]
    assert np.allclose(per_slice["effective_neighbours"], expected, rtol=1e-6)
