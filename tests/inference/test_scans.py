"""Scans as they come (issue 12): spacing, input conventions, DICOM, cohorts, export."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrtrans.checkpoint import load_checkpoint, save_checkpoint
from mrtrans.cli import app
from mrtrans.data_prep.transforms import resample_brain
from mrtrans.errors import MrtransError
from mrtrans.inference.translate import cohort_part, load_translator, translate_array, translate_files

from helpers import save_volume, volume_of

runner = CliRunner()


@pytest.fixture(scope="module")
def translator(tiny_run: Path):
    return load_translator(tiny_run, device="cpu")


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_the_checkpoint_records_spacing_and_field(tiny_run: Path) -> None:
    norm = load_checkpoint(tiny_run)["normalization"]
    assert norm["spacing"] == [1.0, 1.0, 1.0] and norm["image_size"] == 64 and norm["bias_field"] is None


AGREEMENT = {(0.5, 0.5, 1.0): 0.005, (2.0, 2.0, 1.0): 0.08, (1.0, 1.0, 3.0): 0.02, (0.9, 0.9, 5.0): 0.05}


@pytest.mark.slow  # trains (make test-fast trains nothing)
@pytest.mark.parametrize("pixdim", list(AGREEMENT))
def test_translate_resamples_to_the_model_spacing_and_back(translator, synth_root: Path, pixdim) -> None:
    data, affine, _ = volume_of(synth_root)
    reference = translate_array(data, affine, translator)
    scan, brain, scan_affine = resample_brain(data, data != 0, affine, pixdim=pixdim)
    out = translate_array(scan, scan_affine, translator)
    assert out.shape == scan.shape and not out[~brain].any()
    expected, _, _ = resample_brain(reference, data != 0, affine, pixdim=pixdim)
    mae = float(np.abs(out - expected)[brain].mean())
    assert mae < AGREEMENT[pixdim], mae


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translate_without_resampling_machinery_at_the_model_spacing(translator, synth_root: Path, monkeypatch) -> None:
    import mrtrans.inference.translate as module

    data, affine, _ = volume_of(synth_root)
    monkeypatch.setattr(
        module, "resample_brain", lambda *a, **k: pytest.fail("resampled a 1 mm volume for a 1 mm model")
    )
    translate_array(data, affine, translator)


@pytest.mark.slow
def test_real_volumes_come_back_on_their_grid(real_sample: Path, tmp_path: Path) -> None:
    """A real 1 mm BraTS FLAIR at 0.5 mm, 2 mm and 1x1x3 mm: the translation lies on each input's grid and agrees
    with the translation of the original. Generator: the identity (so the numbers measure the geometry and the
    resampling, not an untrained network's noise)."""
    from helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "m.pt", image_size=256)
    payload = load_checkpoint(ckpt)
    payload["normalization"]["spacing"] = [1.0, 1.0, 1.0]
    save_checkpoint({k: v for k, v in payload.items() if not k.startswith("format")}, ckpt)
    identity = load_translator(ckpt, device="cpu")
    identity.generator = torch.nn.Identity()
    data, affine, _ = volume_of(real_sample)
    reference = translate_array(data, affine, identity)
    for pixdim, bound in {(0.5, 0.5, 1.0): 0.005, (2.0, 2.0, 1.0): 0.03, (1.0, 1.0, 3.0): 0.01}.items():
        scan, brain, scan_affine = resample_brain(data, data != 0, affine, pixdim=pixdim)
        path = save_volume(tmp_path / f"scan_{pixdim[0]}_{pixdim[2]}.nii.gz", scan, scan_affine)
        out_path = tmp_path / f"out_{path.name}"
        assert translate_files([path], out_path, identity).written == [out_path]
        out_img = nib.load(out_path)
        assert out_img.shape == scan.shape and np.allclose(out_img.affine, scan_affine)
        expected, _, _ = resample_brain(reference, data != 0, affine, pixdim=pixdim)
        mae = float(np.abs(out_img.get_fdata() - expected)[brain].mean())
        assert mae < bound, (pixdim, mae)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translate_repeats_the_recorded_n4(translator, synth_root: Path, monkeypatch) -> None:
    import mrtrans.inference.translate as module

    calls = []
    monkeypatch.setattr(module, "n4_correct", lambda v, m, s: calls.append(s) or v)
    data, affine, _ = volume_of(synth_root)
    translate_array(data, affine, translator)
    assert not calls
    monkeypatch.setattr(translator, "normalization", dataclasses.replace(translator.normalization, bias_field="n4"))
    translate_array(data, affine, translator)
    assert calls == [(1.0, 1.0, 1.0)]


