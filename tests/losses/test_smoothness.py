import pytest
import torch
import torch.nn.functional as F

from mrtrans.losses.smoothness import (
    cnn_patch_features,
    dense_smoothness_loss,
    foreground_patches,
    histogram_features,
    patch_affinity,
    patchify,
    smoothness_loss,
    smoothness_penalty,
    soft_histogram,
)


def test_patchify_order_and_shape():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (1, 4, 4)
    assert p[0, 0].tolist() == [0, 1, 4, 5] and p[0, 1].tolist() == [2, 3, 6, 7]
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.zeros(1, 1, 5, 4), 2)


def test_soft_histogram_sums_to_pixel_count_per_patch():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32) * 2.4 - 1.2  # also values beyond [-1, 1]
    h = soft_histogram(x, patch_size=8, bins=16)
    assert h.shape == (2, 16, 16)
    assert torch.allclose(h.sum(-1), torch.full((2, 16), 64.0), atol=1e-4)
    assert (h >= 0).all()


def test_soft_histogram_votes_like_eq_11():
    width = 255 / 16
    centre3 = (3 + 0.5) * width  # value exactly at the centre of bin 3 -> one full vote
    x = torch.full((1, 1, 8, 8), centre3 / 255 * 2 - 1)
    assert torch.allclose(soft_histogram(x)[0, 0], torch.eye(16)[3] * 64, atol=1e-3)
    halfway = (centre3 + width / 2) / 255 * 2 - 1  # halfway between centres 3 and 4 -> half votes
    h = soft_histogram(torch.full((1, 1, 8, 8), halfway))[0, 0]
    assert torch.allclose(h[3], torch.tensor(32.0), atol=1e-3) and torch.allclose(h[4], torch.tensor(32.0), atol=1e-3)


def test_soft_histogram_is_differentiable_gradcheck():
    torch.manual_seed(0)
    x = (torch.rand(1, 1, 4, 4, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, patch_size=2, bins=4), (x,), eps=1e-6, atol=1e-5)


def test_affinity_is_symmetric_with_unit_diagonal():
    torch.manual_seed(0)
    f = histogram_features(torch.rand(2, 1, 32, 32) * 2 - 1)
    w = patch_affinity(f, sigma=0.5)
    assert w.shape == (2, 16, 16)
    assert torch.allclose(w, w.transpose(1, 2))
    assert torch.allclose(torch.diagonal(w, dim1=1, dim2=2), torch.ones(2, 16))
    assert (w > 0).all() and (w <= 1).all()


def _hist(x):
    return histogram_features(x, patch_size=8, bins=16)


def test_smoothness_is_zero_for_a_constant_translation():
    torch.manual_seed(0)
    source = torch.rand(1, 1, 32, 32) * 2 - 1
    const = torch.full_like(source, 0.3)
    assert smoothness_loss(source, const, const, _hist, sigma=0.5) == 0


def test_smoothness_grows_when_similar_patches_are_translated_differently():
    source = torch.full((1, 1, 32, 32), -0.2)  # every patch alike: all affinities are 1
    consistent = torch.full_like(source, 0.5)
    inconsistent = consistent.clone()
    inconsistent[..., :16, :8] = -0.9  # four patches become a "tumor" that was not there
    worse = inconsistent.clone()
    worse[..., 16:, 8:16] = -0.9
    l0 = smoothness_loss(source, consistent, consistent, _hist, 0.5)
    l1 = smoothness_loss(source, inconsistent, consistent, _hist, 0.5)
    l2 = smoothness_loss(source, worse, consistent, _hist, 0.5)
    assert l0 == 0 < l1 < l2


def test_dissimilar_source_patches_may_differ_after_translation():
    # Patches that differ in the source have near-zero affinity, so differing translations cost little.
    source = torch.full((1, 1, 16, 16), -1.0)
    source[..., :, 8:] = 1.0
    translated = -source
    similar_source = torch.zeros_like(source)
    assert smoothness_loss(source, translated, translated, _hist, 0.5) < 0.05 * smoothness_loss(
        similar_source, translated, translated, _hist, 0.5
    )


