"""Tumor additions, in the spirit of Cohen et al. (2018): does a translation add a tumor-like structure?

A small tumor segmentation network (MONAI BasicUNet, 2D) is trained on the *real* training slices
of the target modality with their seg, seeded, and cached by a key of its inputs. What it learns to
segment is the tumor region that sequence shows (:func:`region_labels`): the whole tumor (edema
included) on FLAIR and T2, the tumor core without edema on T1 and T1ce, where edema is barely visible.
With ``both_polarities`` (the default) half of its training batches have their tumors inverted in their
own context (brighter than the tissue around them becomes darker, :func:`invert_lesions`), so it finds a
lesion whichever way it differs from its surroundings: a translation that adds a tumor with the source
sequence's contrast is found as well as one with the target's.

Removal is not judged by this detector (a tumor kept with the source's contrast would look "removed"
to a detector of the target's contrast): :mod:`mrtrans.evaluation.presence` does that, by conspicuity.

Lesions are 2D connected components (8-connected) of at least ``min_lesion_pixels`` pixels, of the
detector's output and of the reference region. Per slice:

* ``added_lesions``: detected lesions that overlap no tumor at all (any seg label), so a detection
  on edema is not called an addition;
* Dice of the detection against the reference region (slices with a reference lesion).

The detector on the real target slices gives the false-addition floor; two sanity rows show it can see
what it must: healthy real slices with a real tumor pasted in with the target's contrast and with the
source's contrast (expect ~100 % of them with an added lesion each).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from scipy import ndimage

from mrtrans.checkpoint import load_checkpoint, save_checkpoint
from mrtrans.config import AuditConfig, to_dict
from mrtrans.data_prep.discovery import LAYOUTS, Layout
from mrtrans.data_prep.slices import to_tensor
from mrtrans.domain import CORE_SEQUENCES


def build_detector(cfg: AuditConfig) -> BasicUNet:
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=cfg.features)


def detector_key(cfg: AuditConfig, data: dict, modality: str, image_size: int, device_type: str = "cpu") -> str:
    """Cache key of a trained detector: its config, the prepared set (input hash and recipe: sets of one
    root with other seeds split patients differently), the region, the size, and the device type
    (CPU and CUDA kernels train to slightly different weights)."""
    text = json.dumps(
        {"cfg": to_dict(cfg), "data": data, "modality": modality, "size": image_size, "device": device_type},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def region_labels(modality: str, region: str, layouts: list[str] | None) -> tuple[int, ...] | None:
    """BraTS labels of the detector's region for ``modality`` (None: every label > 0).

    Args:
        region: ``whole``, ``core`` or ``auto`` (core for T1/T1ce, whole otherwise).
        layouts: seg conventions of the prepared subjects (prepare.json); None for sets prepared by
            mrtrans < 0.2, which are taken as BraTS (labels 1 and 4, and 3 of BraTS 2023+).

    Raises:
        ValueError: the subjects mix seg conventions whose core labels differ.
    """
    if region == "auto":
        region = "core" if modality in CORE_SEQUENCES else "whole"
    if region == "whole":
        return None
    if not layouts:
        return (1, 3, 4)  # 2018-21 have no label 3, 2023+ no label 4: the core of either
    cores = {LAYOUTS[Layout(layout)].core_labels for layout in layouts}
    if len(cores) > 1:
        raise ValueError(f"subjects of several seg conventions ({', '.join(layouts)}): the tumor core is ambiguous")
    return cores.pop()


def region_mask(seg: np.ndarray, labels: tuple[int, ...] | None) -> np.ndarray:
    """Boolean mask of ``labels`` in ``seg`` (every label > 0 when ``labels`` is None)."""
    seg = np.asarray(seg)
    return seg > 0 if labels is None else np.isin(seg, labels)


def invert_lesions(
    images: np.ndarray, tumor: np.ndarray, ring_width: int = 4, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """Copies of (N, S, S) images whose tumors have the opposite polarity in their own context: inside each
    slice's tumor (every label, dilated by 1 pixel, within the brain) v -> 2 m - v, m the mean of the healthy
    brain within ``ring_width`` pixels around it; the rest of the slice is unchanged. A FLAIR-bright tumor
    becomes dark in a FLAIR slice: what a translation that adds a tumor with the other sequence's contrast makes.
    """
    out = np.array(images, np.float32)
    for i in range(len(out)):
        brain = out[i] > low + 1e-3
        lesion = ndimage.binary_dilation(np.asarray(tumor[i]) > 0) & brain
        ring = ndimage.binary_dilation(lesion, iterations=ring_width) & brain & ~lesion
        if lesion.any() and ring.any():
            out[i][lesion] = np.clip(2 * out[i][ring].mean() - out[i][lesion], low, high)
    return out


def train_detector(
    images: np.ndarray, seg: np.ndarray, cfg: AuditConfig, device: torch.device, tumor: np.ndarray | None = None
) -> BasicUNet:
    """Train on (N, S, S) images in [-1, 1] and their region masks (or seg: > 0); random flips, Dice + BCE, Adam.

    With ``cfg.both_polarities`` each batch comes with probability 1/2 from copies whose tumors (``tumor``:
    every label; default ``seg``) are inverted in their own context (:func:`invert_lesions`), so the detector
    finds a lesion whichever way it differs from the tissue around it.
    """
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = build_detector(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss_fn = DiceCELoss(sigmoid=True)
    inverted = invert_lesions(images, seg if tumor is None else tumor) if cfg.both_polarities else None
    net.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g).sort().values.numpy()
        flip = torch.rand(3, generator=g) < 0.5
        x = to_tensor((inverted if inverted is not None and flip[2] else images)[idx])
        y = torch.from_numpy((np.asarray(seg[idx]) > 0).astype(np.float32)).unsqueeze(1)
        dims = [d for d, f in zip((2, 3), flip[:2]) if f]
        if dims:
            x, y = x.flip(dims), y.flip(dims)
        loss = loss_fn(net(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def cached_detector(
    images: np.ndarray,
    seg: np.ndarray,
    cfg: AuditConfig,
    key: str,
    cache_dir: Path,
    device: torch.device,
    tumor: np.ndarray | None = None,
) -> BasicUNet:
    """Load the detector for ``key`` from ``cache_dir``, or train and cache it (:func:`train_detector`)."""
    path = cache_dir / f"detector_{key}.pt"
    net = build_detector(cfg).to(device)
    if path.is_file():
        net.load_state_dict(load_checkpoint(path, map_location=device)["models"]["detector"])
        return net.eval()
    net = train_detector(images, seg, cfg, device, tumor)
    save_checkpoint({"kind": "audit-detector", "config": to_dict(cfg), "models": {"detector": net.state_dict()}}, path)
    return net


@torch.no_grad()
def detect(
    net: torch.nn.Module, images: np.ndarray, threshold: float, device: torch.device, batch_size: int = 16
) -> np.ndarray:
    """(N, S, S) images in [-1, 1] -> (N, S, S) boolean tumor masks."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size]).to(device)
        out.append((torch.sigmoid(net(x)) > threshold)[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], bool)


