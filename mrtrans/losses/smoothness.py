"""The smoothness term of HarmonicGAN (Zhang, Pfister, Li, ICLR 2019), Eq. 6-8 and 11-12.

Nodes of the graph are the non-overlapping ``patch_size`` x ``patch_size`` patches of an image
(32 x 32 = 1024 nodes for 256 x 256 and 8 x 8 patches). Each patch gets a feature vector: a soft
histogram of its intensities (Eq. 11-12) or VGG-16 relu4_3 features. Features are normalised to sum
to 1 per patch, so every entry is in [0, 1] and the L1 distance of two patches is in [0, 2].

    w_ij(X) = exp(-||f_i(x) - f_j(x)||_1 / sigma^2)                         (affinity, Sec. 3.1)
    L_smooth(G, X, Y) = sum_ij w_ij(X) ||f_i(G(x)) - f_j(G(x))||_1
                      + sum_ij w_ij(G(X)) ||f_i(F(G(x))) - f_j(F(G(x)))||_1       (Eq. 6)

The paper writes Eq. 6 as a sum over all pairs and leaves its scale open. How the sum is
normalised decides what lambda_smooth means, so it is a named choice (``normalization``):

* ``all_pairs`` -- mean over all N^2 pairs of the image (mrtrans < 0.2). On brain MRI 75-80 % of the
  patches of a 256 x 256 slice are background, and background pairs (distance 0 while the
  background stays black) hold most of the affinity mass, so the brain's part is diluted ~25x and
  the same lambda acts ~15x more strongly at 64 x 64 than at 256 x 256.
* ``brain_pairs`` -- the graph holds only the patches whose source pixels are mostly brain
  (more than ``min_fraction`` above the background value); mean over the pairs of those nodes.
  Padding an image with background, or cropping it tighter, leaves the term unchanged.
* ``brain_affinity`` -- the same graph, sum_ij w_ij d_ij / sum_ij w_ij: an affinity-weighted mean of
  the distances, independent of how many pairs are dissimilar in the source.

Both terms of Eq. 6 use the graph's nodes of the source image x (the translation and the
reconstruction show the same anatomy). The affinities are constants of the step (no gradient flows
into w): the generator must make similar source patches similar after translation, not make
patches dissimilar to switch their weights off.
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
    v = v.clamp(0.5 * width, (bins - 0.5) * width)  # the outer centres, as Python floats (no device sync)
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


NORMALIZATIONS = ("all_pairs", "brain_pairs", "brain_affinity")


def foreground_patches(
    source: torch.Tensor, patch_size: int, background: float, min_fraction: float = 0.5
) -> torch.Tensor:
    """(B, 1, H, W) -> (B, N) bool: patches with more than ``min_fraction`` of pixels above ``background``.

    Prepared slices hold the background at exactly the low end of their range; a margin of 1e-3
    absorbs float16 storage.
    """
    inside = (patchify(source, patch_size) > background + 1e-3).float()  # (B, N, P)
    return inside.mean(dim=-1) > min_fraction


def patch_affinity(features: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, N, F) -> (B, N, N) affinities w_ij = exp(-L1(f_i, f_j) / sigma^2); symmetric, 1 on the diagonal."""
    return torch.exp(-torch.cdist(features, features, p=1) / sigma**2)


# Elements of the (B, rows, n, F) sign buffer of one chunk of the backward pass: on the CPU 2^18 floats (1 MiB,
# stays in cache: 1.5x faster than torch.cdist's backward at N = 4,096, docs/benchmarks.md); elsewhere 2^26 (256 MiB:
# few, large kernels).
CPU_CHUNK_ELEMENTS = 1 << 18
DEVICE_CHUNK_ELEMENTS = 1 << 26