def write_dicom_series(
    data: np.ndarray, affine: np.ndarray, folder: Path, series: str = "1.2.826.0.1.3680043.2.1125.1.42"
) -> Path:
    """Write (X, Y, Z) int16 data as a DICOM MR series with the affine's geometry (SimpleITK)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)).astype(np.int16))
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    from mrtrans.io import quiet_itk

    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1]))
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        for tag, value in {
            "0008|0060": "MR",
            "0020|000e": series,
            "0020|000d": series + ".1",
            "0008|0018": f"{series}.2.{k}",
            "0020|0037": orientation,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
        }.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        with quiet_itk():  # GDCM's writer leaves the process locale at "C" otherwise
            writer.Execute(piece)
    return folder


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translate_reads_a_dicom_series_with_its_geometry(translator, synth_root: Path, tmp_path: Path) -> None:
    data, affine, _ = volume_of(synth_root)
    data = np.round(data)  # DICOM stores integers (int16 here)
    tilted = affine.copy()
    tilted[:3, :3] = affine[:3, :3] @ np.diag([1.0, 1.0, 1.5])
    series = write_dicom_series(data, tilted, tmp_path / "series")
    nifti = save_volume(tmp_path / "same.nii.gz", data, tilted)
    report = translate_files([series], tmp_path / "out", translator)
    assert report.written == [tmp_path / "out" / "series.nii.gz"], report.failed
    out = nib.load(report.written[0])
    np.testing.assert_allclose(out.affine, tilted, atol=1e-4)
    expected = translate_array(nib.load(nifti).get_fdata(dtype=np.float32), tilted, translator)
    np.testing.assert_allclose(out.get_fdata(), expected, atol=1e-5)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_folder_with_two_series_is_refused(synth_root: Path, tmp_path: Path, translator) -> None:
    import locale

    encoding = locale.getpreferredencoding(False)

    data, affine, _ = volume_of(synth_root)
    both = tmp_path / "both"
    for name, uid in (("a", "1.2.826.0.1.3680043.2.1125.1.1"), ("b", "1.2.826.0.1.3680043.2.1125.1.2")):
        write_dicom_series(np.round(data)[:, :, :6], affine, tmp_path / name, series=uid)
        both.mkdir(exist_ok=True)
        for path in (tmp_path / name).iterdir():
            shutil.copy(path, both / f"{name}_{path.name}")
    report = translate_files([both], tmp_path / "o.nii.gz", translator)
    assert not report.written and "holds 2 DICOM series" in report.failed[0][1]
    assert locale.getpreferredencoding(False) == encoding  # GDCM left the process locale alone


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_dicom_series_with_a_missing_truncated_or_odd_slice_is_refused(
    synth_root: Path, tmp_path: Path, translator
) -> None:
    """ITK would average a gap into one spacing (47 slices at 1.02 mm instead of 48 at 1 mm): refused, named."""
    import SimpleITK as sitk

    data, affine, _ = volume_of(synth_root)
    cases = {}
    for name in ("missing", "truncated", "odd", "ok"):
        cases[name] = write_dicom_series(np.round(data)[:, :, :12], affine, tmp_path / name)
    (cases["missing"] / "slice005.dcm").unlink()
    cut = cases["truncated"] / "slice004.dcm"
    cut.write_bytes(cut.read_bytes()[:300])
    small = write_dicom_series(np.round(data)[:32, :32, :12], affine, tmp_path / "small")
    shutil.copy(small / "slice011.dcm", cases["odd"] / "slice011.dcm")  # a slice of another size, same series
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.dcm")}
    messages = {}
    for name, folder in cases.items():
        report = translate_files([folder], tmp_path / "out" / f"{name}.nii.gz", translator)
        messages[name] = report.failed[0][1] if report.failed else ""
    assert "not evenly spaced" in messages["missing"] and "slice004.dcm" in messages["missing"]
    assert "slice004.dcm" in messages["truncated"]
    assert "different sizes" in messages["odd"] or "slice011" in messages["odd"]
    assert messages["ok"] == "" and (tmp_path / "out" / "ok.nii.gz").is_file()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.dcm")} == before  # inputs untouched
    assert sitk is not None


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_cohort_parts_cover_every_file_once(parts: int) -> None:
    files = [Path(f"s{i:02d}.nii.gz") for i in range(5)]
    chosen = [cohort_part(files[::-1], parts, k) for k in range(parts)]
    flat = [f for part in chosen for f in part]
    assert sorted(flat) == sorted(files) and len(flat) == len(set(flat))
    with pytest.raises(MrtransError, match="--part-id"):
        cohort_part(files, parts, parts)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translate_part_of_a_cohort(tiny_run: Path, synth_root: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, path in enumerate(sorted(synth_root.glob("*/*_flair.nii.gz"))[:4]):
        shutil.copy(path, inputs / f"s{i}.nii.gz")
    run = str(tiny_run)
    for part in range(3):
        result = runner.invoke(
            app,
            [
                "translate",
                str(inputs),
                "--model",
                run,
                "--out",
                str(tmp_path / "o"),
                "--num-parts",
                "3",
                "--part-id",
                str(part),
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.suffix == ".gz") == [f"s{i}.nii.gz" for i in range(4)]


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_inputs_that_would_share_an_output_name_are_refused_before_any_work(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    flairs = sorted(synth_root.glob("*/*_flair.nii.gz"))[:2]
    for sub, path in zip("ab", flairs):
        (tmp_path / "c" / sub).mkdir(parents=True)
        shutil.copy(path, tmp_path / "c" / sub / "flair.nii.gz")
    before = {p: p.read_bytes() for p in (tmp_path / "c").rglob("*.nii.gz")}
    for extra in ([], ["--overwrite"], ["--num-parts", "2", "--part-id", "1"]):
        result = runner.invoke(
            app,
            [
                "translate",
                str(tmp_path / "c" / "*" / "flair.nii.gz"),
                "--model",
                str(tiny_run),
                "--out",
                str(tmp_path / "co"),
                "--device",
                "cpu",
                *extra,
            ],
        )
        assert result.exit_code == 2, result.output
        assert "c/a/flair.nii.gz and" in result.output and "c/b/flair.nii.gz" in result.output, result.output
        assert not (tmp_path / "co").exists()  # refused before any work
    assert {p: p.read_bytes() for p in (tmp_path / "c").rglob("*.nii.gz")} == before
    text_file = tmp_path / "notes.txt"
    text_file.write_text("keep")
    result = runner.invoke(
        app, ["translate", str(flairs[0]), "--model", str(tiny_run), "--out", str(text_file), "--device", "cpu"]
    )
    assert result.exit_code != 0 and "is a file" in result.output and "several inputs" not in result.output
    assert text_file.read_text() == "keep"


def _cohort(synth_root: Path, folder: Path, n: int = 4) -> Path:
    folder.mkdir()
    for i, path in enumerate(sorted(synth_root.glob("*/*_flair.nii.gz"))[:n]):
        shutil.copy(path, folder / f"s{i}.nii.gz")
    return folder


def _part_command(inputs: Path, run: Path, out: Path, part: int, parts: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mrtrans",
        "translate",
        str(inputs),
        "--model",
        str(run),
        "--out",
        str(out),
        "--num-parts",
        str(parts),
        "--part-id",
        str(part),
        "--device",
        "cpu",
    ]


@pytest.mark.slow
def test_the_job_array_recipe_runs_parts_at_once_into_one_folder(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    """docs/translate.md: `--num-parts N --part-id K` jobs into one --out, all at the same time."""
    inputs = _cohort(synth_root, tmp_path / "in")
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    jobs = [
        subprocess.Popen(
            _part_command(inputs, tiny_run, tmp_path / "o", k),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    written = sorted(p.name for p in (tmp_path / "o").iterdir())  # each volume and its sidecar, no lock left
    assert written == sorted([f"s{i}.nii.gz" for i in range(4)] + [f"s{i}.json" for i in range(4)])
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before


@pytest.mark.slow
def test_a_killed_part_is_resumed_and_a_claim_of_another_host_taken_over_when_old(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    import signal
    import socket
    import time

    inputs = _cohort(synth_root, tmp_path / "in", n=6)
    out = tmp_path / "o"
    job = subprocess.Popen(
        _part_command(inputs, tiny_run, out, 0, parts=1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(p.suffix == ".gz" for p in out.iterdir())):
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)  # killed mid-way: some files done, maybe a claim left behind
    job.wait()
    # A claim left by a job killed on another cluster node: refused while young, taken over once old.
    foreign = out / ".s5.nii.gz.lock"
    foreign.write_text(json.dumps({"pid": 12345, "host": socket.gethostname() + "-elsewhere"}))
    result = subprocess.run(
        _part_command(inputs, tiny_run, out, 0, parts=1), capture_output=True, text=True, timeout=300
    )
    assert (
        result.returncode != 0
        and "s5.nii.gz" in result.stdout + result.stderr
        and "elsewhere" in result.stdout + result.stderr
    )
    old = time.time() - 7200
    os.utime(foreign, (old, old))
    result = subprocess.run(
        _part_command(inputs, tiny_run, out, 0, parts=1), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"s{i}.nii.gz" for i in range(6)] + [f"s{i}.json" for i in range(6)]
    )
    for i in range(6):
        assert nib.load(out / f"s{i}.nii.gz").get_fdata().shape == nib.load(inputs / f"s{i}.nii.gz").shape


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_temporary_left_by_a_killed_writer_is_removed_and_nothing_else(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    inputs = _cohort(synth_root, tmp_path / "in", n=1)
    out = tmp_path / "o"
    out.mkdir()
    partial = out / ".s0.nii.gz.k1ll3d.tmp.nii.gz"  # atomic_path's name for a write cut short by SIGKILL
    partial.write_bytes(b"half a gzip")
    others = [out / ".s1.nii.gz.k1ll3d.tmp.nii.gz", out / ".s0.nii.gz.notes", out / "s0.tmp.nii.gz"]
    for path in others:  # another output's temporary, and files mrtrans did not name: kept
        path.write_bytes(b"keep")
    report = translate_files([inputs / "s0.nii.gz"], out, load_translator(tiny_run, device="cpu"))
    assert report.written == [out / "s0.nii.gz"] and not partial.exists()
    assert all(path.read_bytes() == b"keep" for path in others)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_batch_size_follows_the_device(tiny_run: Path) -> None:
    assert load_translator(tiny_run, device="cpu").batch_size == 1
    assert load_translator(tiny_run, device="cpu", batch_size=8).batch_size == 8
