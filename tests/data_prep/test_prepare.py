import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.config import PrepareConfig
from mrtrans.data_prep import prepare as prepare_module
from mrtrans.data_prep.prepare import prepare_brats, split_patients
from mrtrans.errors import MrtransError

from helpers import SMALL_PREPARE, to_brats2023, to_msd


def _manifest(folder):
    return pd.read_csv(folder / "manifest.csv")


def test_split_patients_is_disjoint_and_seeded():
    ids = [f"p{i}" for i in range(20)]
    roles = split_patients(ids, 0.2, seed=1)
    assert sorted(roles) == sorted(ids)
    assert list(roles.values()).count("test") == 4
    assert list(roles.values()).count("train_a") == 8 and list(roles.values()).count("train_b") == 8
    assert split_patients(ids, 0.2, seed=1) == roles
    assert split_patients(ids, 0.2, seed=2) != roles
    with pytest.raises(MrtransError, match="at least 3"):
        split_patients(["a", "b"], 0.2, 0)


def test_validation_patients_come_from_the_training_patients_and_leave_the_test_ones_alone():
    ids = [f"p{i}" for i in range(20)]
    without, with_val = split_patients(ids, 0.2, seed=1), split_patients(ids, 0.2, seed=1, validation_fraction=0.1)
    assert [s for s, r in with_val.items() if r == "test"] == [s for s, r in without.items() if r == "test"]
    val = [s for s, r in with_val.items() if r == "val"]
    assert len(val) == 2 and all(without[s].startswith("train") for s in val)
    with pytest.raises(MrtransError, match="at least 4 usable subjects \\(test, validation"):
        split_patients(["a", "b", "c"], 0.2, 0, validation_fraction=0.1)


def test_no_patient_in_two_sets(prepared):
    m = _manifest(prepared)
    train_a = set(m[(m.split == "train") & (m.domain == "flair")].subject)
    train_b = set(m[(m.split == "train") & (m.domain == "t1")].subject)
    test = set(m[m.split == "test"].subject)
    assert train_a and train_b and test
    assert not train_a & train_b and not train_a & test and not train_b & test
    roles = json.loads((prepared / "prepare.json").read_text())["subjects"]["roles"]
    assert all(roles[s] == "train_a" for s in train_a) and all(roles[s] == "test" for s in test)


def test_exact_balance_and_array_shapes(prepared):
    m = _manifest(prepared)
    for (split, _domain), group in m.groupby(["split", "domain"]):
        n = SMALL_PREPARE["train_slices"] if split == "train" else SMALL_PREPARE["test_slices"]
        assert len(group) == n
        assert (group.label == "tumor").sum() == (group.label == "healthy").sum() == n // 2
        assert list(group.array_index) == list(range(n))
    for name in ("flair", "t1", "flair_seg", "t1_seg"):
        assert np.load(prepared / "train" / f"{name}.npy").shape == (16, 64, 64)
    for name in ("flair", "t1", "seg", "brain"):
        assert np.load(prepared / "test" / f"{name}.npy").shape == (12, 64, 64)
    x = np.load(prepared / "train" / "flair.npy")
    assert x.dtype == np.float16 and x.min() == -1.0 and x.max() <= 1.0


def test_label_rules_hold_in_the_arrays(prepared):
    m = _manifest(prepared)
    test = m[m.split == "test"].sort_values("array_index")
    seg = np.load(prepared / "test" / "seg.npy")
    brain = np.load(prepared / "test" / "brain.npy")
    tumor_px = (seg > 0).sum(axis=(1, 2))
    assert (tumor_px == test.tumor_pixels.to_numpy()).all()
    assert (brain.sum(axis=(1, 2)) == test.brain_pixels.to_numpy()).all()
    is_tumor = (test.label == "tumor").to_numpy()
    assert (tumor_px[is_tumor] >= SMALL_PREPARE["min_tumor_pixels"]).all()
    assert (tumor_px[~is_tumor] == 0).all()
    assert (brain.sum(axis=(1, 2))[~is_tumor] >= SMALL_PREPARE["min_brain_fraction"] * 64 * 64).all()
    flair = np.load(prepared / "test" / "flair.npy")
    assert (flair[brain == 0] == -1).all()  # background fixed at the low end


