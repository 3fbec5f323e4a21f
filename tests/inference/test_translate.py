import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mrtrans.checkpoint import save_checkpoint
from mrtrans.cli import app
from mrtrans.domain import Modality
from mrtrans.errors import MrtransError
from mrtrans.inference.translate import expand_inputs, load_translator, translate_array, translate_files
from mrtrans.synth import synth_subject

from helpers import make_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("model") / "last.pt")


@pytest.fixture(scope="module")
def translator(ckpt):
    return load_translator(ckpt, device="cpu", batch_size=4)


def flair_volume(shape=(45, 57, 11), seed=0):
    images, _ = synth_subject(shape, seed=seed, index=0, with_tumor=True)
    return images[Modality.flair].astype(np.float32)


def save(path, data, affine, qcode=1, scode=1):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, qcode)
    img.set_sform(affine, scode)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)
    return path


def oblique(shape):
    a = np.deg2rad(20)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.0, 1.0, 1.2])
    aff[:3, 3] = [-20, 30, 5]
    return aff


LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "name, affine, shape",
    [
        ("ras", np.eye(4), (45, 57, 11)),
        ("lps", LPS, (45, 57, 11)),
        ("oblique", None, (47, 51, 9)),
        ("odd-cropped", np.eye(4), (81, 73, 5)),
    ],
)
def test_output_grid_equals_input_grid(tmp_path, translator, name, affine, shape):
    affine = oblique(shape) if affine is None else affine
    data = np.zeros(shape, np.float32)
    inner = flair_volume((45, 45, shape[2]))
    ox, oy = (shape[0] - 45) // 2, (shape[1] - 45) // 2
    data[ox : ox + 45, oy : oy + 45] = inner
    src = save(tmp_path / f"{name}.nii.gz", data, affine, scode=2)
    report = translate_files([src], tmp_path / "out.nii.gz", translator)
    assert report.failed == []
    out, ref = nib.load(tmp_path / "out.nii.gz"), nib.load(src)
    assert out.shape == ref.shape
    assert np.allclose(out.affine, ref.affine)
    assert np.allclose(out.get_qform(), ref.get_qform()) and np.allclose(out.get_sform(), ref.get_sform())
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 2)
    assert np.allclose(out.header.get_zooms(), ref.header.get_zooms())
    assert out.get_data_dtype() == np.float32
    assert out.header["descrip"].tobytes().startswith(b"mrtrans synthetic t1 (flair2t1 ")  # says it is synthetic
    side = json.loads((tmp_path / "out.json").read_text())
    assert side["Synthetic"] is True and side["SourceFile"] == str(src.resolve()) and side["Direction"] == "flair2t1"
    values = out.get_fdata()
    assert (values[data == 0] == 0).all()  # background stays zero
    assert values.min() >= 0 and values.max() <= 1 and values[data != 0].std() > 0


def test_orientation_is_undone_exactly(translator):
    ras = flair_volume()
    out_ras = translate_array(ras, np.eye(4), translator)
    lps = ras[::-1, ::-1, :].copy()  # the same anatomy stored in LPS voxel order
    out_lps = translate_array(lps, LPS, translator)
    np.testing.assert_allclose(out_lps, out_ras[::-1, ::-1, :], atol=1e-5)
    pir = np.transpose(ras, (1, 2, 0))[:, ::-1, :].copy()  # axes permuted: voxel (j, k', i)
    aff_pir = np.zeros((4, 4))
    aff_pir[0, 2] = aff_pir[1, 0] = 1.0
    aff_pir[2, 1] = -1.0
    aff_pir[2, 3] = ras.shape[2] - 1
    aff_pir[3, 3] = 1
    out_pir = translate_array(pir, aff_pir, translator)
    np.testing.assert_allclose(out_pir, np.transpose(out_ras, (1, 2, 0))[:, ::-1, :], atol=1e-5)


