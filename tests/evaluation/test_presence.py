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


def _two_lesions(size=40, n=8, seed=0):
    """n hand-made slice pairs (target, source): lesion A shows in both sequences (bright in the target, dark in the
    source), lesion B only in the target (the source is plain tissue there); and the inpainted versions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = np.broadcast_to((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2 - 2) ** 2, (n, size, size))
    a = np.broadcast_to((yy - 12) ** 2 + (xx - 20) ** 2 <= 9, (n, size, size))
    b = np.broadcast_to((yy - 28) ** 2 + (xx - 20) ** 2 <= 9, (n, size, size))

    def tissue():
        return np.where(brain, rng.normal(0, 0.05, (n, size, size)), -1.0)

    target, source, inpainted_t, inpainted_s = tissue(), tissue(), tissue(), tissue()
    target[a | b] += 0.6
    source[a] -= 0.6
    return target, source, inpainted_t, inpainted_s, a, b, brain


def test_a_lesion_both_sequences_show_is_keepable_one_the_source_hides_is_reported_apart():
    target, source, inpainted_t, inpainted_s, a, b, brain = _two_lesions()
    tumor = a | b
    rings = presence.lesion_rings(tumor, tumor, brain, min_pixels=4, ring_width=3)
    assert len(rings) == 16  # A and B on each of 8 slices, A first (row-major labelling)

    def cnr(x):
        return presence.signed_cnr(x, rings, noise_floor=0.02)

    def strata(tgt, src, inp_t, inp_s):
        threshold = presence.calibrate_threshold(cnr(inp_t), 0.05)
        in_source = presence.shown_in_source(cnr(src), presence.calibrate_threshold(cnr(inp_s), 0.05), threshold)
        judgeable, _ = presence.lesion_outcomes(cnr(tgt), cnr(tgt), threshold)
        return presence.lesion_strata(judgeable, in_source), threshold

    stratum, threshold = strata(target, source, inpainted_t, inpainted_s)
    assert list(stratum[:2]) == ["keepable", "not_in_source"] and set(stratum[0::2]) == {"keepable"}
    erased_a = np.where(a, 0.0, target)  # a translation with lesion A gone (plain tissue level), B kept
    _, outcome = presence.lesion_outcomes(cnr(erased_a), cnr(target), threshold)
    assert set(outcome[0::2]) == {"erased"} and set(outcome[1::2]) == {"present_same"}  # A erased, B kept
    # copy-source keeps every keepable lesion (with the source's polarity) and "erases" only what the source hides
    _, copied = presence.lesion_outcomes(cnr(source), cnr(target), threshold)
    assert set(copied[stratum == "keepable"]) == {"present_opposite"}
    assert set(copied[stratum == "not_in_source"]) == {"erased"}
    # the other direction: the source (now the target) shows A only; B is not judgeable there
    reverse, threshold_r = strata(source, target, inpainted_s, inpainted_t)
    assert set(reverse[0::2]) == {"keepable"} and set(reverse[1::2]) == {"not_judgeable"}
    _, copied_r = presence.lesion_outcomes(cnr(target), cnr(source), threshold_r)
    assert "erased" not in set(copied_r[reverse == "keepable"])


def test_cross_fitted_thresholds_never_judge_a_lesion_by_a_threshold_that_saw_it():
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p4"])
    cnr = np.array([0.1, 0.2, 5.0, 0.3, 0.4, 9.0])  # p2 and p4 (the second fold) hold the large values
    held_out = presence.cross_fitted_thresholds(cnr, patients, 0.05, folds=2)
    first = presence.calibrate_threshold(cnr[[2, 5]], 0.05)  # p1 and p3 are judged by p2 and p4's lesions
    second = presence.calibrate_threshold(cnr[[0, 1, 3, 4]], 0.05)
    assert np.allclose(held_out, [first, first, second, first, first, second])
    assert np.isnan(presence.cross_fitted_thresholds(cnr[:2], patients[:2], 0.05)).all()  # one patient: no other fold