def test_paired_test_slices_are_the_same_slice_of_the_same_subject(prepared, synth_root):
    m = _manifest(prepared)
    test = m[m.split == "test"]
    seg = np.load(prepared / "test" / "seg.npy")
    flair = np.load(prepared / "test" / "flair.npy").astype(np.float32)
    t1 = np.load(prepared / "test" / "t1.npy").astype(np.float32)
    for _, row in test.iterrows():
        sid, z, i = row.subject, row.slice_index, row.array_index
        ref_seg = np.asanyarray(nib.load(synth_root / sid / f"{sid}_seg.nii.gz").dataobj)[:, :, z]
        assert (seg[i] == ref_seg).all()
        for arr, mod in ((flair, "flair"), (t1, "t1")):
            raw = np.asanyarray(nib.load(synth_root / sid / f"{sid}_{mod}.nii.gz").dataobj)[:, :, z].astype(float)
            inside = raw > 0
            assert np.corrcoef(raw[inside], arr[i][inside])[0, 1] > 0.98


def test_same_seed_same_dataset_other_seed_differs(synth_root, prepared, tmp_path):
    again = prepare_brats(synth_root, tmp_path / "a", PrepareConfig(**SMALL_PREPARE)).out
    for name in ("train/flair.npy", "train/t1.npy", "test/t1.npy", "manifest.csv"):
        assert (again / name).read_bytes() == (prepared / name).read_bytes()
    other = prepare_brats(synth_root, tmp_path / "b", PrepareConfig(**(SMALL_PREPARE | {"seed": 5}))).out
    assert (other / "manifest.csv").read_bytes() != (prepared / "manifest.csv").read_bytes()


@pytest.mark.parametrize("convert", [to_brats2023, to_msd], ids=["brats2023", "msd"])
def test_other_layouts_give_the_same_slices(synth_root, prepared, tmp_path, convert):
    root = convert(synth_root, tmp_path / "raw")
    out = prepare_brats(root, tmp_path / "out", PrepareConfig(**SMALL_PREPARE)).out
    for name in ("train/flair.npy", "train/t1.npy", "test/flair.npy", "test/t1.npy"):
        assert np.array_equal(np.load(out / name), np.load(prepared / name)), name
    assert np.array_equal(
        np.load(out / "test/seg.npy") > 0, np.load(prepared / "test/seg.npy") > 0
    )  # labels differ by layout


def _copy_subject(root, src_id, new_id):
    dst = root / new_id
    dst.mkdir()
    for f in (root / src_id).iterdir():
        shutil.copy(f, dst / f.name.replace(src_id, new_id))
    return dst


def _save_like(path, data, affine=None):
    ref = nib.load(path)
    nib.save(nib.Nifti1Image(data, ref.affine if affine is None else affine), path)


