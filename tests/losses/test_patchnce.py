import math

import pytest
import torch
import torch.nn.functional as F

from mrtrans.losses.patchnce import PatchProjector, patch_nce_loss, sample_locations


def _features(b=2, p=16, c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, p, c, generator=g), dim=-1)


def test_identical_query_and_key_give_the_loss_of_the_positive_being_the_most_similar():
    q = _features()
    loss = patch_nce_loss(q, q.clone(), temperature=0.07)
    # by hand: the positive logit is q.q = 1; the negatives are the other patches of the same image
    b, p, _ = q.shape
    expected = []
    for i in range(b):
        sims = q[i] @ q[i].T
        for j in range(p):
            negatives = torch.cat([sims[j, :j], sims[j, j + 1 :]])
            logits = torch.cat([torch.ones(1), torch.tensor([-10.0]), negatives]) / 0.07
            expected.append(-(logits[0] - torch.logsumexp(logits, 0)))
    assert torch.allclose(loss, torch.stack(expected), atol=1e-5)
    assert loss.shape == (b * p,) and (loss >= 0).all()


def test_shuffled_keys_raise_the_loss_and_keys_get_no_gradient():
    q = _features(seed=1).requires_grad_()
    k = q.detach().clone().requires_grad_()
    matched = patch_nce_loss(q, k).mean()
    shuffled = patch_nce_loss(q, k[:, torch.randperm(k.shape[1], generator=torch.Generator().manual_seed(0))]).mean()
    assert shuffled > matched + 1.0
    matched.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0 and k.grad is None  # the keys are constants


def test_the_loss_is_log_of_the_patch_count_when_every_feature_is_the_same():
    q = F.normalize(torch.ones(1, 8, 4), dim=-1)
    loss = patch_nce_loss(q, q)  # positive and 7 negatives all at similarity 1 (the masked one at -10)
    assert torch.allclose(loss, torch.full((8,), math.log(8 + math.exp((-10 - 1) / 0.07))), atol=1e-5)
    with pytest.raises(ValueError, match="must both be"):
        patch_nce_loss(q, q[:, :4])


def test_the_projector_samples_the_same_locations_for_query_and_key_and_normalises():
    torch.manual_seed(0)
    proj = PatchProjector([3, 5], width=16)
    feats = [torch.randn(2, 3, 6, 6), torch.randn(2, 5, 3, 3)]
    ids = [sample_locations(6, 6, 10), sample_locations(3, 3, 10)]
    assert len(ids[0]) == 10 and len(ids[1]) == 9 and len(set(ids[0].tolist())) == 10  # fewer locations than asked
    out = proj(feats, ids)
    assert [tuple(o.shape) for o in out] == [(2, 10, 16), (2, 9, 16)]
    assert torch.allclose(out[0].norm(dim=-1), torch.ones(2, 10), atol=1e-5)
    # patch k of the output is the head applied to location ids[k] of the input
    flat = feats[0].flatten(2).transpose(1, 2)[:, ids[0][3]]
    assert torch.allclose(out[0][:, 3], F.normalize(proj.heads[0](flat), dim=-1), atol=1e-6)
