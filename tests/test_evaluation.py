import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.config import AuditConfig, EvalConfig
from mrtrans.data.slices import Direction, PreparedSlices
from mrtrans.errors import MrtransError
from mrtrans.evaluation import audit
from mrtrans.evaluation.evaluate import evaluate_runs, evaluate_volumes, score_slices
from mrtrans.evaluation.metrics import PSNR_CAP, brain_metrics, paper_metrics, ssim_map, interior
from mrtrans.training.checkpoint import save_checkpoint

from test_inference import make_checkpoint

runner = CliRunner()


def _pair(seed=0, n=3, size=48):
    rng = np.random.default_rng(seed)
    real = rng.uniform(0, 255, (n, size, size))
    real = np.stack([np.kron(r[::8, ::8], np.ones((8, 8))) for r in real])  # some structure
    pred = np.clip(real + rng.normal(0, 20, real.shape), 0, 255)
    brain = np.zeros(real.shape, bool)
    brain[:, 6:-6, 6:-6] = True
    tumor = np.zeros(real.shape, bool)
    tumor[:, 16:28, 16:28] = True
    return pred, real, brain, tumor


def test_identical_images_give_zero_error_unit_ssim_and_the_psnr_cap():
    _, real, brain, tumor = _pair()
    for result in (paper_metrics(real, real, brain, tumor), brain_metrics(real, real, brain, tumor)):
        for region, m in result.items():
            assert np.allclose(m["mae"], 0) and np.allclose(m["mse"], 0), region
            assert np.allclose(m["ssim"], 1), region
            assert np.all(m["psnr"] == PSNR_CAP), region