def test_brain_beyond_training_field_is_refused(translator):
    big = np.zeros((90, 90, 3), np.float32)
    big[5:85, 5:85] = 1.0  # an 80x80 brain with background around it, the model's field is 64x64
    with pytest.raises(MrtransError, match="beyond the 64x64"):
        translate_array(big, np.eye(4), translator)


def test_mask_limits_the_output(tmp_path, translator):
    data = flair_volume()
    src = save(tmp_path / "in.nii.gz", data, np.eye(4))
    mask = np.zeros(data.shape, np.uint8)
    mask[10:30, 10:30] = 1
    mpath = save(tmp_path / "mask.nii.gz", mask, np.eye(4))
    translate_files([src], tmp_path / "out.nii.gz", translator, mask=mpath)
    out = nib.load(tmp_path / "out.nii.gz").get_fdata()
    assert (out[mask == 0] == 0).all() and out[mask == 1].max() > 0
    bad = save(tmp_path / "badmask.nii.gz", mask[:-1], np.eye(4))
    report = translate_files([src], tmp_path / "out2.nii.gz", translator, mask=bad)
    assert "mask grid does not match" in report.failed[0][1]


def test_batch_with_bad_files_finishes_the_others(tmp_path, ckpt):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        save(inputs / f"good{i}.nii.gz", flair_volume(seed=i), np.eye(4))
    (inputs / "corrupt.nii.gz").write_bytes(b"\x1f\x8b broken")
    save(inputs / "fourd.nii.gz", np.ones((8, 8, 8, 2), np.float32), np.eye(4))
    save(inputs / "nan.nii.gz", np.full((8, 8, 8), np.nan, np.float32), np.eye(4))
    save(inputs / "empty.nii.gz", np.zeros((8, 8, 8), np.float32), np.eye(4))
    save(inputs / "flat.nii.gz", np.ones((8, 8), np.float32), np.eye(4))
    result = runner.invoke(
        app, ["translate", str(inputs), "--model", str(ckpt), "--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert result.exit_code == 2
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["good0.json", "good0.nii.gz", "good1.json", "good1.nii.gz"]  # nothing partial for the bad ones
    for name, reason in [
        ("corrupt", "cannot read"),
        ("fourd", "3D"),
        ("nan", "NaN"),
        ("empty", "empty"),
        ("flat", "3D"),
    ]:
        assert any(f"{name}.nii.gz" in line and reason in line for line in result.stderr.splitlines()), name
    assert "5 of 7 volumes failed" in result.stderr


def test_existing_outputs_are_kept_or_redone_and_foreign_files_never_replaced(tmp_path, ckpt):
    src = save(tmp_path / "in.nii.gz", flair_volume(), np.eye(4))
    args = ["translate", str(src), "--model", str(ckpt), "--device", "cpu", "--out"]
    out = tmp_path / "o.nii.gz"
    assert runner.invoke(app, args + [str(out)]).exit_code == 0
    stamp = out.stat().st_mtime_ns
    again = runner.invoke(app, args + [str(out)])
    assert again.exit_code == 0 and "kept" in again.stdout and out.stat().st_mtime_ns == stamp
    assert runner.invoke(app, args + [str(out), "--overwrite"]).exit_code == 0 and out.stat().st_mtime_ns != stamp
    same = runner.invoke(app, args + [str(src), "--overwrite"])
    assert same.exit_code == 2 and "is an input of this command" in same.stderr
    foreign = save(tmp_path / "mine.nii.gz", np.ones((4, 4, 4), np.float32), np.eye(4))
    before = foreign.read_bytes()
    refused = runner.invoke(app, args + [str(foreign), "--overwrite"])
    assert refused.exit_code == 2 and "not written by `mrtrans translate`" in refused.stderr
    assert foreign.read_bytes() == before


def test_batch_rerun_after_interruption_keeps_finished_volumes(tmp_path, ckpt, translator):
    inputs = [save(tmp_path / f"s{i}_flair.nii.gz", flair_volume(seed=i), np.eye(4)) for i in range(3)]
    calls = []

    def stop_after_first(n):
        calls.append(n)
        if len(calls) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        translate_files(inputs, tmp_path / "out", translator, progress=stop_after_first)
    result = runner.invoke(
        app,
        [
            "translate",
            str(tmp_path / "*_flair.nii.gz"),
            "--model",
            str(ckpt),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output
    assert "kept" in result.stdout and result.stdout.count("wrote") == 2
    names = [p.name for p in inputs] + [p.name.replace(".nii.gz", ".json") for p in inputs]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # volumes and their sidecars


def test_full_disk_fails_that_volume_and_the_batch_goes_on(tmp_path, translator, monkeypatch):
    import errno

    import mrtrans.inference.translate as module

    inputs = [save(tmp_path / f"s{i}_flair.nii.gz", flair_volume(seed=i), np.eye(4)) for i in range(2)]
    real_write = module.write_nifti

    def full_once(data, path, **kwargs):
        if path.name.startswith("s0"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(data, path, **kwargs)

    monkeypatch.setattr(module, "write_nifti", full_once)
    report = translate_files(inputs, tmp_path / "out", translator)
    assert [p.name for p in report.written] == ["s1_flair.nii.gz"]
    assert len(report.failed) == 1 and "s0_flair.nii.gz: No space left on device (disk full" in report.failed[0][1]


def test_direction_checks(tmp_path, ckpt, translator):
    reverse = load_translator(ckpt, "t12flair", device="cpu")
    assert reverse.direction.name == "t12flair" and translator.direction.name == "flair2t1"
    x = flair_volume()
    assert not np.allclose(translate_array(x, np.eye(4), reverse), translate_array(x, np.eye(4), translator))
    with pytest.raises(MrtransError, match="cannot do t22flair"):
        load_translator(ckpt, "t22flair", device="cpu")
    other = save_checkpoint({"kind": "segmenter", "models": {}}, tmp_path / "other.pt")
    with pytest.raises(MrtransError, match="not a translation model"):
        load_translator(other, device="cpu")


def test_glob_and_folder_inputs(tmp_path):
    for name in ("a_flair.nii.gz", "b_flair.nii.gz", "a_t1.nii.gz"):
        save(tmp_path / name, np.ones((4, 4, 4), np.float32), np.eye(4))
    assert [p.name for p in expand_inputs(str(tmp_path / "*_flair.nii.gz"))] == ["a_flair.nii.gz", "b_flair.nii.gz"]
    assert len(expand_inputs(tmp_path)) == 3
    with pytest.raises(MrtransError, match="no input found"):
        expand_inputs(tmp_path / "nothing*.nii.gz")


@pytest.mark.slow
def test_real_sample_subjects_translate(real_sample, tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt", image_size=256)
    translator = load_translator(ckpt, device="cpu", batch_size=32)
    flairs = sorted(real_sample.glob("*/*_flair.nii.gz"))[:2]
    report = translate_files(flairs, tmp_path / "out", translator)
    assert report.failed == []
    for src, dst in zip(flairs, report.written):
        a, b = nib.load(src), nib.load(dst)
        assert a.shape == b.shape == (240, 240, 155)
        assert np.allclose(a.affine, b.affine)  # the sample is LPS: kept as is
        data = np.asanyarray(a.dataobj)
        assert (b.get_fdata()[data == 0] == 0).all()


def test_the_brain_stays_above_the_background_value(tmp_path, translator):
    """The generator's -1 maps to 0; inside the brain the translation is kept at BRAIN_FLOOR or more, so a tool that
    finds the brain by > 0 finds all of it, and the background stays exactly 0."""
    from mrtrans.inference.translate import BRAIN_FLOOR

    volume = flair_volume()
    out = translate_array(volume, np.eye(4), translator)
    brain = volume != 0
    assert out[brain].min() >= BRAIN_FLOOR and (out[~brain] == 0).all() and out.max() <= 1.0
    assert ((out > 0) == brain).all()
