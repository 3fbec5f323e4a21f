"""An output is reused only when it is what the command would write now (issue 32): provenance, one output per
source, the segmenter's names whatever the extension, malformed derivative descriptions and locks."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
from pathlib import Path

import pytest

from mrtrans.errors import MrtransError
from mrtrans.io import sha256_file

from helpers import make_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "last.pt")


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    import torch

    from mrtrans.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(make_checkpoint(tmp_path_factory.mktemp("other") / "a.pt"))
    for state in ckpt["models"].values():
        for tensor in state.values():
            if tensor.is_floating_point():
                tensor.add_(torch.full_like(tensor, 0.01))
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("other_saved") / "last.pt")


def _translate(source, out, model, **kw):
    from mrtrans.api import translate_files

    return translate_files(source, out, model, device="cpu", **kw)


def test_an_output_is_kept_only_while_its_source_model_and_direction_are_the_same(
    synth_root: Path, model: Path, other_model: Path, tmp_path: Path
) -> None:
    flairs = sorted(synth_root.glob("*/*_flair.nii.gz"))
    source = shutil.copy(flairs[0], tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    assert _translate(source, out, model).written == [out / "scan.nii.gz"]
    assert _translate(source, out, model).kept == [out / "scan.nii.gz"]  # the same source, model and direction

    report = _translate(source, out, model, direction="t12flair")  # the other direction into the same folder
    assert report.replaced and "other direction (flair2t1, now t12flair)" in report.replaced[0][1]
    assert json.loads((out / "scan.json").read_text())["Direction"] == "t12flair"

    shutil.copy(flairs[1], source)  # the source file replaced by another scan
    report = _translate(source, out, model, direction="t12flair")
    assert report.replaced and report.replaced[0][1].startswith("source changed since it was written")
    assert json.loads((out / "scan.json").read_text())["SourceSHA256"] == sha256_file(source)
    report = _translate(source, out, other_model, direction="t12flair")  # another model file
    assert report.replaced and "other model file" in report.replaced[0][1]
    (out / "scan.json").unlink()  # an output whose record is gone (an older version wrote no sidecar)
    report = _translate(source, out, other_model, direction="t12flair")
    assert report.replaced == [(out / "scan.nii.gz", "no record of what made it (no sidecar)")]


def test_the_cli_says_why_it_writes_an_output_again(synth_root: Path, model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mrtrans.cli import app

    source = shutil.copy(sorted(synth_root.glob("*/*_flair.nii.gz"))[0], tmp_path / "scan.nii.gz")
    args = ["translate", str(source), "--model", str(model), "--device", "cpu", "--out", str(tmp_path / "o")]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, [*args, "--direction", "t12flair"])
    assert again.exit_code == 0 and "again (other direction" in again.stdout


def _bids_root(synth_root: Path, root: Path, files: dict[str, int]) -> Path:
    flairs = sorted(synth_root.glob("*/*_flair.nii.gz"))
    for name, index in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(flairs[index], root / name)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "echoes", "BIDSVersion": "1.10.0"}))
    return root


def test_two_echoes_of_one_subject_get_two_derivatives(synth_root: Path, model: Path, tmp_path: Path) -> None:
    root = _bids_root(
        synth_root,
        tmp_path / "bids",
        {"sub-01/anat/sub-01_echo-1_FLAIR.nii.gz": 0, "sub-01/anat/sub-01_echo-2_FLAIR.nii.gz": 1},
    )
    report = _translate(root, None, model, bids_out=tmp_path / "deriv")
    assert not report.failed and not report.kept
    assert sorted(p.name for p in report.written) == [
        "sub-01_echo-1_desc-mrtransFlair2t1_T1w.nii.gz",
        "sub-01_echo-2_desc-mrtransFlair2t1_T1w.nii.gz",
    ]


def test_two_sources_that_would_share_an_output_are_refused_before_any_work(
    synth_root: Path, model: Path, tmp_path: Path
) -> None:
    root = _bids_root(synth_root, tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": 0})
    flair = sorted(synth_root.glob("*/*_flair.nii.gz"))[1]
    (root / "sub-01/anat/sub-01_FLAIR.nii").write_bytes(gzip.decompress(flair.read_bytes()))  # the same name, .nii
    deriv = tmp_path / "deriv"
    with pytest.raises(MrtransError) as err:
        _translate(root, None, model, bids_out=deriv)
    message = str(err.value)
    assert "sub-01_FLAIR.nii and" in message and "sub-01_FLAIR.nii.gz" in message and "\n" not in message
    assert not deriv.exists()  # refused before DERIV got anything


def test_naming_finds_the_real_sequence_whatever_its_extension(synth_root: Path, model: Path, tmp_path: Path) -> None:
    subject = sorted(p for p in synth_root.iterdir() if p.is_dir())[0]
    inputs = tmp_path / "in" / subject.name
    inputs.mkdir(parents=True)
    shutil.copy(subject / f"{subject.name}_flair.nii.gz", inputs)
    (inputs / f"{subject.name}_t1.nii").write_bytes(
        gzip.decompress((subject / f"{subject.name}_t1.nii.gz").read_bytes())
    )
    with pytest.raises(MrtransError, match="already has the t1 sequence"):
        _translate(tmp_path / "in", tmp_path / "out", model, naming="brats")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "description",
    [
        {"Name": "x", "GeneratedBy": {"Name": "fmriprep"}},  # a dict, not a list
        {"Name": "x", "GeneratedBy": "fmriprep"},  # a string
        [{"Name": "mrtrans"}],  # not an object at all
        {"Name": "x"},  # no GeneratedBy
    ],
)
def test_a_malformed_derivative_description_is_one_line_and_leaves_nothing(
    description, synth_root: Path, model: Path, tmp_path: Path
) -> None:
    root = _bids_root(synth_root, tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": 0})
    deriv = tmp_path / "deriv"
    deriv.mkdir()
    (deriv / "dataset_description.json").write_text(json.dumps(description))
    with pytest.raises(MrtransError) as err:
        _translate(root, None, model, bids_out=deriv)
    assert "another pipeline's dataset" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in deriv.rglob("*")) == ["dataset_description.json"]  # no folder left behind


def test_a_derivative_description_with_generated_by_as_one_object_of_mrtrans_is_ours(
    synth_root: Path, model: Path, tmp_path: Path
) -> None:
    root = _bids_root(synth_root, tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": 0})
    deriv = tmp_path / "deriv"
    deriv.mkdir()
    (deriv / "dataset_description.json").write_text(json.dumps({"Name": "x", "GeneratedBy": {"Name": "mrtrans"}}))
    assert len(_translate(root, None, model, bids_out=deriv).written) == 1


@pytest.mark.parametrize("pid", [1099511627776, 0, -1, True])
def test_a_lock_holding_an_impossible_pid_is_taken_over(pid, synth_root: Path, model: Path, tmp_path: Path) -> None:
    source = shutil.copy(sorted(synth_root.glob("*/*_flair.nii.gz"))[0], tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".scan.nii.gz.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    report = _translate(source, out, model)
    assert report.written == [out / "scan.nii.gz"] and not (out / ".scan.nii.gz.lock").exists()
