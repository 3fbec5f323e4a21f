"""Can HarmonicGAN's smoothness term act on the tumors of a test set? Statistics of its patch graph.

The term (Eq. 6, :mod:`mrtrans.losses.smoothness`) ties together patches whose source features are similar.
It can keep a tumor consistent only if the tumor spans several graph nodes that are linked to each other:
a lesion inside one patch is a single node, and nothing in the graph says its pixels belong together. For
the source slices of a test set, per reference lesion (:func:`mrtrans.evaluation.audit.lesions`):

* ``tumor_nodes``: brain patches (graph nodes) with more than half of their pixels in the lesion;
* ``tumor_edges``: pairs of those nodes with affinity w_ij above ``min_affinity``;

and per slice, over brain nodes:

* ``effective_neighbours``: mean over nodes of sum_{j != i} w_ij - how many full-weight neighbours a node has;
* ``lesion_healthy_mass``: share of the affinity mass (i != j) on pairs of one tumor node (any label) and one
  healthy node - how much of the graph links the lesion to healthy tissue.

Features are the soft histograms of the term (``histogram_features``); the VGG variant is not covered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mrtrans.config import LossConfig
from mrtrans.evaluation.audit import lesions
from mrtrans.losses.smoothness import foreground_patches, histogram_features, patch_affinity, patchify

AFFINITY_CHUNK = 64  # slices whose (nodes x nodes) affinities are held at once: 268 MB at 1,024 nodes


def node_fractions(mask: np.ndarray, patch_size: int) -> np.ndarray:
    """(N, H, W) bool -> (N, nodes) share of each patch's pixels in ``mask`` (row-major patches, as the loss)."""
    x = torch.from_numpy(np.asarray(mask, np.float32)).unsqueeze(1)
    return patchify(x, patch_size).mean(dim=-1).numpy()


@torch.no_grad()
def graph_statistics(
    source: np.ndarray,
    region: np.ndarray,
    any_tumor: np.ndarray,
    loss: LossConfig,
    min_pixels: int,
    min_affinity: float = 0.1,
    background: float = -1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The graph of the source slices as the smoothness term builds it.

    Args:
        source: (N, H, W) source slices in [-1, 1] (the images whose graph weighs the translation).
        region: (N, H, W) the lesions' region (bool); any_tumor: every tumor label.
        loss: the run's loss settings (patch_size, histogram_bins, sigma, brain_patch_fraction).
        min_pixels: smallest lesion.
        min_affinity: an edge counts when w_ij exceeds it.

    Returns:
        (per lesion: slice, tumor_nodes, tumor_edges; per slice: brain_nodes, effective_neighbours,
        lesion_healthy_mass).
    """
    x = torch.from_numpy(np.asarray(source, np.float32)).unsqueeze(1)
    p = loss.patch_size
    features = histogram_features(x, p, loss.histogram_bins)  # (N, n, bins)
    nodes = foreground_patches(x, p, background, loss.brain_patch_fraction).numpy()  # (N, n)
    tumor_nodes = node_fractions(any_tumor, p) > 0.5
    per_lesion, per_slice = [], []
    for i in range(len(x)):
        if i % AFFINITY_CHUNK == 0:  # (chunk, n, n): all N slices at once were 13 GB at 3,200 slices of 1,024 nodes
            weights = patch_affinity(features[i : i + AFFINITY_CHUNK], loss.sigma).numpy()
        w = weights[i % AFFINITY_CHUNK] * np.outer(nodes[i], nodes[i])
        np.fill_diagonal(w, 0.0)
        brain = nodes[i]
        labels, n = lesions(np.asarray(region[i], bool), min_pixels)
        for k in range(1, n + 1):
            inside = (node_fractions((labels == k)[None], p)[0] > 0.5) & brain
            sub = w[np.ix_(inside, inside)]
            per_lesion.append(
                {
                    "slice": i,
                    "lesion_pixels": int((labels == k).sum()),
                    "tumor_nodes": int(inside.sum()),
                    "tumor_edges": int((np.triu(sub, 1) > min_affinity).sum()),
                }
            )
        total = w.sum()
        t, h = tumor_nodes[i] & brain, ~tumor_nodes[i] & brain
        per_slice.append(
            {
                "slice": i,
                "brain_nodes": int(brain.sum()),
                "effective_neighbours": float(w.sum(axis=1)[brain].mean()) if brain.any() else np.nan,
                "lesion_healthy_mass": float(2 * w[np.ix_(t, h)].sum() / total) if total > 0 and t.any() else np.nan,
            }
        )
    columns = ["slice", "lesion_pixels", "tumor_nodes", "tumor_edges"]
    return pd.DataFrame(per_lesion, columns=columns), pd.DataFrame(per_slice)


def summarize_graph(per_lesion: pd.DataFrame, per_slice: pd.DataFrame, min_nodes: int) -> dict:
    """Medians of the graph statistics and whether the mechanism can act (median tumor nodes >= ``min_nodes``)."""
    median_nodes = float(per_lesion["tumor_nodes"].median()) if len(per_lesion) else 0.0
    return {
        "lesions": len(per_lesion),
        "tumor_nodes_median": median_nodes,
        "tumor_edges_median": float(per_lesion["tumor_edges"].median()) if len(per_lesion) else 0.0,
        "effective_neighbours": float(per_slice["effective_neighbours"].mean()),
        "lesion_healthy_mass": float(per_slice["lesion_healthy_mass"].mean()),
        "brain_nodes": float(per_slice["brain_nodes"].mean()),
        "min_nodes": min_nodes,
        "mechanism_can_act": median_nodes >= min_nodes,
    }
