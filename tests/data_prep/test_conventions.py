"""Scans as they come (issue 12): spacing, input conventions, DICOM, cohorts, export."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.config import PrepareConfig
from mrtrans.data_prep.conventions import border_share, convention_problem, extent_problem, rim_ratio
from mrtrans.data_prep.prepare import prepare_brats
from mrtrans.errors import MrtransError

from helpers import SMALL_PREPARE, save_volume, volume_of

runner = CliRunner()


def test_conventions_hold_on_synthetic_and_real_brains(synth_root: Path) -> None:
    for index in range(3):
        data, affine, path = volume_of(synth_root, index=index)
        assert convention_problem(data, None) is None, path


def with_ring(data: np.ndarray) -> np.ndarray:
    """A bright shell around the brain, as the scalp of a head that was not skull-stripped."""
    from scipy import ndimage

    brain = data != 0
    head = ndimage.binary_dilation(brain, iterations=4)
    out = data.copy()
    out[head & ~ndimage.binary_dilation(brain, iterations=1)] = 2.5 * float(np.percentile(data[brain], 99))
    return out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: np.where(d == 0, -1.0, d), "background is -1, not 0"),
        (lambda d: d + 0.01, "no zero background"),
        (with_ring, "as a scalp is"),
    ],
)
@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_broken_conventions_give_one_line_and_allow_unstripped_overrides(tiny_run, synth_root, tmp_path, make, message):
    data, affine, _ = volume_of(synth_root)
    src = save_volume(tmp_path / "scan.nii.gz", make(data), affine)
    result = runner.invoke(app, ["translate", str(src), "--model", str(tiny_run), "--out", str(tmp_path / "o.nii.gz")])
    assert result.exit_code == 2 and message in result.stderr and "--allow-unstripped" in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()
    if message == "as a scalp is":  # the user knows better: translated as given
        forced = runner.invoke(
            app,
            [
                "translate",
                str(src),
                "--model",
                str(tiny_run),
                "--out",
                str(tmp_path / "o.nii.gz"),
                "--allow-unstripped",
            ],
        )
        assert forced.exit_code == 0, forced.output


def test_head_touching_the_border_is_not_a_brain() -> None:
    head = np.zeros((40, 40, 10), bool)
    head[0:40, 5:35] = True  # fills the field from edge to edge
    assert border_share(head) > 0.2
    assert "field's edge" in convention_problem(head.astype(np.float32), None)


def test_rim_ratio_separates_a_ring_from_a_brain(synth_root: Path) -> None:
    data, _, _ = volume_of(synth_root)
    assert rim_ratio(data, data != 0) < 2.0 < rim_ratio(with_ring(data), with_ring(data) != 0)


def test_extent_mismatch() -> None:
    t1 = np.zeros((20, 20, 30), bool)
    t1[5:15, 5:15, 0:30] = True
    flair = t1.copy()
    flair[:, :, 20:] = False  # a third of the brain outside the FLAIR's field of view
    assert "flair lacks 33% of the brain that t1 shows" in extent_problem({"flair": flair, "t1": t1}, 0.1)
    assert extent_problem({"flair": t1, "t1": t1}, 0.1) is None


def test_prepare_skips_subjects_that_break_conventions(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    subjects = sorted(p for p in root.iterdir() if p.is_dir())
    minus, ringed, cut = subjects[:3]
    flair = next(minus.glob("*_flair.nii.gz"))
    data, affine = nib.load(flair).get_fdata(dtype=np.float32), nib.load(flair).affine
    save_volume(flair, np.where(data == 0, -1.0, data), affine)
    flair = next(ringed.glob("*_flair.nii.gz"))
    save_volume(flair, with_ring(nib.load(flair).get_fdata(dtype=np.float32)), nib.load(flair).affine)
    flair = next(cut.glob("*_flair.nii.gz"))
    data = nib.load(flair).get_fdata(dtype=np.float32)
    data[:, :, data.shape[2] // 2 :] = 0  # FLAIR's field of view misses the upper half of the brain
    save_volume(flair, data, nib.load(flair).affine)
    summary = prepare_brats(
        root, tmp_path / "p", PrepareConfig(**{**SMALL_PREPARE, "train_slices": 8, "test_slices": 6})
    )
    reasons = dict(summary.skipped)
    assert "background is -1" in reasons[minus.name]
    assert "as a scalp is" in reasons[ringed.name]
    assert "flair lacks" in reasons[cut.name] and "max_extent_mismatch" in reasons[cut.name]


def test_prepare_never_cuts_a_brain_silently(synth_root: Path, tmp_path: Path) -> None:
    cfg = PrepareConfig(**{**SMALL_PREPARE, "image_size": 32})  # the synthetic brains are ~50 voxels wide
    with pytest.raises(MrtransError, match="brain extends beyond the 32x32 field"):
        prepare_brats(synth_root, tmp_path / "p", cfg)
    assert not (tmp_path / "p").exists()