def test_smoothness_gradient_reaches_the_translation():
    torch.manual_seed(0)
    source = torch.rand(1, 1, 32, 32) * 2 - 1
    fake = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_()
    rec = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_()
    smoothness_loss(source, fake, rec, _hist, 0.5).backward()
    assert fake.grad.abs().sum() > 0 and rec.grad.abs().sum() > 0


def test_cnn_patch_features_are_normalised_per_patch():
    fmap = torch.rand(2, 32, 4, 4)
    f = cnn_patch_features(fmap, (32, 32), patch_size=8)
    assert f.shape == (2, 16, 32)
    assert torch.allclose(f.sum(-1), torch.ones(2, 16))
    pooled = cnn_patch_features(torch.rand(1, 8, 8, 8), (32, 32), patch_size=16)  # coarser patches: pooled map
    assert pooled.shape == (1, 4, 8)


def _brain_images(size=32, pad=0, seed=0):
    """A 'brain' square with a bright 'tumor', background -1; ``pad`` more background pixels around."""
    g = torch.Generator().manual_seed(seed)
    source = torch.full((1, 1, size, size), -1.0)
    source[..., 8:24, 8:24] = torch.rand(1, 1, 16, 16, generator=g) * 0.4 - 0.2
    source[..., 8:16, 8:16] = 0.8
    translated = source.clone()
    translated[..., 8:16, 8:16] = -0.5  # the tumor patch translated unlike its source neighbours
    translated[..., 16:24, 8:24] += 0.3
    reconstructed = source + 0.05 * torch.rand(source.shape, generator=g)
    if pad:
        return tuple(F.pad(x, (pad, pad, pad, pad), value=-1.0) for x in (source, translated, reconstructed))
    return source, translated, reconstructed


@pytest.mark.parametrize("normalization", ["brain_pairs", "brain_affinity"])
def test_brain_normalisation_does_not_change_when_background_is_added(normalization):
    small = smoothness_loss(*_brain_images(), _hist, 0.5, normalization=normalization)
    padded = smoothness_loss(*_brain_images(pad=48), _hist, 0.5, normalization=normalization)  # 32 -> 128 pixels
    assert small > 0
    assert torch.allclose(small, padded, rtol=1e-5)
    # ...while the all-pairs mean of mrtrans < 0.2 is diluted by the added background pairs (16 -> 256 patches).
    legacy_small = smoothness_loss(*_brain_images(), _hist, 0.5, normalization="all_pairs")
    legacy_padded = smoothness_loss(*_brain_images(pad=48), _hist, 0.5, normalization="all_pairs")
    assert legacy_padded < legacy_small / 10


def test_brain_pairs_is_the_mean_over_brain_patch_pairs_by_hand():
    source, translated, reconstructed = _brain_images()
    nodes = foreground_patches(source, 8, background=-1.0)
    assert nodes.tolist() == [[False] * 5 + [True, True] + [False] * 2 + [True, True] + [False] * 5]
    w = patch_affinity(_hist(source), 0.5)[0]
    d = torch.cdist(_hist(translated), _hist(translated), p=1)[0]
    idx = nodes[0].nonzero()[:, 0]
    by_hand = (w[idx][:, idx] * d[idx][:, idx]).sum() / len(idx) ** 2
    assert torch.allclose(smoothness_penalty(w[None], _hist(translated), nodes, "brain_pairs"), by_hand)
    by_hand_affinity = (w[idx][:, idx] * d[idx][:, idx]).sum() / w[idx][:, idx].sum()
    assert torch.allclose(smoothness_penalty(w[None], _hist(translated), nodes, "brain_affinity"), by_hand_affinity)