def test_paper_protocol_matches_scikit_image():
    pred, real, brain, tumor = _pair(seed=1)
    m = paper_metrics(pred, real, brain, tumor)["whole"]
    for i in range(len(pred)):
        assert m["mae"][i] == pytest.approx(np.abs(pred[i] - real[i]).mean())
        assert m["mse"][i] == pytest.approx(mean_squared_error(real[i], pred[i]))
        assert m["psnr"][i] == pytest.approx(peak_signal_noise_ratio(real[i], pred[i], data_range=255))
        ref = structural_similarity(real[i], pred[i], data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert m["ssim"][i] == pytest.approx(ref, abs=1e-10)


def test_region_ssim_is_the_scikit_image_map_averaged_over_the_region():
    pred, real, brain, tumor = _pair(seed=2)
    ours = ssim_map(pred, real, 255.0)
    _, full = structural_similarity(real[0], pred[0], data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)  # fmt: skip
    assert np.allclose(ours[0], full)
    m = paper_metrics(pred, real, brain, tumor)["tumor"]
    assert m["ssim"][0] == pytest.approx(full[tumor[0] & interior(full.shape)].mean())


def test_brain_protocol_normalises_each_image_and_scores_inside_the_brain():
    pred, real, brain, tumor = _pair(seed=3)
    m = brain_metrics(pred * 3 + 100, real, brain, tumor)  # a linear change of scale is normalised away...
    ref = brain_metrics(pred, real, brain, tumor)
    assert np.allclose(m["brain"]["mae"], ref["brain"]["mae"])
    noisy_bg = pred.copy()
    noisy_bg[~brain] = 0  # ...and the background does not count
    assert np.allclose(brain_metrics(noisy_bg, real, brain, tumor)["brain"]["mae"], ref["brain"]["mae"])


def test_a_change_outside_the_tumor_leaves_tumor_metrics_unchanged():
    pred, real, brain, tumor = _pair(seed=4)
    changed = pred.copy()
    far = np.zeros_like(tumor)
    far[:, 36:42, 36:42] = True  # well away from the tumor and its SSIM window
    changed[far] = 0
    a, b = paper_metrics(pred, real, brain, tumor), paper_metrics(changed, real, brain, tumor)
    for metric in ("mae", "mse", "psnr", "ssim"):
        assert np.allclose(a["tumor"][metric], b["tumor"][metric]), metric
    assert not np.allclose(a["whole"]["mae"], b["whole"]["mae"])
    assert not np.allclose(a["healthy"]["mae"], b["healthy"]["mae"])


@pytest.fixture(scope="module")
def detector(prepared):
    data = PreparedSlices(prepared)
    cfg = AuditConfig(steps=250, batch_size=8, lr=3e-3)
    return audit.train_detector(data.train("t1"), data.train_seg("t1"), cfg, torch.device("cpu")), data


def test_audit_reports_removed_and_added_tumors(detector):
    net, data = detector
    t1, seg, brain = (np.asarray(data.test(k), np.float32) for k in ("t1", "seg", "brain"))
    manifest = data.manifest()
    test = manifest[manifest.split == "test"].sort_values("array_index")
    is_tumor = (test.label == "tumor").to_numpy()
    min_px = 20  # real tumors here give 39-93 detected pixels; a deleted one leaves at most ~10
    real = audit.audit_slices(audit.detect(net, t1, 0.5, torch.device("cpu")), seg > 0, is_tumor, min_px)
    assert np.nanmean(real["removed"]) <= 0.25 and np.nanmean(real["added"]) <= 0.25  # the detector works on real slices
    # A translation that deletes the tumor: the tumor and its 2-pixel partial-volume rim are filled with
    # healthy-brain pixels of the same slice (texture kept, lesion gone).
    deleted, rng = t1.copy(), np.random.default_rng(0)
    for i in np.flatnonzero(is_tumor):
        lesion = ndimage.binary_dilation(seg[i] > 0, iterations=2) & (brain[i] > 0)
        deleted[i][lesion] = rng.choice(t1[i][(brain[i] > 0) & ~lesion], size=int(lesion.sum()))
    removed = audit.audit_slices(audit.detect(net, deleted, 0.5, torch.device("cpu")), seg > 0, is_tumor, min_px)
    # A translation that paints a tumor into each healthy slice (copied from a tumor slice).
    painted = t1.copy()
    donor = np.flatnonzero(is_tumor)[np.argmax((seg[is_tumor] > 0).sum(axis=(1, 2)))]
    for i in np.flatnonzero(~is_tumor):
        painted[i][seg[donor] > 0] = t1[donor][seg[donor] > 0]
    added = audit.audit_slices(audit.detect(net, painted, 0.5, torch.device("cpu")), seg > 0, is_tumor, min_px)
    assert np.nanmean(removed["removed"]) >= 0.75 > np.nanmean(real["removed"])
    assert np.nanmean(added["added"]) >= 0.75 > np.nanmean(real["added"])


def test_audit_slices_rules():
    det = np.zeros((3, 8, 8), bool)
    gt = np.zeros((3, 8, 8), bool)
    gt[0, :4, :4] = True
    det[0, :4, :2] = True  # tumor slice, half found
    det[2, :3, :3] = True  # healthy slice with a detection
    r = audit.audit_slices(det, gt, np.array([True, True, False]), min_pixels=5)
    assert r["dice"][0] == pytest.approx(2 * 8 / (8 + 16)) and r["dice"][1] == 0 and np.isnan(r["dice"][2])
    assert r["removed"].tolist()[:2] == [0.0, 1.0] and np.isnan(r["removed"][2])
    assert r["added"][2] == 1.0 and np.isnan(r["added"][0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for name, kind in (("cyc", "cyclegan"), ("harm", "harmonicgan-histogram")):
        (folder / name / "checkpoints").mkdir(parents=True)
        make_checkpoint(folder / name / "checkpoints" / "last.pt", kind=kind)
    return folder


def test_evaluate_writes_paper_layout_tables(prepared, runs, tmp_path):
    cfg = EvalConfig(audit=AuditConfig(steps=5))
    out = evaluate_runs([runs / "cyc", runs / "harm"], prepared, tmp_path / "report", cfg, cache_dir=tmp_path / "cache", log=lambda s: None)
    names = {p.name for p in out.iterdir()}
    assert {"per_slice.csv", "per_subject.csv", "summary.csv", "table1.md", "table1.tex", "tumor_consistency.csv",
            "tumor_summary.csv", "metrics.json", "figures"} <= names  # fmt: skip
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.protocol) == {"paper", "brain"}
    assert set(summary.region) == {"whole", "brain", "tumor", "healthy"}
    assert (summary[(summary.protocol == "paper") & (summary.region == "whole")].n_slices == 12).all()
    md = (out / "table1.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| Method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["Method"] + [f"{d} {m}" for d in ("Flair → T1", "T1 → Flair")
                                  for m in ("MAE ↓", "MSE ↓", "PSNR ↑", "SSIM ↑")]  # fmt: skip
    assert any(line.startswith("| cyc (cyclegan) |") for line in md)
    assert any("HarmonicGAN-histogram (reported in the paper" in line and "6.38" in line for line in md)
    tex = (out / "table1.tex").read_text()
    assert r"\multicolumn{4}{c}{Flair $\rightarrow$ T1}" in tex and r"\multicolumn{4}{c}{T1 $\rightarrow$ Flair}" in tex
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert set(per_slice.run) == {"cyc", "harm"} and set(per_slice.direction) == {"flair2t1", "t12flair"}
    tumor = pd.read_csv(out / "tumor_summary.csv")
    assert "real" in set(tumor.run) and {"dice_mean", "removed_rate", "added_rate"} <= set(tumor.columns)
    assert len(list((out / "figures").glob("*.png"))) == 4
    assert "definitions" in json.loads((out / "metrics.json").read_text())
    assert list((tmp_path / "cache").glob("detector_*.pt"))  # the detector is cached


def test_bad_inputs_fail_clearly_and_write_nothing(prepared, runs, tmp_path):
    import shutil

    cfg = EvalConfig(audit=AuditConfig(enabled=False))
    other = tmp_path / "other" / "checkpoints"
    other.mkdir(parents=True)
    ck = make_checkpoint(other / "last.pt")
    payload = torch.load(ck, weights_only=True)
    payload["direction"] = {"source": "t2", "target": "flair"}
    save_checkpoint({k: v for k, v in payload.items() if k not in ("format", "format_version")}, ck)
    with pytest.raises(MrtransError, match="model translates flair/t2, the test set is flair/t1"):
        evaluate_runs([tmp_path / "other"], prepared, tmp_path / "r1", cfg, log=lambda s: None)
    no_seg = shutil.copytree(prepared, tmp_path / "noseg")
    (no_seg / "test" / "seg.npy").unlink()
    with pytest.raises(MrtransError, match="seg.npy: missing"):
        evaluate_runs([runs / "cyc"], no_seg, tmp_path / "r2", cfg, log=lambda s: None)
    with pytest.raises(MrtransError, match="shapes differ"):
        z = np.zeros((2, 8, 8))
        score_slices("r", "m", Direction("flair", "t1"), z, z, np.zeros((2, 8, 9)), z, z, pd.DataFrame({"subject": ["a", "b"],
                     "slice_index": [0, 1], "label": ["healthy", "tumor"]}), (-1, 1))  # fmt: skip
    with pytest.raises(MrtransError, match="empty test set"):
        z = np.zeros((0, 8, 8))
        score_slices("r", "m", Direction("flair", "t1"), z, z, z, z, z, pd.DataFrame({"subject": [], "slice_index": [], "label": []}), (-1, 1))
    assert not any((tmp_path / n).exists() for n in ("r1", "r2"))


def test_cli_evaluate_and_evaluate_volumes(prepared, runs, synth_root, tmp_path):
    result = runner.invoke(app, ["evaluate", str(runs / "cyc"), "--data", str(prepared), "--out", str(tmp_path / "rep"), "--no-audit", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "table1.md").is_file()
    sid = "SynthBraTS_001"
    flair, t1, seg = (synth_root / sid / f"{sid}_{m}.nii.gz" for m in ("flair", "t1", "seg"))
    assert runner.invoke(app, ["translate", str(flair), "--model", str(runs / "cyc"), "--out", str(tmp_path / "pred.nii.gz"), "--device", "cpu"]).exit_code == 0
    vol = runner.invoke(app, ["evaluate-volumes", "--pred", str(tmp_path / "pred.nii.gz"), "--ref", str(t1), "--seg", str(seg),
                              "--out", str(tmp_path / "vrep"), "--name", "cyc"])  # fmt: skip
    assert vol.exit_code == 0, vol.output
    per_slice = pd.read_csv(tmp_path / "vrep" / "per_slice.csv")
    assert set(per_slice.subject) == {sid} and per_slice.mae.notna().all()
    bad = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), bad)
    mismatch = runner.invoke(app, ["evaluate-volumes", "--pred", str(bad), "--ref", str(t1), "--seg", str(seg), "--out", str(tmp_path / "x")])
    assert mismatch.exit_code == 2 and "does not match the reference" in mismatch.stderr
    assert not (tmp_path / "x").exists()


def test_evaluate_volumes_accepts_a_tumor_free_seg(synth_root, runs, tmp_path):
    sid = "SynthBraTS_002"
    seg = synth_root / sid / f"{sid}_seg.nii.gz"
    healthy = tmp_path / "healthy_seg.nii.gz"
    ref = nib.load(seg)
    nib.save(nib.Nifti1Image(np.zeros(ref.shape, np.uint8), ref.affine), healthy)
    t1 = synth_root / sid / f"{sid}_t1.nii.gz"
    pred = tmp_path / "pred.nii.gz"
    assert runner.invoke(app, ["translate", str(synth_root / sid / f"{sid}_flair.nii.gz"), "--model", str(runs / "cyc"),
                               "--out", str(pred), "--device", "cpu"]).exit_code == 0  # fmt: skip
    out = evaluate_volumes([pred], [t1], [healthy], tmp_path / "rep", Direction.parse("flair2t1"))
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert set(per_slice.label) == {"healthy"} and "tumor" not in set(per_slice.region)
