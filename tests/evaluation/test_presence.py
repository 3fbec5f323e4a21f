"""Per-lesion presence by conspicuity (mrtrans.evaluation.presence) on hand-made slices and the synthetic test set."""

import numpy as np
import pytest

from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.evaluation import audit, presence


def _slices(n=1, seed=0, size=48, lesion_value=-0.6, noise=0.05):
    """n slices: a brain disk of tissue 0 (+ noise) on background -1, an 8x8 lesion (the region) inside
    2 px of edema (another tumor label)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = np.broadcast_to((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2 - 3) ** 2, (n, size, size)).copy()
    images = np.where(brain, rng.normal(0, noise, (n, size, size)), -1.0)
    region = np.zeros((n, size, size), bool)
    region[:, 20:28, 20:28] = True
    any_tumor = np.zeros_like(region)
    any_tumor[:, 18:30, 18:30] = True
    images[region] = lesion_value + rng.normal(0, noise, region.sum())
    return images, region, any_tumor, brain


def _outcomes(pred, real, region, any_tumor, brain, threshold):
    rings = presence.lesion_rings(region, any_tumor, brain, min_pixels=4, ring_width=4)
    cnr = [presence.signed_cnr(x, rings, noise_floor=0.02) for x in (pred, real)]
    return presence.lesion_outcomes(cnr[0], cnr[1], threshold)


def test_the_ring_is_healthy_brain_just_outside_the_whole_tumor():
    _, region, any_tumor, brain = _slices()
    rings = presence.lesion_rings(region, any_tumor, brain, min_pixels=4, ring_width=4)
    assert len(rings) == 1 and rings.pixels[0] == 64
    ring = np.zeros(region[0].size, bool)
    ring[rings.ring[0]] = True
    ring = ring.reshape(region[0].shape)
    assert not (ring & any_tumor[0]).any() and (ring <= brain[0]).all()  # outside the edema, inside the brain
    assert ring[16, 24] and ring[14, 24] and not ring[12, 24]  # from the first healthy row (17) out to 4 px beyond it


def test_kept_inverted_erased_and_invisible_lesions_get_their_outcomes():
    real, region, any_tumor, brain = _slices()
    inverted = real.copy()
    inverted[region] = -inverted[region]  # the same lesion, bright instead of dark
    erased = real.copy()
    erased[region] = np.random.default_rng(1).normal(0, 0.05, region.sum())  # tissue where the lesion was
    threshold = 2.0
    assert _outcomes(real, real, region, any_tumor, brain, threshold)[1][0] == "present_same"
    judgeable, outcome = _outcomes(inverted, real, region, any_tumor, brain, threshold)
    assert judgeable[0] and outcome[0] == "present_opposite"
    assert _outcomes(erased, real, region, any_tumor, brain, threshold)[1][0] == "erased"
    invisible, *_ = _slices(lesion_value=0.0)  # the real target does not show this lesion
    judgeable, _ = _outcomes(inverted, invisible, region, any_tumor, brain, threshold)
    assert not judgeable[0]  # not judgeable: never counted as erased


def test_erasing_a_tumor_scores_worse_than_keeping_it_with_the_wrong_contrast():
    """The retired contrast ratio rewarded erasure (ratio ~1 is closer to T1's 0.6 than FLAIR's 1.3); the
    outcome does not: an erased lesion is erased, a kept one is present, whatever its polarity."""
    real, region, any_tumor, brain = _slices(n=20, seed=3)
    bright = real.copy()
    bright[region] = 0.6
    flat = real.copy()
    flat[region] = 0.0
    kept = _outcomes(bright, real, region, any_tumor, brain, 2.0)[1]
    gone = _outcomes(flat, real, region, any_tumor, brain, 2.0)[1]
    assert (kept == "erased").mean() == 0 and (gone == "erased").mean() == 1


def test_the_calibrated_threshold_gives_its_false_present_rate_on_absent_lesions():
    real, region, any_tumor, brain = _slices(n=400, seed=5)
    absent = real.copy()
    absent[region] = np.random.default_rng(6).normal(0, 0.05, region.sum())  # lesions known to be absent
    rings = presence.lesion_rings(region, any_tumor, brain, min_pixels=4, ring_width=4)
    cnr = presence.signed_cnr(absent, rings, noise_floor=0.02)
    threshold = presence.calibrate_threshold(cnr[:200], 0.05)  # calibrated on half, checked on the other half
    rate = (np.abs(cnr[200:]) > threshold).mean()
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 200)
    with pytest.raises(ValueError, match="calibrate"):
        presence.calibrate_threshold(np.array([np.nan]), 0.05)


def test_copy_source_keeps_t1_cores_with_the_opposite_polarity(prepared):
    """FLAIR copied as the "T1": every tumor is still there, FLAIR-bright where T1 is dark."""
    data = PreparedSlices(prepared)
    seg, brain = np.asarray(data.test("seg")), np.asarray(data.test("brain"))
    flair, t1 = (np.asarray(data.test(m), np.float32) for m in ("flair", "t1"))
    core = audit.region_mask(seg, audit.region_labels("t1", "auto", data.meta.get("layouts")))
    rings = presence.lesion_rings(core, seg > 0, brain, min_pixels=5, ring_width=4)
    cnr = {
        name: presence.signed_cnr(x, rings, noise_floor=0.02)
        for name, x in (("real", t1), ("copy", flair), ("inpainted", audit.inpaint_tumors(t1, seg, brain)))
    }
    threshold = presence.calibrate_threshold(cnr["inpainted"], 0.05)
    judgeable, outcome = presence.lesion_outcomes(cnr["copy"], cnr["real"], threshold)
    assert judgeable.sum() >= 3
    assert (outcome[judgeable] == "present_opposite").mean() >= 0.9
    _, inpainted = presence.lesion_outcomes(cnr["inpainted"], cnr["real"], threshold)
    assert (inpainted != "erased").sum() <= max(
        1, 0.05 * len(rings)
    )  # the 95% quantile of a few lesions: one may stay above
