"""Per-lesion tumor presence by conspicuity: is each reference lesion still visible after translation, and how?

No detector decides removal. Each **reference lesion** (an 8-connected 2D component, of at least
``min_pixels`` pixels, of the tumor region the target sequence shows; :func:`mrtrans.evaluation.audit.region_labels`)
gets a **signed contrast-to-noise ratio** against a ring of healthy brain around it::

    CNR = (mean(image in lesion) - mean(image in ring)) / max(std(image in ring), noise_floor)

The ring is the healthy brain (brain minus every tumor label) within ``ring_width`` pixels beyond the
healthy pixel nearest to the lesion, so a tumor core's ring lies outside the edema around it.

A lesion is **present** in an image when |CNR| exceeds a threshold calibrated on the real target with
its tumors inpainted (:func:`calibrate_threshold`: the ``1 - false_present_rate`` quantile of |CNR| over
the inpainted lesions), so that a lesion that is not there is called present at that rate. A lesion is
**judgeable** when the real target shows it (present in the real target); only judgeable lesions can
be kept or lost by a translation. Each judgeable lesion of a translation is one of:

* ``erased``: not present in the translation;
* ``present_same``: present with the real target's polarity (brighter or darker than its ring, as in the target);
* ``present_opposite``: present with the opposite polarity (e.g. a FLAIR-bright core kept in a translated T1).

A lesion the real target does not show is **not judgeable**: never "removed", reported apart. For present
lesions of the real polarity ``cnr_error`` = |CNR(translation) - CNR(real)| says how far the contrast is off;
it is undefined for an erased lesion, so no contrast number can reward erasing a tumor.

A judgeable lesion is **keepable** when the **source** slice shows it too: |CNR(source)| above the source
sequence's own threshold (calibrated the same way, on the source with its tumors inpainted) and above the
target's, either polarity. Only then is "erased" a translator's doing: a translation that copied the source's
contrast would be judged present (copy-source is 0% erased among keepable lesions by construction). A judgeable
lesion the source does not show is **not in the source** (:data:`STRATA`): a translation that shows it has
recovered it; one that does not is not to blame.

The sanity row "inpainted target comes out erased" is judged with **cross-fitted** thresholds
(:func:`cross_fitted_thresholds`): each lesion against a threshold calibrated on other patients' lesions only, so
the row shows how the calibration does on lesions it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mrtrans.evaluation.audit import lesions

OUTCOMES = ("erased", "present_same", "present_opposite")
# Which lesions an outcome rate is over: every judgeable one, those the source shows too, those it does not.
STRATA = ("judgeable", "keepable", "not_in_source")


@dataclass(frozen=True)
class LesionRings:
    """Where each reference lesion and its healthy ring are, for a stack of (N, H, W) slices.

    Attributes:
        slice_index: (L,) index of each lesion's slice in the stack.
        lesion: L arrays of flat pixel indices (into one H*W slice) of the lesion.
        ring: L arrays of flat pixel indices of its healthy ring (may be empty).
    """

    slice_index: np.ndarray
    lesion: list[np.ndarray]
    ring: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.slice_index)

    @property
    def pixels(self) -> np.ndarray:
        return np.array([len(p) for p in self.lesion], np.int64)


def lesion_rings(
    reference: np.ndarray, any_tumor: np.ndarray, brain: np.ndarray, min_pixels: int, ring_width: int
) -> LesionRings:
    """Reference lesions and their rings of healthy brain.

    Args:
        reference: (N, H, W) the sequence's tumor region (bool).
        any_tumor: (N, H, W) every tumor label (the ring avoids all of them).
        brain: (N, H, W) brain masks.
        min_pixels: smallest lesion.
        ring_width: ring thickness in pixels, counted from the nearest healthy pixel.
    """
    index, lesion_px, ring_px = [], [], []
    for i in range(len(reference)):
        labels, n = lesions(np.asarray(reference[i], bool), min_pixels)
        if n == 0:
            continue
        healthy = np.asarray(brain[i], bool) & ~np.asarray(any_tumor[i], bool)
        for k in range(1, n + 1):
            mask = labels == k
            ring = np.zeros_like(mask)
            if healthy.any():
                dist = ndimage.distance_transform_edt(~mask)
                ring = healthy & (dist <= dist[healthy].min() + ring_width)
            index.append(i)
            lesion_px.append(np.flatnonzero(mask))
            ring_px.append(np.flatnonzero(ring))
    return LesionRings(np.array(index, np.int64), lesion_px, ring_px)


def signed_cnr(images: np.ndarray, rings: LesionRings, noise_floor: float, min_ring_pixels: int = 32) -> np.ndarray:
    """(L,) signed CNR of every lesion in ``images`` ((N, H, W)); NaN where the ring has fewer than
    ``min_ring_pixels``.
    """
    out = np.full(len(rings), np.nan)
    for j, (i, lesion, ring) in enumerate(zip(rings.slice_index, rings.lesion, rings.ring)):
        if len(ring) < min_ring_pixels:
            continue
        flat = np.asarray(images[i], np.float64).ravel()
        around = flat[ring]
        out[j] = (flat[lesion].mean() - around.mean()) / max(around.std(), noise_floor)
    return out


def calibrate_threshold(cnr_absent: np.ndarray, false_present_rate: float) -> float:
    """|CNR| above which a lesion counts as present: the ``1 - false_present_rate`` quantile of |CNR| on
    images where the lesions are known to be absent (the real target with its tumors inpainted).

    Raises:
        ValueError: no finite CNR to calibrate on.
    """
    values = np.abs(np.asarray(cnr_absent, np.float64))
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError("no lesion with a healthy ring to calibrate the presence threshold on")
    return float(np.quantile(values, 1 - false_present_rate))


def cross_fitted_thresholds(
    cnr_absent: np.ndarray, patients: np.ndarray, false_present_rate: float, folds: int = 2
) -> np.ndarray:
    """(L,) per lesion, the threshold :func:`calibrate_threshold` gives on the lesions of the *other* folds' patients
    (patients assigned to folds in turn, by sorted ID): no lesion is judged by a threshold that saw it. NaN where
    the other folds have no finite CNR."""
    patients = np.asarray(patients)
    ids = {p: i % folds for i, p in enumerate(np.unique(patients))}
    fold = np.array([ids[p] for p in patients], np.int64)
    out = np.full(len(patients), np.nan)
    for k in range(folds):
        try:
            out[fold == k] = calibrate_threshold(np.asarray(cnr_absent)[fold != k], false_present_rate)
        except ValueError:
            continue
    return out


def lesion_outcomes(
    cnr_pred: np.ndarray, cnr_real: np.ndarray, threshold: float | np.ndarray, real_threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(judgeable, outcome) per lesion.

    Args:
        threshold: |CNR| above which the translation shows a lesion (one value, or one per lesion).
        real_threshold: the same for the real target (default ``threshold``).

    Returns:
        judgeable: (L,) bool, the real target shows the lesion (|CNR real| > real_threshold).
        outcome: (L,) one of :data:`OUTCOMES` for the translation ('' where its CNR is undefined).
    """
    pred, real = np.asarray(cnr_pred, np.float64), np.asarray(cnr_real, np.float64)
    judgeable = np.abs(real) > (threshold if real_threshold is None else real_threshold)
    with np.errstate(invalid="ignore"):
        present = np.abs(pred) > threshold
        same = np.sign(pred) == np.sign(real)
    outcome = np.where(present, np.where(same, "present_same", "present_opposite"), "erased")
    return judgeable, np.where(np.isnan(pred) | np.isnan(real), "", outcome)


def shown_in_source(cnr_source: np.ndarray, source_threshold: float, threshold: float) -> np.ndarray:
    """(L,) bool: the source slice shows the lesion, either polarity: |CNR source| above the source's own
    threshold and above the target's ``threshold`` that judges translations (so a translation that copied the
    source would be judged present: copy-source is never "erased" among keepable lesions)."""
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(cnr_source, np.float64)) > max(source_threshold, threshold)


def lesion_strata(judgeable: np.ndarray, in_source: np.ndarray) -> np.ndarray:
    """(L,) ``keepable`` (source and target show the lesion), ``not_in_source`` (only the target) or
    ``not_judgeable`` (the target does not show it)."""
    judgeable, in_source = np.asarray(judgeable, bool), np.asarray(in_source, bool)
    return np.where(~judgeable, "not_judgeable", np.where(in_source, "keepable", "not_in_source"))
