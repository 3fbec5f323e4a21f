import gzip
import os
import stat

import nibabel as nib
import numpy as np
import pytest

from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path, read_volume, write_nifti


def _oblique_image(dtype=np.int16, shape=(9, 11, 7)):
    rng = np.random.default_rng(0)
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.9, -1.1, 2.5])  # oblique, LPS-like flip, anisotropic
    affine[:3, 3] = [10.5, -20.25, 33.0]
    img = nib.Nifti1Image(rng.integers(1, 500, size=shape).astype(dtype), affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 2)
    img.header["descrip"] = b"original"
    img.header.set_xyzt_units("mm", "sec")
    return img


def test_geometry_round_trip_keeps_affine_codes_and_header(tmp_path):
    ref = _oblique_image()
    src = tmp_path / "in.nii.gz"
    nib.save(ref, src)
    data, img = read_volume(src)
    out = write_nifti(data * 0.5, tmp_path / "out.nii.gz", reference=img, dtype=np.float32, description="derived")
    back = nib.load(out)
    assert back.shape == ref.shape
    assert np.allclose(back.affine, ref.affine)
    assert np.allclose(back.get_qform(), ref.get_qform())
    assert np.allclose(back.get_sform(), ref.get_sform())
    assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 2
    assert back.header.get_xyzt_units() == ("mm", "sec")
    assert np.allclose(back.header.get_zooms(), ref.header.get_zooms())
    assert back.header["descrip"].tobytes().rstrip(b"\0") == b"derived"
    assert back.get_data_dtype() == np.float32
    assert np.allclose(back.get_fdata(), data * 0.5)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_until_success(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644  # mkstemp alone gives 0600


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not a nifti at all"), "cannot read"),
        (lambda p: nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 2), np.float32), np.eye(4)), p), "expected a 3D"),
        (lambda p: nib.save(nib.Nifti1Image(np.ones((4, 4), np.float32), np.eye(4)), p), "expected a 3D"),
        (lambda p: nib.save(nib.Nifti1Image(np.full((4, 4, 4), np.nan, np.float32), np.eye(4)), p), "NaN"),
        (lambda p: nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), p), "empty"),
    ],
)
def test_read_volume_rejects_bad_files_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(MrtransError, match=message) as info:
        read_volume(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_reported(tmp_path):
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4)), good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MrtransError, match="cannot read"):
        read_volume(bad)
    assert gzip.decompress(raw)  # the intact file is a valid gzip