def test_each_bad_subject_is_skipped_with_its_reason(synth_root, tmp_path):
    root = shutil.copytree(synth_root, tmp_path / "raw")
    src = "SynthBraTS_001"
    names = (
        "BadCorrupt",
        "BadMissing",
        "Bad4D",
        "BadNaN",
        "BadEmpty",
        "BadGrid",
        "BadSegNeg",
        "BadSegFloat",
        "BadSegLabel",
        "Bad2D",
        "BadComplex",
    )
    bad = {name: _copy_subject(root, src, name) for name in names}
    f = bad["BadCorrupt"] / "BadCorrupt_flair.nii.gz"
    f.write_bytes(f.read_bytes()[:3000])
    (bad["BadMissing"] / "BadMissing_t1.nii.gz").unlink()
    p = bad["Bad4D"] / "Bad4D_t1.nii.gz"
    _save_like(p, np.stack([np.asanyarray(nib.load(p).dataobj)] * 2, axis=-1))
    p = bad["BadNaN"] / "BadNaN_flair.nii.gz"
    data = np.asanyarray(nib.load(p).dataobj).astype(np.float32)
    data[10, 10, 10] = np.nan
    _save_like(p, data)
    p = bad["BadEmpty"] / "BadEmpty_t1.nii.gz"
    _save_like(p, np.zeros(nib.load(p).shape, np.int16))
    p = bad["BadGrid"] / "BadGrid_seg.nii.gz"
    shifted = nib.load(p).affine.copy()
    shifted[0, 3] += 5.0
    _save_like(p, np.asanyarray(nib.load(p).dataobj), affine=shifted)

    seg = np.asanyarray(nib.load(root / src / f"{src}_seg.nii.gz").dataobj)
    _save_like(
        bad["BadSegNeg"] / "BadSegNeg_seg.nii.gz", np.where(seg > 0, seg.astype(np.int16), np.int16(-1))
    )  # background -1
    _save_like(bad["BadSegFloat"] / "BadSegFloat_seg.nii.gz", (seg > 0) * np.float32(0.5))  # labels 0.5
    _save_like(
        bad["BadSegLabel"] / "BadSegLabel_seg.nii.gz", np.where(seg == 4, 3, seg).astype(np.uint8)
    )  # 3: not BraTS 2018-21
    p = bad["Bad2D"] / "Bad2D_flair.nii.gz"
    _save_like(p, np.asanyarray(nib.load(p).dataobj)[:, :, 20])
    p = bad["BadComplex"] / "BadComplex_t1.nii.gz"
    _save_like(p, np.asanyarray(nib.load(p).dataobj).astype(np.complex64))
    before = {p: p.read_bytes() for p in root.rglob("*.nii.gz")}
    summary = prepare_brats(root, tmp_path / "out", PrepareConfig(**SMALL_PREPARE))
    assert {p: p.read_bytes() for p in root.rglob("*.nii.gz")} == before  # inputs byte for byte unchanged
    reasons = dict(summary.skipped)
    assert set(reasons) == set(bad)
    assert "BadCorrupt_flair" in reasons["BadCorrupt"]
    assert "missing modality t1" in reasons["BadMissing"]
    assert "3D" in reasons["Bad4D"]
    assert "NaN" in reasons["BadNaN"]
    assert "empty" in reasons["BadEmpty"]
    assert "grid" in reasons["BadGrid"] and "BadGrid_seg" in reasons["BadGrid"]
    assert "BadSegNeg_seg" in reasons["BadSegNeg"] and "labels -1" in reasons["BadSegNeg"]
    assert "not integer labels" in reasons["BadSegFloat"] and "0.5" in reasons["BadSegFloat"]
    assert "labels 3" in reasons["BadSegLabel"] and "0/1/2/4" in reasons["BadSegLabel"]
    assert "Bad2D_flair" in reasons["Bad2D"] and "3D" in reasons["Bad2D"]
    assert "BadComplex_t1" in reasons["BadComplex"] and "complex" in reasons["BadComplex"]
    meta = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert {d["subject"] for d in meta["subjects"]["skipped"]} == set(bad)
    # The good subjects are untouched: the same split and slices as without the bad ones.
    assert len(meta["subjects"]["used"]) == 8


