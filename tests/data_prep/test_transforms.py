"""Scans as they come (issue 12): spacing, input conventions, DICOM, cohorts, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mrtrans.config import PrepareConfig
from mrtrans.data_prep.prepare import plan_spacing, prepare_brats
from mrtrans.data_prep.transforms import n4_correct, resample_brain

from helpers import SMALL_PREPARE, save_volume


@pytest.mark.parametrize(
    ("spacings", "wanted", "target", "resampled", "noted"),
    [
        ({"a": (1, 1, 1), "b": (1, 1, 1)}, None, (1, 1, 1), {}, False),
        ({"a": (1, 1, 1), "b": (1, 1, 1), "c": (0.5, 0.5, 2)}, None, (1, 1, 1), {"c": (1, 1, 1)}, True),
        ({"a": (1, 1, 1), "b": (1, 1, 3)}, (2.0,), (2, 2, None), {"a": (2, 2, -1), "b": (2, 2, -1)}, True),
        ({"a": (1, 1, 1), "b": (1, 1, 3)}, (1.0, 3.0), (1, 1, 3), {"a": (1, 1, 3)}, True),
        ({"a": (1.004, 1, 1)}, (1.0,), (1, 1, None), {}, False),  # within 1%: used as it is
    ],
)
def test_plan_spacing(spacings, wanted, target, resampled, noted) -> None:
    got_target, pixdim, notes = plan_spacing(spacings, wanted)
    assert got_target == target and pixdim == resampled and bool(notes) == noted


def test_prepare_resamples_to_spacing_and_records_it(synth_root: Path, tmp_path: Path) -> None:
    cfg = PrepareConfig(
        **{**SMALL_PREPARE, "image_size": 32, "min_tumor_pixels": 3, "train_slices": 8, "test_slices": 6},
        spacing=(2.0,),
    )
    summary = prepare_brats(synth_root, tmp_path / "p2", cfg)
    meta = json.loads((tmp_path / "p2" / "prepare.json").read_text())
    assert meta["normalization"]["spacing"] == [2.0, 2.0, None]
    assert len(meta["subjects"]["resampled"]) == len(meta["subjects"]["used"])
    assert np.load(tmp_path / "p2" / "train" / "flair.npy").shape[1:] == (32, 32)
    assert any("2 mm in-plane" in note for note in summary.notes)


def test_prepare_resamples_the_odd_subject_to_the_common_spacing(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    shutil.copytree(synth_root, root)
    odd = sorted(p for p in root.iterdir() if p.is_dir())[0]
    for path in odd.glob("*.nii.gz"):  # the same subject scanned at 0.5 mm in-plane
        img = nib.load(path)
        data = img.get_fdata(dtype=np.float32)
        if path.name.endswith("_seg.nii.gz"):
            from monai.data import MetaTensor
            from monai.transforms import Spacing

            new = Spacing(pixdim=(0.5, 0.5, 1.0), mode="nearest")(
                MetaTensor(torch.from_numpy(data[None]), affine=torch.from_numpy(img.affine))
            )
            save_volume(path, new[0].numpy(), new.affine.numpy())
        else:
            new, _, affine = resample_brain(data, data != 0, img.affine, pixdim=(0.5, 0.5, 1.0))
            save_volume(path, new, affine)
    summary = prepare_brats(root, tmp_path / "p", PrepareConfig(**SMALL_PREPARE))
    meta = json.loads((tmp_path / "p" / "prepare.json").read_text())
    assert meta["normalization"]["spacing"] == [1.0, 1.0, 1.0]
    assert any("2 different voxel sizes" in note for note in summary.notes)
    assert odd.name not in [s for s, _ in summary.skipped]
    if odd.name in meta["subjects"]["used"]:
        assert meta["subjects"]["resampled"] == [odd.name]


def test_n4_removes_a_smooth_bias_field() -> None:
    x, y, z = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 40), np.linspace(-1, 1, 24), indexing="ij")
    brain = x**2 + y**2 + z**2 < 0.8
    tissue = np.where(x > 0.1, 100.0, 60.0)  # two tissues
    biased = (tissue * np.exp(0.4 * (x + y))).astype(np.float32) * brain
    corrected = n4_correct(biased, brain.astype(np.uint8), (1.0, 1.0, 1.0), shrink=2)
    wm = brain & (x > 0.3)

    def cv(a: np.ndarray) -> float:
        return float(a[wm].std() / a[wm].mean())

    assert cv(corrected) < 0.5 * cv(biased) and not corrected[~brain].any()
