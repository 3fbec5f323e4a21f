"""PatchNCE (Park, Efros, Zhang, Zhu, ECCV 2020): contrastive patch correspondence for CUT and FastCUT.

A patch of the translation G(x) (the query, from the generator's encoder features) should match the patch of x
at the same location (its positive key) better than the other sampled patches of the same image (negatives).
As in the authors' code (taesungp/contrastive-unpaired-translation, ``models/patchnce.py``): features are
projected by a per-layer MLP and L2-normalised (:class:`PatchProjector`), the keys are detached, the logits are
dot products over a temperature (0.07), negatives come from the same image only (their default for CUT and
FastCUT), the query-with-itself entries of the negatives are masked to -10 (e^-10 ~ 0), and the loss is the cross
entropy with the positive as the target class. Pure functions and modules; the training step is elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TEMPERATURE = 0.07  # nce_T in the authors' code
NUM_PATCHES = 256  # num_patches: sampled locations per layer and image
MLP_WIDTH = 256  # netF_nc: width of the projection head


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Per-patch PatchNCE loss, shape (B * P,).

    Args:
        query: (B, P, C) L2-normalised features of G(x) at P sampled locations per image.
        key: (B, P, C) L2-normalised features of x at the same locations (treated as constants).
        temperature: divides the logits.
    """
    if query.shape != key.shape or query.dim() != 3:
        raise ValueError(f"query {tuple(query.shape)} and key {tuple(key.shape)} must both be (B, P, C)")
    key = key.detach()
    b, p, _ = query.shape
    positive = (query * key).sum(dim=-1, keepdim=True)  # (B, P, 1)
    negative = torch.bmm(query, key.transpose(1, 2))  # (B, P, P): every key of the same image
    diagonal = torch.eye(p, dtype=torch.bool, device=query.device)[None]
    negative = negative.masked_fill(diagonal, -10.0)  # the positive is not also a negative
    logits = torch.cat([positive, negative], dim=-1).reshape(b * p, p + 1) / temperature
    target = torch.zeros(b * p, dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target, reduction="none")


def sample_locations(height: int, width: int, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` distinct flat locations of an (H, W) feature map (all of them, shuffled, when it has fewer)."""
    return torch.randperm(height * width, generator=generator)[: min(count, height * width)]


class PatchProjector(nn.Module):
    """CUT's PatchSampleF with its MLP: per encoder layer, Linear(C, 256) - ReLU - Linear(256, 256), then L2 norm.

    The layers' channel counts are given up front (the authors' code builds the MLPs lazily on the first batch),
    so the parameters exist for the optimiser and the checkpoint from the start.
    """

    def __init__(self, channels: list[int], width: int = MLP_WIDTH) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, width), nn.ReLU(inplace=True), nn.Linear(width, width)) for c in channels
        )

    def forward(self, features: list[torch.Tensor], locations: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C, H, W) per layer and its sampled flat locations -> (B, P, width) L2-normalised per layer.

        The same ``locations`` serve the query (G(x)) and the key (x): that is what makes a pair positive.
        """
        if len(features) != len(self.heads) or len(locations) != len(self.heads):
            raise ValueError(f"{len(self.heads)} layers expected, got {len(features)} features, {len(locations)} ids")
        out = []
        for head, feat, ids in zip(self.heads, features, locations):
            flat = feat.flatten(2).transpose(1, 2)  # (B, H*W, C)
            out.append(F.normalize(head(flat[:, ids.to(feat.device), :]), dim=-1))
        return out