class _PairwiseL1(torch.autograd.Function):
    """(B, n, F) -> (B, n, n) L1 distances, the value of ``torch.cdist(f, f, p=1)``, with a backward that never holds
    the (B, n, n, F) tensor of differences: dD/df_i = sum_j (G_ij + G_ji) sign(f_i - f_j), in chunks of rows."""

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(features)
        return torch.cdist(features, features, p=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        batch, n, dims = f.shape
        g = (grad + grad.transpose(1, 2)).unsqueeze(2)  # (B, n, 1, n): both entries of each pair (D is symmetric)
        out = torch.empty_like(f)
        chunk = CPU_CHUNK_ELEMENTS if f.device.type == "cpu" else DEVICE_CHUNK_ELEMENTS
        rows = max(1, chunk // max(1, batch * n * dims))
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            sign = torch.sub(f[:, start:stop, None, :], f[:, None, :, :]).sign_()  # (B, rows, n, F)
            out[:, start:stop] = torch.matmul(g[:, start:stop], sign).squeeze(2)
        return out


def pairwise_l1(features: torch.Tensor) -> torch.Tensor:
    """(B, n, F) -> (B, n, n) L1 distances between the rows, differentiable without the (B, n, n, F) buffer that
    ``torch.cdist``'s backward allocates (1 GiB per image at n = 4,096 and 16 histogram bins, 32 GiB for VGG's
    512 channels); its own extra memory is one chunk of rows (:data:`CPU_CHUNK_ELEMENTS` or
    :data:`DEVICE_CHUNK_ELEMENTS` floats)."""
    return _PairwiseL1.apply(features)


def smoothness_penalty(
    weights: torch.Tensor,
    features: torch.Tensor,
    nodes: torch.Tensor | None = None,
    normalization: str = "all_pairs",
    distances: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised sum_ij w_ij * L1(f_i, f_j), averaged over the batch (the all-pairs reference formulation).

    :func:`smoothness_loss` computes the same value on each image's graph nodes only; this function keeps the
    dense (B, N, N) form for the graph statistics and as the reference its tests compare with.

    Args:
        weights: (B, N, N) affinities of the graph.
        features: (B, N, F) patch features of the image the graph weighs.
        nodes: (B, N) bool, the patches in the graph; needed unless ``normalization`` is ``all_pairs``.
        normalization: one of :data:`NORMALIZATIONS` (module docstring).
        distances: ``cdist(features, features, p=1)`` when the caller has it already (computed once).
    """
    distances = torch.cdist(features, features, p=1) if distances is None else distances
    wd = weights * distances  # (B, N, N)
    if normalization == "all_pairs":
        return wd.mean()
    if normalization not in NORMALIZATIONS or nodes is None:
        raise ValueError(f"normalization {normalization!r} needs graph nodes and one of {NORMALIZATIONS}")
    pairs = nodes.unsqueeze(2) & nodes.unsqueeze(1)  # (B, N, N)
    total = (wd * pairs).sum(dim=(1, 2))
    # An image without brain patches contributes 0 (the clamps keep the division finite, no sync).
    denom = pairs.sum(dim=(1, 2)).float() if normalization == "brain_pairs" else (weights * pairs).sum(dim=(1, 2))
    return (total / denom.clamp_min(1.0)).mean()


def _graph_penalty(
    weights: torch.Tensor, distances: torch.Tensor, pairs: torch.Tensor | None, normalization: str, all_nodes: int
) -> torch.Tensor:
    """Sum over the batch of sum_ij w_ij d_ij over each image's graph, normalised as :func:`smoothness_penalty` does.

    Args:
        weights, distances: (B, n, n).
        pairs: (B, n, n) float mask of the graph's pairs, or None: every pair of the n nodes.
        all_nodes: N, the patches of an image (the ``all_pairs`` mean is over N^2 pairs).
    """
    if pairs is not None:
        weights = weights * pairs
    total = (weights * distances).sum(dim=(1, 2))
    if normalization == "all_pairs":
        return total.sum() / all_nodes**2
    if normalization == "brain_pairs":
        count = pairs.sum(dim=(1, 2)) if pairs is not None else total.new_full(total.shape, distances.shape[-1] ** 2)
    else:
        count = weights.sum(dim=(1, 2))
    # An image without brain patches contributes 0 (the clamp keeps the division finite, no sync).
    return (total / count.clamp_min(1.0)).sum()


def smoothness_loss(
    source: torch.Tensor,
    translated: torch.Tensor,
    reconstructed: torch.Tensor,
    features: Features,
    sigma: float,
    normalization: str = "all_pairs",
    patch_size: int = 8,
    background: float = -1.0,
    min_fraction: float = 0.5,
    detach_translated_graph: bool = True,
    *,
    gather_nodes: bool | None = None,
) -> torch.Tensor:
    """One direction of Eq. 6 (or Eq. 7): the graph of x weights G(x), the graph of G(x) weights F(G(x)).

    Every pair of the graph counts (Eq. 6 as a sum over all pairs; nothing is pruned). On the CPU the brain
    normalisations sum over each image's n brain patches only (n^2 pairs instead of N^2: a fraction of the work on
    brain slices, whose background patches are no graph nodes); on CUDA the same pairs are a mask over all N
    patches (no device sync). The distances' backward never holds an (n, n, F) tensor (:func:`pairwise_l1`). The
    value and gradients are those of the dense form (:func:`smoothness_penalty`) up to float rounding.

    Args:
        source: x, (B, 1, H, W).
        translated: G(x).
        reconstructed: F(G(x)).
        features: image -> (B, N, F) patch features in [0, 1] summing to 1 per patch.
        sigma: affinity bandwidth.
        normalization: ``all_pairs``, ``brain_pairs`` or ``brain_affinity`` (module docstring).
        patch_size, background, min_fraction: which patches of x are graph nodes (brain normalisations).
        detach_translated_graph: treat the weights w_ij(G(x)) of the second half as constants (no gradient
            through them); False is Eq. 6 as written.
        gather_nodes: sum over each image's nodes only (brain normalisations); None: on the CPU. The result is
            the same either way.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} is not one of {NORMALIZATIONS}")
    with torch.autocast(device_type=source.device.type, enabled=False):  # distances need fp32
        with torch.no_grad():  # the source graph only gives weights: no autograd bookkeeping
            f_src = features(source.float())
            nodes = None
            if normalization != "all_pairs":
                nodes = foreground_patches(source.float(), patch_size, background, min_fraction)
        f_fake = features(translated.float())
        f_rec = features(reconstructed.float())
        batch, n_all = f_fake.shape[:2]
        if gather_nodes is None:
            gather_nodes = source.device.type == "cpu"
        if nodes is not None and gather_nodes:
            # Each image's own graph: its n brain nodes, n^2 pairs instead of N^2 (selecting them syncs the
            # device, so on the CPU only).
            keep = [nodes[b].nonzero().squeeze(1) for b in range(batch)]
            graphs = [tuple(f[b : b + 1, k] for f in (f_src, f_fake, f_rec)) for b, k in enumerate(keep)]
            masks = [None] * batch
        else:  # all N nodes at once, the graph's pairs as a mask: no sync, so a CUDA graph can capture the step
            graphs = [(f_src, f_fake, f_rec)]
            masks = [None if nodes is None else (nodes.unsqueeze(2) & nodes.unsqueeze(1)).float()]
        total = f_fake.new_zeros(())
        for (src, fake, rec), pairs in zip(graphs, masks):
            with torch.no_grad():
                w_src = torch.exp(-torch.cdist(src, src, p=1) / sigma**2)  # = patch_affinity(src)
            # G(x)'s distances serve twice: penalised (with gradient) and, detached or not, as the weights of the
            # second graph.
            d_fake = pairwise_l1(fake)
            w_fake = torch.exp(-(d_fake.detach() if detach_translated_graph else d_fake) / sigma**2)
            total = total + _graph_penalty(w_src, d_fake, pairs, normalization, n_all)
            total = total + _graph_penalty(w_fake, pairwise_l1(rec), pairs, normalization, n_all)
        return total / batch


def dense_smoothness_loss(
    source: torch.Tensor,
    translated: torch.Tensor,
    reconstructed: torch.Tensor,
    features: Features,
    sigma: float,
    normalization: str = "all_pairs",
    patch_size: int = 8,
    background: float = -1.0,
    min_fraction: float = 0.5,
    detach_translated_graph: bool = True,
) -> torch.Tensor:
    """:func:`smoothness_loss` as mrtrans <= 0.4 computed it: dense (B, N, N) graphs over every patch, distances by
    ``torch.cdist`` and its autograd (which holds a (B, N, N, F) buffer in backward). The reference the tests pin
    :func:`smoothness_loss` to, and the "before" row of ``benchmarks/bench_train.py``; training does not use it."""
    with torch.autocast(device_type=source.device.type, enabled=False):
        with torch.no_grad():
            w_src = patch_affinity(features(source.float()), sigma)
            nodes = None
            if normalization != "all_pairs":
                nodes = foreground_patches(source.float(), patch_size, background, min_fraction)
        f_fake, f_rec = features(translated.float()), features(reconstructed.float())
        d_fake = torch.cdist(f_fake, f_fake, p=1)
        w_fake = torch.exp(-(d_fake.detach() if detach_translated_graph else d_fake) / sigma**2)
        return smoothness_penalty(w_src, f_fake, nodes, normalization, distances=d_fake) + smoothness_penalty(
            w_fake, f_rec, nodes, normalization
        )
