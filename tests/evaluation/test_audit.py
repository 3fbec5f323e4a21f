import numpy as np
import pytest
import torch

from mrtrans.config import AuditConfig
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.evaluation import audit


@pytest.fixture(scope="module")
def detectors(prepared):
    """Detectors as evaluate trains them: FLAIR on the whole tumor, T1 on the tumor core."""
    data = PreparedSlices(prepared)
    cfg = AuditConfig(steps=400, batch_size=8, lr=3e-3)
    out = {}
    for modality in ("flair", "t1"):
        labels = audit.region_labels(modality, "auto", data.meta.get("layouts"))
        masks = audit.region_mask(data.train_seg(modality), labels).astype(np.uint8)
        tumor = np.asarray(data.train_seg(modality)) > 0
        out[modality] = (
            audit.train_detector(data.train(modality), masks, cfg, torch.device("cpu"), tumor=tumor),
            labels,
        )
    return out, data


def _lesion_audit(detector, images, seg):
    net, labels = detector
    detected = audit.detect(net, images, 0.5, torch.device("cpu"))
    return audit.audit_lesions(detected, audit.region_mask(seg, labels), seg > 0, 5)


@pytest.mark.slow
def test_additions_sanity_rows_come_out_near_100_percent(detectors):
    """The two-polarity detector finds a real tumor pasted into a healthy slice with the target's contrast and
    with the source's (a T1-dark tumor in FLAIR), and finds little on the healthy real slices (the floor).
    (The T1 tumor-core detector learns too little from these 16 training slices; the report's validity lines
    say "cannot decide" when its sanity rows fall short, test_instrument_validity_says_when_it_cannot_decide.)"""
    nets, data = detectors
    seg, brain = np.asarray(data.test("seg")).astype(np.uint8), np.asarray(data.test("brain"))
    healthy = ~(seg > 0).any(axis=(1, 2))
    donors = np.flatnonzero((seg > 0).any(axis=(1, 2)))
    for target, source in (("flair", "t1"),):
        images, other = (np.asarray(data.test(m), np.float32) for m in (target, source))
        real = _lesion_audit(nets[target], images, seg)
        assert (real["added_lesions"][healthy] > 0).mean() <= 0.25, target  # the floor
        for donor in (images, other):
            pasted, pasted_seg = audit.paste_tumors(images, seg, brain, healthy, donors, donor_images=donor)
            assert (pasted_seg[healthy] > 0).any(axis=(1, 2)).all() and not pasted_seg[~healthy].any()
            found = _lesion_audit(nets[target], pasted, seg)["added_lesions"][healthy] > 0
            assert found.mean() >= 0.8, (target, donor is images, found)


def test_pasted_tumors_carry_the_donor_contrast():
    target = np.full((2, 24, 24), -1.0, np.float32)
    target[:, 2:22, 2:22] = 0.5  # bright tissue (T1-like)
    donor = np.full((2, 24, 24), -1.0, np.float32)
    donor[:, 2:22, 2:22] = -0.4  # dark tissue (FLAIR-like) ...
    donor[1, 8:12, 8:12] = 0.4  # ... with a bright tumor, 0.8 above it
    seg = np.zeros((2, 24, 24), np.uint8)
    seg[1, 8:12, 8:12] = 2
    brain = target > -1
    pasted, labels = audit.paste_tumors(target, seg, brain, np.array([True, False]), np.array([1]), donor_images=donor)
    assert pasted[0, 9, 9] == pytest.approx(0.5 + 0.8) or pasted[0, 9, 9] == pytest.approx(1.0)  # clipped to the range
    assert labels[0, 9, 9] == 2 and pasted[0, 4, 4] == 0.5
    soft = donor.copy()
    soft[1, 8:12, 8:12] = -0.2  # a tumor 0.2 above its tissue keeps that contrast in the brighter slice
    assert audit.paste_tumors(target, seg, brain, np.array([True, False]), np.array([1]), donor_images=soft)[0][
        0, 9, 9
    ] == pytest.approx(0.7)


def test_lesion_inversion_swaps_the_tumor_polarity_in_its_own_context():
    x = np.full((1, 24, 24), -1.0, np.float32)
    x[0, 2:22, 2:22] = 0.2  # brain
    x[0, 10:14, 10:14] = 0.8  # a bright tumor ...
    tumor = np.zeros(x.shape, bool)
    tumor[0, 10:14, 10:14] = True
    inv = audit.invert_lesions(x, tumor)
    assert inv[0, 11, 11] == pytest.approx(2 * 0.2 - 0.8)  # ... becomes dark against the same tissue
    assert inv[0, 5, 5] == x[0, 5, 5] and (inv[x == -1] == -1).all()  # the rest and the background stay


def test_lesion_counting_on_hand_made_masks():
    ref = np.zeros((1, 32, 32), bool)
    det = np.zeros((1, 32, 32), bool)
    ref[0, 2:6, 2:6] = True  # found: detected in part
    det[0, 3:5, 3:7] = True
    det[0, 20:24, 20:24] = True  # added: nowhere near a tumor
    det[0, 26:30, 12:16] = True  # added
    det[0, 0, 31] = True  # one pixel: below the minimum lesion size
    r = audit.audit_lesions(det, ref, ref, min_pixels=4)
    assert r["detected_lesions"][0] == 3 and r["added_lesions"][0] == 2
    assert r["dice"][0] == pytest.approx(2 * 6 / ((8 + 16 + 16) + 16))  # 6 px overlap; the 1-px speck is not a lesion
    edema = ref.copy()
    edema[0, 19:25, 19:25] = True  # the "added" detection lies on edema: not an addition
    assert audit.audit_lesions(det, ref, edema, min_pixels=4)["added_lesions"][0] == 1
    labels, n = audit.lesions(det[0], 4)
    assert n == 3 and labels.max() == 3


def test_detector_regions_follow_the_sequence_and_the_seg_convention():
    assert audit.region_labels("flair", "auto", ["brats2018-2021"]) is None  # whole tumor
    assert audit.region_labels("t1", "auto", ["brats2018-2021"]) == (1, 4)
    assert audit.region_labels("t1", "auto", ["brats2023+"]) == (1, 3)
    assert audit.region_labels("t1ce", "auto", ["msd-task01"]) == (2, 3)
    assert audit.region_labels("t1", "whole", ["brats2023+"]) is None
    with pytest.raises(ValueError, match="ambiguous"):
        audit.region_labels("t1", "core", ["brats2018-2021", "brats2023+"])
    seg = np.array([[0, 1, 2, 4]])
    assert audit.region_mask(seg, (1, 4)).tolist() == [[False, True, False, True]]
