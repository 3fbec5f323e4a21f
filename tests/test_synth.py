import hashlib

import nibabel as nib
import numpy as np
import pytest

from mrtrans.config import SynthConfig
from mrtrans.domain import Modality
from mrtrans.synth import synth_subject, write_synthetic_brats

from helpers import SMALL_SHAPE


def _digest(root):
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.nii.gz")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(np.asanyarray(nib.load(f).dataobj).tobytes())
    return h.hexdigest()


def test_layout_dtypes_and_affine(synth_root):
    subjects = sorted(p.name for p in synth_root.iterdir() if p.is_dir())
    assert len(subjects) == 8
    for sid in subjects:
        names = sorted(p.name for p in (synth_root / sid).iterdir())
        assert names == sorted(f"{sid}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2", "seg"))
        for m in ("flair", "t1", "t1ce", "t2"):
            img = nib.load(synth_root / sid / f"{sid}_{m}.nii.gz")
            assert img.shape == SMALL_SHAPE
            assert img.get_data_dtype() == np.int16
            assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
            assert np.allclose(np.abs(np.diag(img.affine)[:3]), 1.0)
            assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        seg = nib.load(synth_root / sid / f"{sid}_seg.nii.gz")
        assert seg.get_data_dtype() == np.uint8


def test_labels_are_brats_labels_and_some_subjects_are_healthy(synth_root):
    tumor = 0
    for seg_path in synth_root.glob("*/*_seg.nii.gz"):
        labels = set(np.unique(np.asanyarray(nib.load(seg_path).dataobj)).tolist())
        assert labels <= {0, 1, 2, 4}
        if labels != {0}:
            assert labels == {0, 1, 2, 4}
            tumor += 1
    assert tumor == 6  # round(0.75 * 8)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = SynthConfig(subjects=2, shape=(32, 32, 16), seed=3)
    write_synthetic_brats(tmp_path / "a", cfg)
    write_synthetic_brats(tmp_path / "b", cfg)
    write_synthetic_brats(tmp_path / "c", SynthConfig(subjects=2, shape=(32, 32, 16), seed=4))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


@pytest.fixture(scope="module")
def tumor_subject():
    """A subject with its tissue map, rebuilt through the same seed (tumor forced on)."""
    images, seg = synth_subject(SMALL_SHAPE, seed=11, index=0, with_tumor=True)
    return images, seg


def _tissue_means(images, seg, modality):
    """Mean intensity per tissue, the tissue found from the T2/T1 contrast and the seg."""
    t1, t2 = images[Modality.t1].astype(float), images[Modality.t2].astype(float)
    brain = t1 > 0
    healthy = brain & (seg == 0)
    img = images[modality].astype(float)
    csf = healthy & (t2 > 1200 * 0.8)  # T2 is the CSF-bright sequence
    wm_thr = np.percentile(t1[healthy & ~csf], 75)
    wm = healthy & ~csf & (t1 >= wm_thr)
    gm_thr = np.percentile(t1[healthy & ~csf], 25)
    gm = healthy & ~csf & (t1 <= gm_thr)
    return {
        "csf": img[csf].mean(),
        "wm": img[wm].mean(),
        "gm": img[gm].mean(),
        "edema": img[seg == 2].mean(),
        "enhancing": img[seg == 4].mean(),
        "necrosis": img[seg == 1].mean(),
    }


def test_contrast_rules_follow_mri_physics(tumor_subject):
    images, seg = tumor_subject
    t1 = _tissue_means(images, seg, Modality.t1)
    flair = _tissue_means(images, seg, Modality.flair)
    t1ce = _tissue_means(images, seg, Modality.t1ce)
    t2 = _tissue_means(images, seg, Modality.t2)
    # T1: WM brighter than GM, CSF dark, tumor hypointense.
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t1["enhancing"] < t1["wm"] and t1["necrosis"] < t1["wm"]
    # FLAIR: CSF dark (suppressed), edema bright.
    assert flair["csf"] < flair["wm"] and flair["csf"] < flair["gm"]
    assert flair["edema"] > flair["wm"] and flair["edema"] > flair["gm"]
    # T1ce: enhancing rim brighter than anything else.
    assert t1ce["enhancing"] > max(t1ce["wm"], t1ce["gm"], t1ce["edema"], t1ce["necrosis"])
    # T2: CSF bright.
    assert t2["csf"] > t2["wm"]


def test_background_is_zero_and_noise_is_present(tumor_subject):
    images, seg = tumor_subject
    t1 = images[Modality.t1]
    brain = t1 > 0
    assert brain.mean() > 0.1  # a real brain, not a speck
    for image in images.values():
        assert not image[~brain].any()
    wm_like = t1[brain & (seg == 0)]
    assert wm_like.std() > 0  # noise and bias field, not flat tissue


def test_shape_varies_between_subjects():
    a, _ = synth_subject((48, 48, 32), seed=0, index=0, with_tumor=False)
    b, _ = synth_subject((48, 48, 32), seed=0, index=1, with_tumor=False)
    mask_a, mask_b = a[Modality.t1] > 0, b[Modality.t1] > 0
    assert (mask_a != mask_b).mean() > 0.005
