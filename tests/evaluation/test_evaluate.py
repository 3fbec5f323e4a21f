import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mrtrans.checkpoint import save_checkpoint
from mrtrans.cli import app
from mrtrans.config import AuditConfig, EvalConfig, Precision, SegmentationConfig
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.evaluation.evaluate import evaluate_runs, evaluate_volumes, score_slices

from helpers import make_checkpoint

runner = CliRunner()


def test_identity_and_copy_source_rows_have_their_known_values(prepared):
    data = PreparedSlices(prepared)
    slices = data.manifest().query("split == 'test'").sort_values("array_index")
    flair, t1, brain, seg = (np.asarray(data.test(k), np.float32) for k in ("flair", "t1", "brain", "seg"))
    d = Direction("flair", "t1")
    ident = score_slices("id", "id", d, flair, t1, t1, brain, seg, slices, (-1, 1)).per_slice
    assert np.allclose(ident["mae"], 0) and np.allclose(ident["ssim"], 1)
    copy = score_slices("copy-source", "copy-source", d, flair, flair, t1, brain, seg, slices, (-1, 1)).per_slice
    lead = copy[(copy.protocol == "brain_shared") & (copy.region == "brain")]
    b = brain.astype(bool)
    expected = [np.abs((flair[i] - t1[i]) / 2)[b[i]].mean() for i in range(len(t1))]
    assert np.allclose(lead["mae"], expected)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for name, kind in (("cyc", "cyclegan"), ("harm", "harmonicgan-histogram")):
        (folder / name / "checkpoints").mkdir(parents=True)
        make_checkpoint(folder / name / "checkpoints" / "last.pt", kind=kind)
    return folder


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_evaluate_writes_paper_layout_tables(prepared, runs, tmp_path):
    cfg = EvalConfig(audit=AuditConfig(steps=5), segmentation=SegmentationConfig(steps=5))
    out = evaluate_runs(
        [runs / "cyc", runs / "harm"],
        prepared,
        tmp_path / "report",
        cfg,
        cache_dir=tmp_path / "cache",
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "per_slice.csv",
        "per_subject.csv",
        "summary.csv",
        "report.md",
        "paper.tex",
        "brain.tex",
        "tumor_consistency.csv",
        "tumor_summary.csv",
        "paired.csv",
        "metrics.json",
        "figures",
    } <= names
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.protocol) == {"paper", "brain", "brain_shared"}
    assert set(summary.region) == {"whole", "brain", "tumor", "healthy"}
    assert set(summary.run) == {"copy-source", "cyc", "harm"} and set(summary["mode"]) == {"slices"}
    assert (summary[(summary.protocol == "paper") & (summary.region == "whole")].n_slices == 12).all()
    assert (summary.mae_ci_low <= summary.mae_mean + 1e-12).all() and (
        summary.mae_mean <= summary.mae_ci_high + 1e-12
    ).all()
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired.reference) == {"cyc"} and set(paired.run) == {
        "copy-source",
        "harm",
    }  # the CycleGAN run is the reference
    text = (out / "report.md").read_text()
    order = [
        text.index(h)
        for h in (
            "protocol brain_shared): intensity",
            "Tumor region",
            "Tumor presence",
            "Paired comparison",
            "The paper's protocol",
            "Numbers reported in the paper",
        )
    ]
    assert order == sorted(order)  # brain and tumor lead; the paper's numbers stand apart, last
    paper_part = text[text.index("Numbers reported in the paper") :]
    assert "| HarmonicGAN-histogram | 6.38" in paper_part and "cyc (cyclegan)" not in paper_part
    md = text.splitlines()
    assert any(line.startswith("| copy-source |") for line in md)
    header = next(line for line in md if line.startswith("| Method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["Method"] + [
        f"{d} {m}"
        for d in ("FLAIR → T1", "T1 → FLAIR")
        for m in ("MAE ↓", "MSE ↓", "PSNR ↑", "SSIM ↑", "MS-SSIM ↑", "Pearson r ↑")
    ]
    assert any(line.startswith("| cyc (cyclegan) |") for line in md)
    tex = (out / "paper.tex").read_text()
    assert r"\multicolumn{6}{c}{FLAIR $\rightarrow$ T1}" in tex and r"\multicolumn{6}{c}{T1 $\rightarrow$ FLAIR}" in tex
    assert {"ms_ssim_mean", "pearson_mean", "pearson_ci_low"} <= set(summary.columns) and {"ms_ssim", "pearson"} <= set(
        paired.metric
    )
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert set(per_slice.run) == {"copy-source", "cyc", "harm"} and set(per_slice.direction) == {"flair2t1", "t12flair"}
    tumor = pd.read_csv(out / "tumor_summary.csv")
    assert {"real", "sanity-inpainted", "sanity-pasted-target", "sanity-pasted-source", "copy-source"} <= set(tumor.run)
    assert {
        "keepable_erased_rate",
        "keepable_erased_rate_ci_low",
        "keepable_present_same_rate",
        "keepable_present_opposite_rate",
        "not_in_source_present_same_rate",
        "judgeable_erased_rate",
        "keepable_lesions",
        "judgeable_lesions",
        "not_in_source_lesions",
        "not_judgeable_lesions",
        "cnr_error_mean",
        "added_per_slice",
        "healthy_with_added_rate",
        "seg_found_rate",
        "seg_keepable_missed_rate",
        "seg_dice_mean",
        "seg_healthy_with_false_rate",
    } <= set(tumor.columns)
    # the old, misleading columns are gone (erased_rate was over lesions the source may not show)
    assert not {"removed_rate", "contrast_abs_error_mean", "erased_rate"} & set(tumor.columns)
    real = tumor[tumor.run == "real"]
    assert (real.judgeable_present_same_rate == 1).all() and (real.judgeable_erased_rate == 0).all()  # the ceiling
    copy = tumor[(tumor.run == "copy-source") & (tumor.keepable_lesions > 0)]
    assert len(copy) and (copy.keepable_erased_rate == 0).all()  # copy-source keeps every keepable lesion
    judged = tumor[tumor.judgeable_lesions.notna()]
    assert (judged.keepable_lesions + judged.not_in_source_lesions == judged.judgeable_lesions).all()
    per_patient = pd.read_csv(out / "tumor_per_subject.csv")
    cyc = tumor[(tumor.run == "cyc") & (tumor.direction == "flair2t1")].iloc[0]
    mine = per_patient[(per_patient.run == "cyc") & (per_patient.direction == "flair2t1")]
    assert mine.keepable_erased_lesions.sum() == cyc.keepable_erased_lesions
    assert mine.healthy_with_added.sum() == cyc.healthy_with_added
    lesions = pd.read_csv(out / "tumor_lesions.csv")
    assert len(lesions[(lesions.run == "cyc") & (lesions.direction == "flair2t1")]) == cyc.lesions
    assert "Tumor presence per reference lesion" in text and "Tumor additions on healthy slices" in text
    assert "What a segmenter of the real sequence finds" in text and "Not in the source" in text
    assert len(list((out / "figures").glob("*.png"))) == 4
    assert {"ms_ssim", "pearson"} <= set(json.loads((out / "metrics.json").read_text())["definitions"]["metrics"])
    assert list((tmp_path / "cache").glob("detector_*.pt"))  # the detector is cached


def test_bad_inputs_fail_clearly_and_write_nothing(prepared, runs, tmp_path):
    import shutil

    cfg = EvalConfig(audit=AuditConfig(enabled=False), segmentation=SegmentationConfig(enabled=False))
    other = tmp_path / "other" / "checkpoints"
    other.mkdir(parents=True)
    ck = make_checkpoint(other / "last.pt")
    payload = torch.load(ck, weights_only=True)
    payload["direction"] = {"source": "t2", "target": "flair"}
    save_checkpoint({k: v for k, v in payload.items() if k not in ("format", "format_version")}, ck)
    with pytest.raises(MrtransError, match="model translates flair/t2, the test set is flair/t1"):
        evaluate_runs([tmp_path / "other"], prepared, tmp_path / "r1", cfg)
    no_seg = shutil.copytree(prepared, tmp_path / "noseg")
    (no_seg / "test" / "seg.npy").unlink()
    with pytest.raises(MrtransError, match="seg.npy: missing"):
        evaluate_runs([runs / "cyc"], no_seg, tmp_path / "r2", cfg)
    with pytest.raises(MrtransError, match="shapes differ"):
        z = np.zeros((2, 8, 8))
        score_slices(
            "r",
            "m",
            Direction("flair", "t1"),
            z,
            z,
            np.zeros((2, 8, 9)),
            z,
            z,
            pd.DataFrame({"subject": ["a", "b"], "slice_index": [0, 1], "label": ["healthy", "tumor"]}),
            (-1, 1),
        )
    with pytest.raises(MrtransError, match="empty test set"):
        z = np.zeros((0, 8, 8))
        score_slices(
            "r",
            "m",
            Direction("flair", "t1"),
            z,
            z,
            z,
            z,
            z,
            pd.DataFrame({"subject": [], "slice_index": [], "label": []}),
            (-1, 1),
        )
    assert not any((tmp_path / n).exists() for n in ("r1", "r2"))


def test_cli_evaluate_and_evaluate_volumes(prepared, runs, synth_root, tmp_path):
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(runs / "cyc"),
            "--data",
            str(prepared),
            "--out",
            str(tmp_path / "rep"),
            "--no-audit",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "report.md").is_file()
    # progress lines go to stderr (INFO), the result line to stdout; --quiet keeps only warnings and errors
    assert "translating" in result.stderr and "report:" in result.stdout and "translating" not in result.stdout
    args = ["evaluate", str(runs / "cyc"), "--data", str(prepared), "--no-audit", "--device", "cpu"]
    quiet = runner.invoke(app, ["--quiet", *args, "--out", str(tmp_path / "rep_q")])
    assert quiet.exit_code == 0 and "translating" not in quiet.output and "report:" in quiet.stdout
    sid = "SynthBraTS_001"
    flair, t1, seg = (synth_root / sid / f"{sid}_{m}.nii.gz" for m in ("flair", "t1", "seg"))
    pred = tmp_path / f"{sid}_t1_from_flair.nii.gz"
    assert (
        runner.invoke(
            app, ["translate", str(flair), "--model", str(runs / "cyc"), "--out", str(pred), "--device", "cpu"]
        ).exit_code
        == 0
    )
    vol = runner.invoke(
        app,
        [
            "evaluate-volumes",
            "--pred",
            str(pred),
            "--ref",
            str(t1),
            "--seg",
            str(seg),
            "--out",
            str(tmp_path / "vrep"),
            "--name",
            "cyc",
            "--rules",
            "paper_protocol",
        ],
    )
    assert vol.exit_code == 0, vol.output
    per_slice = pd.read_csv(tmp_path / "vrep" / "per_slice.csv")
    assert set(per_slice.subject) == {sid} and per_slice.mae.notna().all() and set(per_slice["mode"]) == {"volumes"}
    assert "Mode: **volumes**" in (tmp_path / "vrep" / "report.md").read_text()
    through = pd.read_csv(tmp_path / "vrep" / "through_plane.csv")
    assert through.loc[0, "through_plane_mae"] > 0 and 0 < through.loc[0, "ssim_coronal"] < 1
    assert len(list((tmp_path / "vrep" / "figures").glob("*_planes.png"))) == 1
    bad = tmp_path / f"{sid}_bad.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), bad)
    mismatch = runner.invoke(
        app, ["evaluate-volumes", "--pred", str(bad), "--ref", str(t1), "--seg", str(seg), "--out", str(tmp_path / "x")]
    )
    assert mismatch.exit_code == 2 and "does not match the reference" in mismatch.stderr
    assert not (tmp_path / "x").exists()


