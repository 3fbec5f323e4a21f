"""BIDS in and out, and the names segmenters expect (issue 28)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mrtrans.errors import MrtransError

SUBJECT = "SynthBraTS_000"  # a subject of the suite's synthetic cohort


def _bids(synth_root: Path, root: Path) -> Path:
    """Two subjects, the second with a session: FLAIR and T1w each, dataset_description.json."""
    subjects = sorted(p for p in synth_root.iterdir() if p.is_dir())[:2]
    files = {
        "sub-01/anat/sub-01_FLAIR.nii.gz": subjects[0] / f"{subjects[0].name}_flair.nii.gz",
        "sub-01/anat/sub-01_T1w.nii.gz": subjects[0] / f"{subjects[0].name}_t1.nii.gz",
        "sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz": subjects[1] / f"{subjects[1].name}_flair.nii.gz",
    }
    for name, src in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / name)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.10.0"}))
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_bids_dataset_translates_into_a_derivative_dataset_checked_field_by_field(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import translate_files
    from mrtrans.checkpoint import resolve_checkpoint

    root = _bids(synth_root, tmp_path / "bids")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    deriv = tmp_path / "deriv"
    report = translate_files(root, None, tiny_run, bids_out=deriv, device="cpu")
    assert not report.failed and len(report.written) == 2
    written = sorted(p.relative_to(deriv).as_posix() for p in deriv.rglob("*") if p.is_file())
    assert written == [
        "README.md",  # the validator recommends one; it says what made the folder
        "dataset_description.json",
        "sub-01/anat/sub-01_desc-mrtransFlair2t1_T1w.json",
        "sub-01/anat/sub-01_desc-mrtransFlair2t1_T1w.nii.gz",
        "sub-02/ses-1/anat/sub-02_ses-1_desc-mrtransFlair2t1_T1w.json",
        "sub-02/ses-1/anat/sub-02_ses-1_desc-mrtransFlair2t1_T1w.nii.gz",
    ]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # the input is untouched

    description = json.loads((deriv / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"] == "1.10.0"
    assert description["Name"] == "mrtrans translations of tiny"
    assert description["GeneratedBy"][0]["Name"] == "mrtrans"
    assert description["DatasetLinks"]["raw"] == root.resolve().as_uri()  # what the bids:raw: URIs point into

    side = json.loads((deriv / "sub-02/ses-1/anat/sub-02_ses-1_desc-mrtransFlair2t1_T1w.json").read_text())
    source = root / "sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz"
    ckpt = resolve_checkpoint(tiny_run)
    assert side["Sources"] == ["bids:raw:sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz"]
    assert side["Synthetic"] is True and "Synthetic t1" in side["Description"]
    assert side["SourceFile"] == str(source.resolve()) and side["SourceSHA256"] == _sha(source)
    assert side["ModelCheckpoint"] == str(ckpt.resolve()) and side["ModelCheckpointSHA256"] == _sha(ckpt)
    assert side["ModelCheckpointChosen"] == "last.pt (step 2: last step)"
    assert side["Direction"] == "flair2t1" and side["ModelKind"] == "harmonicgan-histogram"
    assert side["Preprocessing"]["range"] == [-1.0, 1.0] and "lower_percentile" in side["Preprocessing"]
    assert side["MrtransVersion"] and side["GeneratedOn"]


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_the_derivative_files_follow_the_bids_schema(tiny_run: Path, synth_root: Path, tmp_path: Path) -> None:
    """No bids-validator runs here (the npm one predates derivative rules): the files are checked against the
    specification's own schema (bidsschematools): entities, their order, suffix, extension, required metadata."""
    from bids.layout import parse_file_entities
    from bidsschematools import schema as bids_schema

    from mrtrans.api import translate_files

    schema = bids_schema.load_schema()
    rule = schema["rules"]["files"]["deriv"]["imaging"]["anat_nonparametric_volumetric"]
    order = list(schema["rules"]["entities"])
    short = {name: schema["objects"]["entities"][name]["name"] for name in order}
    deriv = tmp_path / "deriv"
    translate_files(_bids(synth_root, tmp_path / "bids"), None, tiny_run, bids_out=deriv, device="cpu")
    images = [p for p in deriv.rglob("sub-*") if p.is_file()]
    assert images
    for path in images:
        entities = parse_file_entities(str(path))
        assert entities["datatype"] in rule["datatypes"] and entities["suffix"] in rule["suffixes"]
        assert entities["extension"] in rule["extensions"]
        named = [e for e in order if short[e] + "-" in path.name]
        assert set(named) <= set(rule["entities"]), named  # only entities the rule allows
        positions = [path.name.index(short[e] + "-") for e in named]
        assert positions == sorted(positions), path.name  # in the specification's order
    description = json.loads((deriv / "dataset_description.json").read_text())
    fields = schema["rules"]["json"]["dataset"]
    required = [k for k, v in fields["dataset_description"]["fields"].items() if v == "required"]
    required += [k for k, v in fields["derivative_description"]["fields"].items() if v == "required"]
    assert required and all(description.get(k) for k in required), required


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_bids_out_inside_the_dataset_or_over_another_pipeline_is_refused(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import translate_files

    root = _bids(synth_root, tmp_path / "bids")
    with pytest.raises(MrtransError, match="inside the input"):
        translate_files(root, None, tiny_run, bids_out=root / "derivatives" / "mrtrans", device="cpu")
    assert not (root / "derivatives").exists()
    other = tmp_path / "fmriprep"
    other.mkdir()
    (other / "dataset_description.json").write_text(json.dumps({"Name": "x", "GeneratedBy": [{"Name": "fmriprep"}]}))
    with pytest.raises(MrtransError, match="another pipeline's dataset"):
        translate_files(root, None, tiny_run, bids_out=other, device="cpu")
    assert sorted(p.name for p in other.iterdir()) == ["dataset_description.json"]


@pytest.mark.slow  # trains (make test-fast trains nothing)
@pytest.mark.parametrize("naming", ["brats", "nnunet"])
def test_naming_writes_the_segmenter_s_names_into_a_separate_tree(
    naming: str, tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    """Subjects lacking T1 get a synthesized one under the name their segmenter reads; nothing in the input."""
    from mrtrans.api import translate_files

    inputs = tmp_path / "in"
    for folder in sorted(p for p in synth_root.iterdir() if p.is_dir())[:2]:  # FLAIR only: T1 is missing
        if naming == "brats":
            (inputs / folder.name).mkdir(parents=True)
            shutil.copy(folder / f"{folder.name}_flair.nii.gz", inputs / folder.name)
        else:
            inputs.mkdir(exist_ok=True)
            shutil.copy(folder / f"{folder.name}_flair.nii.gz", inputs / f"{folder.name}_0000.nii.gz")
    before = {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()}
    report = translate_files(inputs, tmp_path / "out", tiny_run, naming=naming, device="cpu")
    assert not report.failed and len(report.written) == 2
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in report.written)
    first, second = sorted(p.name for p in synth_root.iterdir() if p.is_dir())[:2]
    if naming == "brats":
        assert names == [f"{first}/{first}_t1.nii.gz", f"{second}/{second}_t1.nii.gz"]
    else:
        assert names == [f"{first}_0001.nii.gz", f"{second}_0001.nii.gz"]
    assert {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()} == before  # the input tree is untouched


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_naming_refuses_a_name_a_real_sequence_has_and_an_output_inside_the_input(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import translate_files

    inputs = tmp_path / "in"
    subject = sorted(p for p in synth_root.iterdir() if p.is_dir())[0]
    inputs.mkdir()
    shutil.copy(subject / f"{subject.name}_flair.nii.gz", inputs / f"{subject.name}_0000.nii.gz")
    shutil.copy(subject / f"{subject.name}_t1.nii.gz", inputs / f"{subject.name}_0001.nii.gz")  # T1 is there
    with pytest.raises(MrtransError, match="already has the t1 sequence"):
        translate_files(inputs, tmp_path / "out", tiny_run, naming="nnunet", device="cpu")
    assert not (tmp_path / "out").exists()
    with pytest.raises(MrtransError, match="inside the input"):
        translate_files(inputs, inputs / "synth", tiny_run, naming="nnunet", device="cpu")
    with pytest.raises(MrtransError, match="naming.*'freesurfer' is not one of"):
        translate_files(inputs, tmp_path / "out", tiny_run, naming="freesurfer", device="cpu")


@pytest.mark.slow  # runs the official validator (a subprocess)
def test_the_official_bids_validator_accepts_a_derivative_with_sessions_and_runs(
    synth_root: Path, tmp_path: Path
) -> None:
    """bids-validator-deno (the BIDS project's validator, installed with the dev extra) on what --bids-out writes:
    errors fail the test; its warnings are listed in docs/translate.md."""
    import importlib.util
    import shutil as sh
    import subprocess
    import sys

    from mrtrans.api import translate_files

    from helpers import make_checkpoint

    # part of the dev extra the suite installs: missing, the derivative would go unchecked, so the test fails
    assert importlib.util.find_spec("bids_validator_deno"), "bids-validator-deno is missing: pip install 'mrtrans[dev]'"
    validator = [sys.executable, "-c", "from bids_validator_deno import cli; cli()"]  # its console script, run here
    subjects = sorted(p for p in synth_root.iterdir() if p.is_dir())[:2]
    root = tmp_path / "raw"
    files = {
        "sub-01/ses-1/anat/sub-01_ses-1_run-1_FLAIR.nii.gz": subjects[0],
        "sub-01/ses-1/anat/sub-01_ses-1_run-2_FLAIR.nii.gz": subjects[1],
        "sub-02/anat/sub-02_FLAIR.nii.gz": subjects[1],
    }
    for name, subject in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sh.copy(subject / f"{subject.name}_flair.nii.gz", root / name)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "raw", "BIDSVersion": "1.10.0"}))
    deriv = tmp_path / "deriv"
    report = translate_files(root, None, make_checkpoint(tmp_path / "last.pt"), bids_out=deriv, device="cpu")
    assert len(report.written) == 3 and not report.failed
    result = subprocess.run([*validator, str(deriv), "--json"], capture_output=True, text=True, timeout=600)
    issues = json.loads(result.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert not errors and result.returncode == 0, errors
    warnings = {i["code"] for i in issues if i["severity"] == "warning"}
    assert warnings <= {"TOO_FEW_AUTHORS"}, warnings  # the one warning docs/translate.md explains
