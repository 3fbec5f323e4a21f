"""The second tumor instrument: what a segmentation model of the target sequence finds in a translation.

BraSyn (BraTS 2023) and later work on hallucinated tumors score a synthesized sequence by what a tumor
segmentation model finds in it, against the real sequence as the ceiling. Here the model is a small MONAI
BasicUNet (2D) of the target sequence's tumor region (:func:`mrtrans.evaluation.audit.region_labels`: whole tumor
on FLAIR/T2, core on T1/T1ce), trained seeded on the **real** target training slices as they are: unlike the
additions detector it never sees inverted tumors, so a lesion kept with the source's contrast is what a
segmenter of the real sequence would miss. It is cached like the detector (:func:`mrtrans.evaluation.audit.
cached_detector`) and applied to every translation and to the ceiling and floor rows:

* per tumor slice, Dice of the segmentation against the reference region;
* per reference lesion (:class:`mrtrans.evaluation.presence.LesionRings`), **found** when the segmentation
  covers at least ``min_overlap`` of its pixels, else **missed**;
* per healthy slice, **false lesions**: segmented lesions that overlap no tumor label.

The real target is its ceiling (lesions it finds there), the target with its tumors inpainted its floor (lesions
it "finds" where none is): its verdicts stand only when the ceiling is high and the floor low
(:class:`mrtrans.config.SegmentationConfig`).
"""

from __future__ import annotations

import numpy as np

from mrtrans.config import AuditConfig, SegmentationConfig
from mrtrans.evaluation.presence import LesionRings


def segmenter_settings(cfg: SegmentationConfig) -> AuditConfig:
    """The training settings of the segmenter, in the detector's terms (one polarity, the whole-image region set by
    the caller)."""
    return AuditConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        features=cfg.features,
        threshold=cfg.threshold,
        both_polarities=False,
        seed=cfg.seed,
    )


def lesions_found(masks: np.ndarray, rings: LesionRings, min_overlap: float) -> np.ndarray:
    """(L,) bool: the segmentation ((N, H, W) masks) covers at least ``min_overlap`` of each reference lesion's
    pixels (at least one pixel)."""
    found = np.zeros(len(rings), bool)
    for j, (i, lesion) in enumerate(zip(rings.slice_index, rings.lesion)):
        covered = np.asarray(masks[i]).ravel()[lesion].sum()
        found[j] = covered >= max(1.0, min_overlap * len(lesion))
    return found
