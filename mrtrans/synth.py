"""Synthetic BraTS-like subjects: skull-stripped brain, tissue contrasts per modality, tumors.

Each subject is an ellipsoidal brain with a smoothly perturbed outline, a cortical grey-matter
ribbon with folded boundary and sulcal CSF, white matter, two lateral ventricles, and (in some
subjects) a tumor with necrotic core (label 1), enhancing rim (label 4) and edema (label 2).
Intensities follow the usual appearance of each sequence:

=========  ====  ====  ====  =====  ==========  ========
sequence   CSF   GM    WM    edema  enhancing   necrosis
=========  ====  ====  ====  =====  ==========  ========
FLAIR      dark  mid   low   bright bright      mid
T1         dark  mid   high  low    low         dark
T1ce       dark  mid   high  low    very bright dark
T2         very  mid   low   bright bright      very
=========  ====  ====  ====  =====  ==========  ========

then a smooth multiplicative bias field, partial-volume blur, Rician noise and a per-subject
scanner gain. Files follow the BraTS 2020 layout: ``OUT/<ID>/<ID>_{flair,t1,t1ce,t2,seg}.nii.gz``,
int16 images, uint8 seg, 1 mm isotropic RAS affine. Everything is a function of ``(seed, index)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from mrtrans.config import SynthConfig
from mrtrans.domain import Modality
from mrtrans.io import write_nifti
from mrtrans.outputs import OutputKind, atomic_dir

# Tissue classes used internally.
BACKGROUND, CSF, GM, WM, EDEMA, ENHANCING, NECROSIS = range(7)

# Mean intensity per tissue (index = class above) and sequence, in arbitrary scanner units.
TISSUE_MEANS: dict[Modality, tuple[float, ...]] = {
    Modality.flair: (0, 180, 620, 460, 1050, 900, 520),
    Modality.t1: (0, 260, 600, 820, 480, 430, 280),
    Modality.t1ce: (0, 270, 620, 840, 500, 1350, 300),
    Modality.t2: (0, 1500, 560, 400, 1150, 950, 1400),
}

# BraTS labels of the tumor classes.
SEG_LABELS = {NECROSIS: 1, EDEMA: 2, ENHANCING: 4}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: coarse Gaussian noise, cubic then trilinear upsampling.

    The cubic step (to 4x the coarse grid) gives the smoothness; the trilinear step to full size
    is cheap (a full-size cubic zoom costs ~3 s per BraTS volume).
    """
    grid = rng.standard_normal((coarse,) * len(shape))
    fine_shape = [min(4 * coarse, s) for s in shape]
    fine = ndimage.zoom(grid, [f / coarse for f in fine_shape], order=3, mode="nearest")
    field = F.interpolate(torch.from_numpy(fine)[None, None], size=shape, mode="trilinear", align_corners=True)
    field = field[0, 0].numpy()
    return field / (np.abs(field).max() + 1e-8)