def test_evaluate_volumes_accepts_a_tumor_free_seg(synth_root, runs, tmp_path):
    sid = "SynthBraTS_002"
    seg = synth_root / sid / f"{sid}_seg.nii.gz"
    healthy = tmp_path / f"{sid}_seg.nii.gz"  # a seg without tumor, named after its subject
    ref = nib.load(seg)
    nib.save(nib.Nifti1Image(np.zeros(ref.shape, np.uint8), ref.affine), healthy)
    t1 = synth_root / sid / f"{sid}_t1.nii.gz"
    pred = tmp_path / f"{sid}_t1_pred.nii.gz"
    assert (
        runner.invoke(
            app,
            [
                "translate",
                str(synth_root / sid / f"{sid}_flair.nii.gz"),
                "--model",
                str(runs / "cyc"),
                "--out",
                str(pred),
                "--device",
                "cpu",
            ],
        ).exit_code
        == 0
    )
    out = evaluate_volumes([pred], [t1], [healthy], tmp_path / "rep", Direction.parse("flair2t1"))
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert set(per_slice.label) == {"healthy"} and "tumor" not in set(per_slice.region)


def test_evaluate_volumes_refuses_raw_units_and_a_subject_mismatch(synth_root, tmp_path):
    sid, other = "SynthBraTS_001", "SynthBraTS_002"
    t1, seg = (synth_root / sid / f"{sid}_{m}.nii.gz" for m in ("t1", "seg"))
    args = dict(out=tmp_path / "rep", direction=Direction.parse("flair2t1"))
    with pytest.raises(MrtransError, match=r"SynthBraTS_001_t1.nii.gz: values span \[0, \d+\], not \[0, 1\]"):
        evaluate_volumes([t1], [t1], [seg], **args)  # the reference scored against itself in scanner units
    with pytest.raises(MrtransError, match="no --ref volume of subject SynthBraTS_002"):
        evaluate_volumes([synth_root / other / f"{other}_t1.nii.gz"], [t1], [seg], **args)
    with pytest.raises(MrtransError, match="no --ref volume of subject SynthBraTS_002"):
        evaluate_volumes([t1], [t1], [synth_root / other / f"{other}_seg.nii.gz"], **args)
    assert not (tmp_path / "rep").exists()