_EIGHT = np.ones((3, 3), bool)


def lesions(mask: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Connected components (8-connected) of one (S, S) mask with at least ``min_pixels`` pixels.

    Returns:
        (labels, count): labels 1..count on the kept lesions, 0 elsewhere.
    """
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return labels, 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep] = np.arange(1, keep.sum() + 1)
    return relabel[labels], int(keep.sum())


def audit_lesions(
    detected: np.ndarray, reference: np.ndarray, any_tumor: np.ndarray, min_pixels: int
) -> dict[str, np.ndarray]:
    """Per slice: detected and added lesion counts, and Dice (module docstring).

    Args:
        detected: (N, S, S) detector masks.
        reference: (N, S, S) the detector's region of the ground truth.
        any_tumor: (N, S, S) every tumor label (an addition is a detection outside all of them).
        min_pixels: smallest lesion.
    """
    n = len(detected)
    out = {k: np.zeros(n) for k in ("detected_lesions", "added_lesions")}
    out["dice"] = np.full(n, np.nan)
    for i in range(n):
        det_lab, n_det = lesions(detected[i], min_pixels)
        det_mask = det_lab > 0
        out["detected_lesions"][i] = n_det
        hits = np.unique(det_lab[any_tumor[i].astype(bool)])
        out["added_lesions"][i] = n_det - np.count_nonzero(hits)
        if reference[i].any():
            inter = (det_mask & reference[i]).sum()
            out["dice"][i] = 2 * inter / max(det_mask.sum() + reference[i].sum(), 1)
    return out


def inpaint_tumors(images: np.ndarray, seg: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Sanity input: every tumor (dilated by 2 pixels, inside the brain) filled from the surrounding healthy
    tissue by biharmonic inpainting (scikit-image), so the lesion is gone and the anatomy stays."""
    from skimage.restoration import inpaint_biharmonic

    out = np.array(images, np.float32)
    for i in range(len(out)):
        lesion = ndimage.binary_dilation(seg[i] > 0, iterations=2) & (brain[i] > 0)
        if lesion.any():
            out[i] = inpaint_biharmonic(out[i].astype(np.float64), lesion).astype(np.float32)
    return out


def fill_healthy(
    images: np.ndarray, seg: np.ndarray, brain: np.ndarray, scales: tuple[float, ...] = (2, 4, 8, 16, 32), seed: int = 0
) -> np.ndarray:
    """Floor input: every tumor (dilated by 2 pixels, inside the brain) replaced by the healthy tissue around it:
    a normalised Gaussian average of the healthy brain pixels (the smallest of ``scales`` that reaches healthy
    brain), plus noise of the slice's healthy texture (the standard deviation of its residual after a 1-pixel
    Gaussian smoothing). Unlike biharmonic inpainting (:func:`inpaint_tumors`) the fill never overshoots the
    values around it, so a large lesion next to bright cortex does not turn into a bright blob (which a
    segmenter would call a tumor)."""
    rng = np.random.default_rng(seed)
    out = np.array(images, np.float32)
    for i in range(len(out)):
        lesion = ndimage.binary_dilation(seg[i] > 0, iterations=2) & (brain[i] > 0)
        healthy = (brain[i] > 0) & ~lesion
        if not lesion.any() or not healthy.any():
            continue
        image = out[i].astype(np.float64)
        fill, todo = np.zeros_like(image), lesion.copy()
        for sigma in scales:
            weight = ndimage.gaussian_filter(healthy.astype(np.float64), sigma)
            ready = todo & (weight > 0.05)
            fill[ready] = ndimage.gaussian_filter(image * healthy, sigma)[ready] / weight[ready]
            todo &= ~ready
        fill[todo] = image[healthy].mean()
        texture = (image - ndimage.gaussian_filter(image, 1.0))[healthy].std()
        out[i][lesion] = (fill[lesion] + rng.normal(0.0, texture, lesion.sum())).astype(np.float32)
    return out


def paste_tumors(
    images: np.ndarray,
    seg: np.ndarray,
    brain: np.ndarray,
    healthy: np.ndarray,
    donors: np.ndarray,
    donor_images: np.ndarray | None = None,
    ring_width: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Sanity input: into each healthy slice, a real tumor (at its own place) from a donor tumor slice, with the
    donor's **contrast**: each pasted pixel is the donor's value minus the mean of the donor's healthy brain
    around the tumor, plus the mean of the receiving slice's brain around the same place.

    Donors are taken in turn; the pasted tumor is cut to the receiving slice's brain.

    Args:
        donor_images: where the tumors come from (default ``images``: the target's own contrast; the paired
            source slices give a tumor with the source sequence's contrast, e.g. a FLAIR-bright one in T1).

    Returns:
        (images, pasted seg): the slices with tumors pasted in, and the pasted labels (0 elsewhere).
    """
    donor_images = images if donor_images is None else donor_images
    out = np.array(images, np.float32)
    pasted = np.zeros(np.shape(seg), np.uint8)
    for k, i in enumerate(np.flatnonzero(healthy)):
        d = donors[k % len(donors)]
        tumor_d = seg[d] > 0
        lesion = tumor_d & (brain[i] > 0)
        if not lesion.any():
            continue
        near = ndimage.binary_dilation(tumor_d, iterations=ring_width)
        ring_d, ring_i = near & (brain[d] > 0) & ~tumor_d, near & (brain[i] > 0) & ~lesion
        offset = (out[i][ring_i].mean() if ring_i.any() else 0.0) - (
            donor_images[d][ring_d].mean() if ring_d.any() else 0.0
        )
        out[i][lesion] = np.clip(
            donor_images[d][lesion] + offset, -0.99, 1.0
        )  # stays brain (above the background's -1)
        pasted[i][lesion] = seg[d][lesion]
    return out, pasted
