"""Hallucination audit in the spirit of Cohen et al. (2018): does a translation add or remove tumor?

A small tumor segmentation network (MONAI BasicUNet, 2D) is trained on the *real* training slices
of the target modality with their seg (tumor = seg > 0), seeded, and cached by a key of its
inputs. It is then run on translated test slices and on the real target test slices (the ceiling).
Per slice: Dice against the ground-truth seg (tumor slices), ``removed`` (a tumor slice where the
detector finds no tumor) and ``added`` (a healthy slice where it finds one). A slice "has a tumor"
when at least ``min_detected_pixels`` pixels are detected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet

from mrtrans.config import AuditConfig, to_dict
from mrtrans.data.slices import to_tensor
from mrtrans.training.checkpoint import load_checkpoint, save_checkpoint


def build_detector(cfg: AuditConfig) -> BasicUNet:
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=cfg.features)


def detector_key(cfg: AuditConfig, data_hash: str, modality: str, image_size: int) -> str:
    text = json.dumps({"cfg": to_dict(cfg), "data": data_hash, "modality": modality, "size": image_size}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_detector(images: np.ndarray, seg: np.ndarray, cfg: AuditConfig, device: torch.device) -> BasicUNet:
    """Train on (N, S, S) images in [-1, 1] and their seg; random flips, Dice + BCE, Adam."""
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = build_detector(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss_fn = DiceCELoss(sigmoid=True)
    net.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g).sort().values.numpy()
        x = to_tensor(images[idx])
        y = torch.from_numpy((np.asarray(seg[idx]) > 0).astype(np.float32)).unsqueeze(1)
        flip = torch.rand(2, generator=g) < 0.5
        dims = [d for d, f in zip((2, 3), flip) if f]
        if dims:
            x, y = x.flip(dims), y.flip(dims)
        loss = loss_fn(net(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def cached_detector(
    images: np.ndarray, seg: np.ndarray, cfg: AuditConfig, key: str, cache_dir: Path, device: torch.device
) -> BasicUNet:
    """Load the detector for ``key`` from ``cache_dir``, or train and cache it."""
    path = cache_dir / f"detector_{key}.pt"
    net = build_detector(cfg).to(device)
    if path.is_file():
        net.load_state_dict(load_checkpoint(path, map_location=device)["models"]["detector"])
        return net.eval()
    net = train_detector(images, seg, cfg, device)
    save_checkpoint({"kind": "audit-detector", "config": to_dict(cfg), "models": {"detector": net.state_dict()}}, path)
    return net


@torch.no_grad()
def detect(net: torch.nn.Module, images: np.ndarray, threshold: float, device: torch.device, batch_size: int = 16) -> np.ndarray:
    """(N, S, S) images in [-1, 1] -> (N, S, S) boolean tumor masks."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size]).to(device)
        out.append((torch.sigmoid(net(x)) > threshold)[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], bool)


def audit_slices(detected: np.ndarray, tumor: np.ndarray, is_tumor_slice: np.ndarray, min_pixels: int) -> dict[str, np.ndarray]:
    """Per slice: detected pixels, Dice (tumor slices), detected flag, removed, added.

    Args:
        detected: (N, S, S) detector masks; tumor: (N, S, S) ground truth; is_tumor_slice: (N,) labels.
    """
    n_det = detected.sum(axis=(1, 2))
    has = n_det >= min_pixels
    inter = (detected & tumor).sum(axis=(1, 2))
    denom = n_det + tumor.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(is_tumor_slice, 2 * inter / np.maximum(denom, 1), np.nan)
    return {
        "detected_pixels": n_det,
        "dice": dice,
        "tumor_detected": has.astype(float),
        "removed": np.where(is_tumor_slice, ~has, np.nan).astype(float),
        "added": np.where(~is_tumor_slice, has, np.nan).astype(float),
    }