def synth_subject(
    shape: tuple[int, int, int], seed: int, index: int, with_tumor: bool, tumor_scale: float = 1.0
) -> tuple[dict[Modality, np.ndarray], np.ndarray]:
    """Make one subject.

    Args:
        shape: volume shape (X, Y, Z) in voxels of 1 mm; axis 2 is axial (inferior to superior).
        seed, index: the subject is a deterministic function of both.
        with_tumor: whether to place a tumor.
        tumor_scale: factor on the tumor's radius (1: cores of 10-16 mm at 240 voxels); the rest of the
            subject, and every random draw, stay the same.

    Returns:
        ``(images, seg)``: int16 volumes per modality and the uint8 BraTS label map.
    """
    rng = np.random.default_rng([seed, index])
    nx, ny, nz = shape
    # Broadcastable coordinates (nx,1,1), (1,ny,1), (1,1,nz) in float32: full grids are built
    # only where an expression needs them.
    x, y, z = np.meshgrid(
        ((np.arange(nx) - (nx - 1) / 2) / nx).astype(np.float32),
        ((np.arange(ny) - (ny - 1) / 2) / ny).astype(np.float32),
        ((np.arange(nz) - (nz - 1) / 2) / nz).astype(np.float32),
        indexing="ij",
        sparse=True,
    )
    # Brain semi-axes as fractions of the field of view (about 140 x 170 x 125 mm in 240x240x155).
    axes = np.array([0.29, 0.355, 0.40]) * rng.uniform(0.93, 1.07, size=3)
    r = np.sqrt((x / axes[0]) ** 2 + (y / axes[1]) ** 2 + (z / axes[2]) ** 2)
    r = r * (1 + 0.06 * _smooth_field(rng, shape, 5))  # per-subject outline
    fold = _smooth_field(rng, shape, 14)  # gyri and sulci

    tissue = np.zeros(shape, np.uint8)
    brain = r < 1.0
    tissue[brain] = WM
    tissue[brain & (r > 0.80 + 0.06 * fold)] = GM
    tissue[brain & (r > 0.88) & (fold > 0.2)] = CSF  # sulcal CSF
    for side in (-1, 1):  # lateral ventricles
        vx, vy, vz = side * 0.05, 0.02 + 0.02 * rng.standard_normal(), 0.04
        v = ((x - vx) / 0.035) ** 2 + ((y - vy) / 0.13) ** 2 + ((z - vz) / 0.09) ** 2
        tissue[brain & (v < 1.0)] = CSF

    if with_tumor:
        while True:  # a center well inside the brain, off the midline
            c = rng.uniform(-0.55, 0.55, size=3) * axes
            if abs(c[0]) > 0.06 and np.sqrt(((c / axes) ** 2).sum()) < 0.6:
                break
        radius = rng.uniform(0.04, 0.065) * nx * tumor_scale  # core radius in voxels (1 mm): 10-16 mm at 240
        d = np.sqrt(((x - c[0]) * nx) ** 2 + ((y - c[1]) * ny) ** 2 + ((z - c[2]) * nz) ** 2) / radius
        d = d * (1 + 0.18 * _smooth_field(rng, shape, 8))
        edema_extent = rng.uniform(1.6, 2.2)
        tissue[brain & (d < edema_extent) & np.isin(tissue, (WM, GM))] = EDEMA
        tissue[brain & (d < 1.0)] = ENHANCING
        tissue[brain & (d < rng.uniform(0.45, 0.65))] = NECROSIS

    seg = np.zeros(shape, np.uint8)
    for cls, label in SEG_LABELS.items():
        seg[tissue == cls] = label

    texture = 1 + 0.03 * _smooth_field(rng, shape, 30)
    poly = [x, y, z, x * y, y * z, x * z, x**2, y**2, z**2]
    images: dict[Modality, np.ndarray] = {}
    for modality, means in TISSUE_MEANS.items():
        image = np.asarray(means, np.float32)[tissue] * texture
        image = ndimage.gaussian_filter(image, sigma=0.6)  # partial volume
        coef = rng.uniform(-0.3, 0.3, size=len(poly)).astype(np.float32)
        bias = np.exp(sum(k * p for k, p in zip(coef, poly)))
        gain = rng.uniform(0.8, 1.3)
        image = image * bias * gain
        sigma = 0.03 * means[WM] * gain
        real = image + np.float32(sigma) * rng.standard_normal(shape, dtype=np.float32)
        imag = np.float32(sigma) * rng.standard_normal(shape, dtype=np.float32)
        noisy = np.sqrt(real**2 + imag**2)  # Rician magnitude
        noisy[~brain] = 0  # skull-stripped: background is exactly 0, as in BraTS
        images[modality] = np.clip(np.rint(noisy), 0, np.iinfo(np.int16).max).astype(np.int16)
    return images, seg


def subject_id(index: int) -> str:
    """BraTS-2020-like identifier of the synthetic subject ``index``."""
    return f"SynthBraTS_{index + 1:03d}"


def write_synthetic_brats(
    out: str | Path,
    cfg: SynthConfig,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write ``cfg.subjects`` synthetic subjects under ``out`` in the BraTS 2020 layout.

    The folder appears only once all subjects are written. ``round(tumor_fraction * subjects)``
    subjects get a tumor, chosen by the seed.

    Returns:
        The subject identifiers.
    """
    n_tumor = int(round(cfg.tumor_fraction * cfg.subjects))
    tumor_idx = set(np.random.default_rng(cfg.seed).permutation(cfg.subjects)[:n_tumor].tolist())
    affine = np.eye(4)
    affine[:3, 3] = -(np.asarray(cfg.shape) - 1) / 2  # RAS, 1 mm, origin at the volume center
    ids = []
    with atomic_dir(out, OutputKind.synth, overwrite=overwrite) as tmp:
        for i in range(cfg.subjects):
            images, seg = synth_subject(cfg.shape, cfg.seed, i, i in tumor_idx, cfg.tumor_scale)
            sid = subject_id(i)
            for modality, image in images.items():
                write_nifti(image, tmp / sid / f"{sid}_{modality.value}.nii.gz", affine=affine)
            write_nifti(seg, tmp / sid / f"{sid}_seg.nii.gz", affine=affine)
            ids.append(sid)
            if progress:
                progress(1)
    return ids