def test_generators_run_in_fp32_unless_bf16_is_asked(prepared, runs, tmp_path, monkeypatch):
    from mrtrans.evaluation import evaluate as evaluate_module

    seen = []
    real_forward = evaluate_module.forward_slices

    def spy(*args, bf16=True, **kwargs):
        seen.append(bf16)
        return real_forward(*args, bf16=bf16, **kwargs)

    monkeypatch.setattr(evaluate_module, "forward_slices", spy)
    cfg = EvalConfig(audit=AuditConfig(enabled=False), segmentation=SegmentationConfig(enabled=False), figure_slices=0)
    evaluate_runs([runs / "cyc"], prepared, tmp_path / "a", cfg)
    assert seen and not any(seen)
    seen.clear()
    evaluate_runs(
        [runs / "cyc"],
        prepared,
        tmp_path / "b",
        EvalConfig(
            audit=AuditConfig(enabled=False),
            segmentation=SegmentationConfig(enabled=False),
            figure_slices=0,
            precision=Precision.bf16,
        ),
    )
    assert seen and all(seen)


def test_a_run_is_not_scored_on_patients_it_trained_on_unless_asked_and_then_every_table_says_so(prepared, tmp_path):
    from mrtrans.checkpoint import load_checkpoint, save_checkpoint
    from mrtrans.data_prep.slices import PreparedSlices

    test_patients = PreparedSlices(prepared).subjects("test")
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "tmp.pt"))
    ckpt["data"] = {"train_subjects": [test_patients[0], "someone-else"]}  # as a run of another split would record
    (tmp_path / "leaky" / "checkpoints").mkdir(parents=True)
    save_checkpoint(ckpt, tmp_path / "leaky" / "checkpoints" / "last.pt")
    cfg = EvalConfig(audit=AuditConfig(enabled=False), segmentation=SegmentationConfig(enabled=False), figure_slices=0)
    with pytest.raises(MrtransError) as err:
        evaluate_runs([tmp_path / "leaky"], prepared, tmp_path / "report", cfg)
    message = str(err.value)
    assert "trained on 1 of the test patients" in message and test_patients[0] in message and "leaky" in message
    assert not (tmp_path / "report").exists()
    out = evaluate_runs([tmp_path / "leaky"], prepared, tmp_path / "report", cfg, allow_training_patients=True)
    assert "Scored on patients the run trained on (leaky" in (out / "report.md").read_text()
    for name in ("summary.csv", "per_slice.csv", "tumor_summary.csv", "tumor_lesions.csv"):
        table = pd.read_csv(out / name)
        flags = table.groupby("run")["trained_on_test_patients"].first()
        assert flags["leaky"] and not flags["copy-source"], name


def test_an_evaluation_can_compute_only_the_brain_shared_protocol(prepared, runs, tmp_path):
    cfg = EvalConfig(
        audit=AuditConfig(enabled=False),
        segmentation=SegmentationConfig(enabled=False),
        figure_slices=0,
        protocols=("brain_shared",),
    )
    out = evaluate_runs([runs / "cyc"], prepared, tmp_path / "report", cfg)
    assert set(pd.read_csv(out / "summary.csv")["protocol"]) == {"brain_shared"}
    with pytest.raises(MrtransError, match="protocols"):
        EvalConfig(protocols=("whole_slice",))