def test_too_few_slices_fails_with_counts_and_writes_nothing(synth_root, tmp_path):
    with pytest.raises(
        MrtransError, match=r"too few eligible slices: .*asked 500 tumor \+ 500 healthy, only \d+ tumor"
    ):
        prepare_brats(synth_root, tmp_path / "out", PrepareConfig(**(SMALL_PREPARE | {"train_slices": 1000})))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_leaves_nothing(synth_root, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "select_slices", interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare_brats(synth_root, tmp_path / "out", PrepareConfig(**SMALL_PREPARE))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_prepare_brats(synth_root, tmp_path):
    runner = CliRunner()
    args = [
        "prepare-brats",
        str(synth_root),
        "--out",
        str(tmp_path / "out"),
        "--train-slices",
        "8",
        "--test-slices",
        "4",
        "--image-size",
        "64",
        "--min-tumor-pixels",
        "10",
        "--min-brain-fraction",
        "0.15",
        "--workers",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 1000
    assert "found 8 subjects" in result.output
    cfg = json.loads((tmp_path / "out" / "prepare.json").read_text())["config"]
    assert cfg["train_slices"] == 8 and cfg["image_size"] == 64
    empty = runner.invoke(app, ["prepare-brats", str(tmp_path / "out" / "train"), "--out", str(tmp_path / "x")])
    assert empty.exit_code == 2 and "no BraTS subjects found" in empty.stderr


@pytest.mark.slow
def test_real_brats_sample(real_sample, tmp_path):
    cfg = PrepareConfig(train_slices=40, test_slices=20, seed=0)
    summary = prepare_brats(real_sample, tmp_path / "out", cfg, workers=2)
    assert summary.skipped == []
    m = _manifest(tmp_path / "out")
    assert len(m) == 100
    assert not set(m[m.domain == "flair"].subject) & set(m[m.domain == "t1"].subject)
    flair = np.load(tmp_path / "out" / "test" / "flair.npy")
    assert flair.shape == (20, 256, 256) and flair.min() == -1.0


def test_skewed_training_domains_keep_the_balanced_test_set(synth_root, prepared, tmp_path):
    cfg = PrepareConfig(**{**SMALL_PREPARE, "target_tumor_fraction": 0.0, "source_tumor_fraction": 0.75})
    prepare_brats(synth_root, tmp_path / "skewed", cfg)
    skewed = pd.read_csv(tmp_path / "skewed" / "manifest.csv")
    train = skewed[skewed.split == "train"]
    assert (train[train.domain == "t1"].label == "healthy").all()  # the removal setting: no tumor in T1
    assert (train[train.domain == "flair"].label == "tumor").sum() == 12  # 0.75 of 16
    balanced = pd.read_csv(prepared / "manifest.csv")
    cols = ["subject", "slice_index", "label"]
    test_rows = [m[m.split == "test"][cols].reset_index(drop=True) for m in (skewed, balanced)]
    assert test_rows[0].equals(test_rows[1])
    for key in ("flair", "t1", "seg"):
        assert np.array_equal(
            np.load(tmp_path / "skewed" / "test" / f"{key}.npy"), np.load(prepared / "test" / f"{key}.npy")
        )


@pytest.mark.slow
def test_sigkill_leftovers_are_removed_by_the_next_run(synth_root, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    args = [
        sys.executable,
        "-m",
        "mrtrans",
        "prepare-brats",
        str(synth_root),
        "--out",
        str(tmp_path / "out"),
        "--train-slices",
        "16",
        "--test-slices",
        "12",
        "--image-size",
        "64",
        "--min-tumor-pixels",
        "10",
        "--min-brain-fraction",
        "0.15",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.tmp/_scratch/*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first subject's scratch file exists
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = list(tmp_path.glob(".out.*.tmp"))
    assert len(leftovers) == 1 and (tmp_path / ".out.lock").exists()  # what a killed run leaves
    prepare_brats(synth_root, tmp_path / "out", PrepareConfig(**SMALL_PREPARE))  # the dead process's lock is taken over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_no_usable_subject_is_one_line_with_workers_too(synth_root, tmp_path):
    """No subject has the target sequence: the refusal is one line and nothing is left behind, in this process and
    with workers."""
    root = tmp_path / "no_t1"
    shutil.copytree(synth_root, root)
    for path in root.rglob("*_t1.nii.gz"):
        path.unlink()
    for workers in (1, 2):
        with pytest.raises(MrtransError, match="0 usable subjects"):
            prepare_brats(root, tmp_path / f"out{workers}", PrepareConfig(**SMALL_PREPARE), workers=workers)
        assert not (tmp_path / f"out{workers}").exists()