def test_an_image_without_brain_contributes_zero_and_bad_names_fail():
    empty = torch.full((1, 1, 16, 16), -1.0)
    assert smoothness_loss(empty, empty + 1, empty, _hist, 0.5, normalization="brain_pairs") == 0
    with pytest.raises(ValueError, match="normalization"):
        smoothness_penalty(torch.ones(1, 2, 2), torch.ones(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), "per_pixel")


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("normalization", ["all_pairs", "brain_pairs", "brain_affinity"])
def test_smoothness_loss_equals_eq6_written_out_with_two_graphs(normalization, detach):
    torch.manual_seed(1)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    x[..., :8, :] = -1.0  # some background
    fake = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_()
    rec = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_()
    got = smoothness_loss(x, fake, rec, _hist, sigma=0.5, normalization=normalization, detach_translated_graph=detach)
    nodes = foreground_patches(x, 8, -1.0) if normalization != "all_pairs" else None
    f_fake = _hist(fake)
    w_fake = patch_affinity(f_fake.detach() if detach else f_fake, 0.5)
    expected = smoothness_penalty(patch_affinity(_hist(x), 0.5), f_fake, nodes, normalization) + smoothness_penalty(
        w_fake, _hist(rec), nodes, normalization
    )
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7)
    g1 = torch.autograd.grad(got, (fake, rec))
    g2 = torch.autograd.grad(expected, (fake, rec))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(g1, g2))
    other = smoothness_loss(
        x, fake, rec, _hist, sigma=0.5, normalization=normalization, detach_translated_graph=not detach
    )
    assert torch.allclose(other, got)  # the same value; only the gradient through w_ij(G(x)) differs
    g3 = torch.autograd.grad(other, (fake, rec))
    assert not torch.allclose(g3[0], g1[0]) and torch.allclose(g3[1], g1[1], rtol=1e-5, atol=1e-8)


def _brain_batch(size=32, seed=0):
    """Three images with a disc of 'brain' on a -1 background (the third without any brain patch) and their
    translations."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).float()
    images = []
    for brain in (disc, disc, torch.zeros_like(disc)):
        images.append([torch.where(brain > 0, torch.rand(size, size, generator=g) * 1.6 - 0.8, -1.0)])
    source = torch.stack([i[0] for i in images])[:, None]
    fake = (source + 0.3 * torch.randn(source.shape, generator=g)).clamp(-1, 1)
    rec = (source + 0.2 * torch.randn(source.shape, generator=g)).clamp(-1, 1)
    return source, fake.requires_grad_(), rec.requires_grad_()


@pytest.mark.parametrize("normalization", ["all_pairs", "brain_pairs", "brain_affinity"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("gather", [True, False])  # False: the masked form CUDA runs, here on the CPU
def test_the_graph_term_equals_the_dense_all_pairs_reference_in_value_and_gradient(normalization, detach, gather):
    """Eq. 6 over every pair (nothing pruned): the node-restricted, chunked computation gives the dense value and
    gradients to 1e-5 relative (float32, as training computes it; the two sum in different orders)."""
    patch = 2
    feats = lambda x: histogram_features(x, patch_size=patch, bins=8)  # noqa: E731
    source, fake, rec = _brain_batch()
    ref = dense_smoothness_loss(source, fake, rec, feats, 0.5, normalization, patch, detach_translated_graph=detach)
    ref_grads = torch.autograd.grad(ref, (fake, rec))
    now = smoothness_loss(
        source, fake, rec, feats, 0.5, normalization, patch, detach_translated_graph=detach, gather_nodes=gather
    )
    grads = torch.autograd.grad(now, (fake, rec))
    assert ref.item() > 0
    assert torch.allclose(now, ref, rtol=1e-5, atol=0)
    for g, r in zip(grads, ref_grads):
        assert r.abs().max() > 0 and torch.allclose(g, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))


def test_pairwise_l1_is_cdist_with_its_gradient_and_chunks_change_nothing(monkeypatch):
    import mrtrans.losses.smoothness as smoothness

    torch.manual_seed(0)
    f = torch.rand(2, 37, 5, dtype=torch.float64, requires_grad=True)  # distinct values: no ties of sign()
    assert torch.allclose(smoothness.pairwise_l1(f), torch.cdist(f, f, p=1))
    assert torch.autograd.gradcheck(smoothness.pairwise_l1, (f,), eps=1e-6, atol=1e-6)
    weights = torch.rand(2, 37, 37, dtype=torch.float64)
    whole = torch.autograd.grad((smoothness.pairwise_l1(f) * weights).sum(), f)[0]
    monkeypatch.setattr(smoothness, "CPU_CHUNK_ELEMENTS", 2 * 37 * 5 * 3)  # three rows per chunk, the last one short
    chunked = torch.autograd.grad((smoothness.pairwise_l1(f) * weights).sum(), f)[0]
    assert torch.allclose(whole, chunked, rtol=1e-12)
