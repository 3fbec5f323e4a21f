import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity
from test_inference import make_checkpoint
from typer.testing import CliRunner

from mrtrans.checkpoint import save_checkpoint
from mrtrans.cli import app
from mrtrans.config import AuditConfig, EvalConfig, Precision
from mrtrans.data.slices import Direction, PreparedSlices
from mrtrans.errors import MrtransError
from mrtrans.evaluation import audit
from mrtrans.evaluation.evaluate import evaluate_runs, evaluate_volumes, score_slices
from mrtrans.evaluation.metrics import PSNR_CAP, brain_metrics, interior, paper_metrics, ssim_map, through_plane_metrics
from mrtrans.evaluation.statistics import bootstrap_ratio, paired_difference

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
        ref = structural_similarity(
            real[i], pred[i], data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert m["ssim"][i] == pytest.approx(ref, abs=1e-10)


def test_region_ssim_is_the_scikit_image_map_averaged_over_the_region():
    pred, real, brain, tumor = _pair(seed=2)
    ours = ssim_map(pred, real, 255.0)
    _, full = structural_similarity(
        real[0], pred[0], data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
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


def test_ms_ssim_is_ssim_at_one_scale_follows_monai_at_four_and_falls_with_noise():
    from monai.metrics.regression import compute_ms_ssim
    from scipy import ndimage

    from mrtrans.evaluation.metrics import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales

    pred, real, brain, tumor = _pair(seed=5, size=24)  # 24 px: one scale
    assert ms_ssim_scales(pred.shape) == 1 and ms_ssim_scales((64, 64)) == 3 and ms_ssim_scales((256, 256)) == 5
    m = paper_metrics(pred, real, brain, tumor)
    for region in m:
        assert np.allclose(m[region]["ms_ssim"], m[region]["ssim"], equal_nan=True), region
    rng = np.random.default_rng(0)
    real = ndimage.gaussian_filter(rng.random((2, 192, 192)), (0, 3, 3))
    real = (real - real.min()) / (real.max() - real.min())
    whole = np.ones(real.shape, bool)
    weights = np.asarray(MS_SSIM_WEIGHTS[:4]) / sum(MS_SSIM_WEIGHTS[:4])
    previous = 1.0 + 1e-12
    for noise in (0.0, 0.02, 0.1, 0.3):
        pred = np.clip(real + noise * rng.standard_normal(real.shape), 0, 1)
        ours = ms_ssim(pred, real, whole, 1.0)
        theirs = compute_ms_ssim(
            torch.tensor(pred[:, None]), torch.tensor(real[:, None]), 2, 1.0, weights=tuple(weights)
        )
        # MONAI differs by the sample-covariance correction and its unpadded windows: close, not equal
        assert np.allclose(ours, theirs.numpy().ravel(), atol=0.01), noise
        assert np.all(ours < previous) and (noise > 0 or np.allclose(ours, 1.0))
        previous = ours


def test_pearson_is_numpy_corrcoef_on_the_region_and_ignores_a_linear_change():
    pred, real, brain, tumor = _pair(seed=6)
    m = paper_metrics(pred, real, brain, tumor)
    for i in range(len(pred)):
        assert m["tumor"]["pearson"][i] == pytest.approx(np.corrcoef(pred[i][tumor[i]], real[i][tumor[i]])[0, 1])
    scaled = brain_metrics(pred * 0.5 + 10, real, brain, tumor)["brain"]["pearson"]
    assert np.allclose(scaled, brain_metrics(pred, real, brain, tumor)["brain"]["pearson"])
    flat = paper_metrics(np.full_like(pred, 7.0), real, brain, tumor)["whole"]["pearson"]
    assert np.isnan(flat).all()  # a constant image has no correlation, not 0


@pytest.fixture(scope="module")
def detectors(prepared):
    """Detectors as evaluate trains them: FLAIR on the whole tumor, T1 on the tumor core."""
    data = PreparedSlices(prepared)
    cfg = AuditConfig(steps=400, batch_size=8, lr=3e-3)
    out = {}
    for modality in ("flair", "t1"):
        labels = audit.region_labels(modality, "auto", data.meta.get("layouts"))
        masks = audit.region_mask(data.train_seg(modality), labels).astype(np.uint8)
        tumor = np.asarray(data.train_seg(modality)) > 0
        out[modality] = (
            audit.train_detector(data.train(modality), masks, cfg, torch.device("cpu"), tumor=tumor),
            labels,
        )
    return out, data


def _lesion_audit(detector, images, seg):
    net, labels = detector
    detected = audit.detect(net, images, 0.5, torch.device("cpu"))
    return audit.audit_lesions(detected, audit.region_mask(seg, labels), seg > 0, 5)


def test_additions_sanity_rows_come_out_near_100_percent(detectors):
    """The two-polarity detector finds a real tumor pasted into a healthy slice with the target's contrast and
    with the source's (a T1-dark tumor in FLAIR), and finds little on the healthy real slices (the floor).
    (The T1 tumor-core detector learns too little from these 16 training slices; the report's validity lines
    say "cannot decide" when its sanity rows fall short, test_instrument_validity_says_when_it_cannot_decide.)"""
    nets, data = detectors
    seg, brain = np.asarray(data.test("seg")).astype(np.uint8), np.asarray(data.test("brain"))
    healthy = ~(seg > 0).any(axis=(1, 2))
    donors = np.flatnonzero((seg > 0).any(axis=(1, 2)))
    for target, source in (("flair", "t1"),):
        images, other = (np.asarray(data.test(m), np.float32) for m in (target, source))
        real = _lesion_audit(nets[target], images, seg)
        assert (real["added_lesions"][healthy] > 0).mean() <= 0.25, target  # the floor
        for donor in (images, other):
            pasted, pasted_seg = audit.paste_tumors(images, seg, brain, healthy, donors, donor_images=donor)
            assert (pasted_seg[healthy] > 0).any(axis=(1, 2)).all() and not pasted_seg[~healthy].any()
            found = _lesion_audit(nets[target], pasted, seg)["added_lesions"][healthy] > 0
            assert found.mean() >= 0.8, (target, donor is images, found)


def test_pasted_tumors_carry_the_donor_contrast():
    target = np.full((2, 24, 24), -1.0, np.float32)
    target[:, 2:22, 2:22] = 0.5  # bright tissue (T1-like)
    donor = np.full((2, 24, 24), -1.0, np.float32)
    donor[:, 2:22, 2:22] = -0.4  # dark tissue (FLAIR-like) ...
    donor[1, 8:12, 8:12] = 0.4  # ... with a bright tumor, 0.8 above it
    seg = np.zeros((2, 24, 24), np.uint8)
    seg[1, 8:12, 8:12] = 2
    brain = target > -1
    pasted, labels = audit.paste_tumors(target, seg, brain, np.array([True, False]), np.array([1]), donor_images=donor)
    assert pasted[0, 9, 9] == pytest.approx(0.5 + 0.8) or pasted[0, 9, 9] == pytest.approx(1.0)  # clipped to the range
    assert labels[0, 9, 9] == 2 and pasted[0, 4, 4] == 0.5
    soft = donor.copy()
    soft[1, 8:12, 8:12] = -0.2  # a tumor 0.2 above its tissue keeps that contrast in the brighter slice
    assert audit.paste_tumors(target, seg, brain, np.array([True, False]), np.array([1]), donor_images=soft)[0][
        0, 9, 9
    ] == pytest.approx(0.7)


def test_instrument_validity_says_when_it_cannot_decide():
    from mrtrans.evaluation.tables import instrument_validity

    def row(run, direction, **values):
        return {"run": run, "direction": direction, **values}

    summary = pd.DataFrame(
        [
            row("real", "t12flair", lesions=40, judgeable_lesions=36, healthy_with_added_rate=0.05),
            row("sanity-inpainted", "t12flair", erased_rate=0.95),
            row("sanity-pasted-target", "t12flair", healthy_with_added_rate=1.0),
            row("sanity-pasted-source", "t12flair", healthy_with_added_rate=0.9),
            row("real", "flair2t1", lesions=40, judgeable_lesions=4, healthy_with_added_rate=0.5),
            row("sanity-inpainted", "flair2t1", erased_rate=0.95),
            row("sanity-pasted-target", "flair2t1", healthy_with_added_rate=1.0),
            row("sanity-pasted-source", "flair2t1", healthy_with_added_rate=0.2),
        ]
    )
    v = instrument_validity(summary, EvalConfig()).set_index(["direction", "aspect"])
    assert v.loc[("t12flair", "removal"), "decidable"] and v.loc[("t12flair", "additions"), "decidable"]
    assert (
        not v.loc[("flair2t1", "removal"), "decidable"] and "shows 4 of 40" in v.loc[("flair2t1", "removal"), "reason"]
    )
    assert not v.loc[("flair2t1", "additions"), "decidable"] and "50%" in v.loc[("flair2t1", "additions"), "reason"]
    summary.loc[summary.run == "sanity-inpainted", "erased_rate"] = 0.5
    assert (
        "inpainted"
        in instrument_validity(summary, EvalConfig())
        .set_index(["direction", "aspect"])
        .loc[("t12flair", "removal"), "reason"]
    )


def test_lesion_inversion_swaps_the_tumor_polarity_in_its_own_context():
    x = np.full((1, 24, 24), -1.0, np.float32)
    x[0, 2:22, 2:22] = 0.2  # brain
    x[0, 10:14, 10:14] = 0.8  # a bright tumor ...
    tumor = np.zeros(x.shape, bool)
    tumor[0, 10:14, 10:14] = True
    inv = audit.invert_lesions(x, tumor)
    assert inv[0, 11, 11] == pytest.approx(2 * 0.2 - 0.8)  # ... becomes dark against the same tissue
    assert inv[0, 5, 5] == x[0, 5, 5] and (inv[x == -1] == -1).all()  # the rest and the background stay


def test_lesion_counting_on_hand_made_masks():
    ref = np.zeros((1, 32, 32), bool)
    det = np.zeros((1, 32, 32), bool)
    ref[0, 2:6, 2:6] = True  # found: detected in part
    det[0, 3:5, 3:7] = True
    det[0, 20:24, 20:24] = True  # added: nowhere near a tumor
    det[0, 26:30, 12:16] = True  # added
    det[0, 0, 31] = True  # one pixel: below the minimum lesion size
    r = audit.audit_lesions(det, ref, ref, min_pixels=4)
    assert r["detected_lesions"][0] == 3 and r["added_lesions"][0] == 2
    assert r["dice"][0] == pytest.approx(2 * 6 / ((8 + 16 + 16) + 16))  # 6 px overlap; the 1-px speck is not a lesion
    edema = ref.copy()
    edema[0, 19:25, 19:25] = True  # the "added" detection lies on edema: not an addition
    assert audit.audit_lesions(det, ref, edema, min_pixels=4)["added_lesions"][0] == 1
    labels, n = audit.lesions(det[0], 4)
    assert n == 3 and labels.max() == 3


def test_detector_regions_follow_the_sequence_and_the_seg_convention():
    assert audit.region_labels("flair", "auto", ["brats2018-2021"]) is None  # whole tumor
    assert audit.region_labels("t1", "auto", ["brats2018-2021"]) == (1, 4)
    assert audit.region_labels("t1", "auto", ["brats2023+"]) == (1, 3)
    assert audit.region_labels("t1ce", "auto", ["msd-task01"]) == (2, 3)
    assert audit.region_labels("t1", "whole", ["brats2023+"]) is None
    with pytest.raises(ValueError, match="ambiguous"):
        audit.region_labels("t1", "core", ["brats2018-2021", "brats2023+"])
    seg = np.array([[0, 1, 2, 4]])
    assert audit.region_mask(seg, (1, 4)).tolist() == [[False, True, False, True]]


def test_bootstrap_ci_of_a_constant_is_a_point_and_widens_with_patient_spread():
    counts = np.array([3.0, 5.0, 2.0, 4.0])
    est, lo, hi = bootstrap_ratio(0.7 * counts, counts, 500, 0)
    assert est == pytest.approx(0.7) and lo == pytest.approx(0.7) and hi == pytest.approx(0.7)
    rng = np.random.default_rng(0)
    widths = []
    for spread in (0.01, 0.1, 0.3):
        means = 0.5 + rng.normal(0, spread, 12)
        _, lo, hi = bootstrap_ratio(means * 4, np.full(12, 4.0), 2000, 0)
        widths.append(hi - lo)
    assert widths[0] < widths[1] < widths[2]
    # Resampling is over patients: one patient with many slices cannot narrow the interval alone.
    _, lo1, hi1 = bootstrap_ratio(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 2000, 0)
    assert lo1 == 0.0 and hi1 == 1.0


def test_paired_difference_and_wilcoxon():
    ref = np.array([0.20, 0.30, 0.25, 0.40, 0.35, 0.28, 0.33, 0.31])
    better = ref - 0.05 - np.linspace(0, 0.01, 8)
    r = paired_difference(better, ref, 2000, 0)
    assert r["n_patients"] == 8 and r["mean_difference"] < 0 and r["ci_high"] < 0
    assert r["p_wilcoxon"] == pytest.approx(stats.wilcoxon(better - ref).pvalue) and r["p_wilcoxon"] < 0.01
    same = paired_difference(ref, ref, 500, 0)
    assert same["mean_difference"] == 0 and np.isnan(same["p_wilcoxon"])


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


def test_evaluate_writes_paper_layout_tables(prepared, runs, tmp_path):
    cfg = EvalConfig(audit=AuditConfig(steps=5))
    out = evaluate_runs(
        [runs / "cyc", runs / "harm"],
        prepared,
        tmp_path / "report",
        cfg,
        cache_dir=tmp_path / "cache",
        log=lambda s: None,
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "per_slice.csv",
        "per_subject.csv",
        "summary.csv",
        "table1.md",
        "table1.tex",
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
    text = (out / "table1.md").read_text()
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
        for d in ("Flair → T1", "T1 → Flair")
        for m in ("MAE ↓", "MSE ↓", "PSNR ↑", "SSIM ↑", "MS-SSIM ↑", "Pearson r ↑")
    ]
    assert any(line.startswith("| cyc (cyclegan) |") for line in md)
    tex = (out / "table1.tex").read_text()
    assert r"\multicolumn{6}{c}{Flair $\rightarrow$ T1}" in tex and r"\multicolumn{6}{c}{T1 $\rightarrow$ Flair}" in tex
    assert {"ms_ssim_mean", "pearson_mean", "pearson_ci_low"} <= set(summary.columns) and {"ms_ssim", "pearson"} <= set(
        paired.metric
    )
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert set(per_slice.run) == {"copy-source", "cyc", "harm"} and set(per_slice.direction) == {"flair2t1", "t12flair"}
    tumor = pd.read_csv(out / "tumor_summary.csv")
    assert {"real", "sanity-inpainted", "sanity-pasted-target", "sanity-pasted-source", "copy-source"} <= set(tumor.run)
    assert {
        "erased_rate",
        "erased_rate_ci_low",
        "present_same_rate",
        "present_opposite_rate",
        "judgeable_lesions",
        "not_judgeable_lesions",
        "cnr_error_mean",
        "added_per_slice",
        "healthy_with_added_rate",
    } <= set(tumor.columns)
    assert not {"removed_rate", "contrast_abs_error_mean"} & set(tumor.columns)  # the old, misleading columns are gone
    real = tumor[tumor.run == "real"]
    assert (real.present_same_rate == 1).all() and (real.erased_rate == 0).all()  # the ceiling, by definition
    per_patient = pd.read_csv(out / "tumor_per_subject.csv")
    cyc = tumor[(tumor.run == "cyc") & (tumor.direction == "flair2t1")].iloc[0]
    mine = per_patient[(per_patient.run == "cyc") & (per_patient.direction == "flair2t1")]
    assert mine.erased_lesions.sum() == cyc.erased_lesions and mine.healthy_with_added.sum() == cyc.healthy_with_added
    lesions = pd.read_csv(out / "tumor_lesions.csv")
    assert len(lesions[(lesions.run == "cyc") & (lesions.direction == "flair2t1")]) == cyc.lesions
    assert "Tumor presence per reference lesion" in text and "Tumor additions on healthy slices" in text
    assert len(list((out / "figures").glob("*.png"))) == 4
    assert {"ms_ssim", "pearson"} <= set(json.loads((out / "metrics.json").read_text())["definitions"]["metrics"])
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
    assert (tmp_path / "rep" / "table1.md").is_file()
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
    assert "Mode: **volumes**" in (tmp_path / "vrep" / "table1.md").read_text()
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


def test_through_plane_measure_is_zero_for_the_reference_and_grows_with_flicker():
    rng = np.random.default_rng(0)
    ref = ndimage_smooth(rng.uniform(0, 1, (32, 32, 16)))
    brain = np.zeros(ref.shape, bool)
    brain[4:28, 4:28, :] = True
    ref = np.where(brain, ref, 0.0)
    same = through_plane_metrics(ref, ref, brain)
    assert (
        same["through_plane_mae"] == 0
        and same["ssim_coronal"] == pytest.approx(1)
        and same["ssim_sagittal"] == pytest.approx(1)
    )
    values = []
    for shift in (0.02, 0.1):
        flicker = ref.copy()
        flicker[:, :, ::2] = np.where(brain[:, :, ::2], flicker[:, :, ::2] + shift, 0)  # every other slice brighter
        values.append(through_plane_metrics(flicker, ref, brain))
    assert 0 < values[0]["through_plane_mae"] < values[1]["through_plane_mae"]
    assert values[0]["through_plane_mae"] == pytest.approx(0.02, rel=1e-6)  # |+-shift| between every neighbouring pair
    assert values[1]["ssim_coronal"] < values[0]["ssim_coronal"] < 1


def ndimage_smooth(x):
    from scipy import ndimage

    return ndimage.gaussian_filter(x, 2)


def test_runs_differing_only_in_seed_form_a_group():
    from mrtrans.config import TrainConfig, to_dict
    from mrtrans.evaluation.evaluate import seed_groups

    def ckpt(seed, lam=1.0):
        cfg = to_dict(TrainConfig())
        cfg["run"]["seed"], cfg["loss"]["lambda_smooth"] = seed, lam
        return {"kind": "harmonicgan-histogram", "direction": {"source": "flair", "target": "t1"}, "config": cfg}

    groups = seed_groups(["a", "b", "c"], [ckpt(0), ckpt(1), ckpt(0, lam=5.0)])
    assert groups["a"] == groups["b"] != groups["c"]
    other_data = seed_groups(["a", "b"], [ckpt(0), ckpt(1)], ["/data/target0", "/data/target100"])
    assert other_data["a"] != other_data["b"]  # the same method on other training data is not a seed


def test_generators_run_in_fp32_unless_bf16_is_asked(prepared, runs, tmp_path, monkeypatch):
    from mrtrans.evaluation import evaluate as evaluate_module

    seen = []
    real_forward = evaluate_module.forward_slices

    def spy(*args, bf16=True, **kwargs):
        seen.append(bf16)
        return real_forward(*args, bf16=bf16, **kwargs)

    monkeypatch.setattr(evaluate_module, "forward_slices", spy)
    cfg = EvalConfig(audit=AuditConfig(enabled=False), figure_slices=0)
    evaluate_runs([runs / "cyc"], prepared, tmp_path / "a", cfg, log=lambda s: None)
    assert seen and not any(seen)
    seen.clear()
    evaluate_runs(
        [runs / "cyc"],
        prepared,
        tmp_path / "b",
        EvalConfig(audit=AuditConfig(enabled=False), figure_slices=0, precision=Precision.bf16),
        log=lambda s: None,
    )
    assert seen and all(seen)


def _closer_than_copy(source, real, brain, seg):
    """Protocols brain_shared and paper, every region and metric: a prediction halfway between copy-source and the
    reference (closer at every brain pixel) scores better than copy-source. (Protocol ``brain`` rescales each image
    by its own percentiles, which does not keep pixel-wise order: a blend's tumor can rescale further from the
    reference's; docs/evaluation.md says so.)"""
    blend = np.where(brain, (source + real) / 2, real)
    d = Direction("flair", "t1")
    frame = pd.DataFrame({"subject": "s", "slice_index": np.arange(len(real)), "label": "tumor"})
    scores = {
        name: score_slices(name, name, d, source, pred, real, brain, seg, frame, (-1, 1)).per_slice
        for name, pred in (("copy", source), ("blend", blend))
    }
    means = {
        k: v[v.protocol != "brain"].groupby(["protocol", "region"])[["mae", "mse", "psnr", "ssim"]].mean()
        for k, v in scores.items()
    }
    better = (means["blend"][["mae", "mse"]] < means["copy"][["mae", "mse"]]).join(
        means["blend"][["psnr", "ssim"]] > means["copy"][["psnr", "ssim"]]
    )
    assert better.to_numpy().all(), better


def test_a_prediction_closer_at_every_brain_pixel_scores_better_everywhere(prepared):
    data = PreparedSlices(prepared)
    flair, t1, brain, seg = (np.asarray(data.test(k), np.float32) for k in ("flair", "t1", "brain", "seg"))
    tumor = (seg > 0).any(axis=(1, 2))
    _closer_than_copy(flair[tumor], t1[tumor], brain[tumor].astype(bool), seg[tumor].astype(np.uint8))


def test_closer_scores_better_on_real_sample_slices(real_sample):
    from mrtrans.evaluation.metrics import brain_normalize

    subject = sorted(p for p in real_sample.iterdir() if p.is_dir())[0]
    vol = {
        m: np.asarray(nib.load(subject / f"{subject.name}_{m}.nii.gz").dataobj, np.float32)
        for m in ("flair", "t1", "seg")
    }
    brain = vol["t1"] > 0
    z = np.flatnonzero((vol["seg"] > 0).sum(axis=(0, 1)) > 200)[::6][:6]
    stack = {m: np.moveaxis(v[:, :, z], 2, 0) for m, v in vol.items()}
    mask = np.moveaxis(brain[:, :, z], 2, 0)
    flair, t1 = (brain_normalize(stack[m], mask) * 2 - 1 for m in ("flair", "t1"))
    _closer_than_copy(np.where(mask, flair, -1), np.where(mask, t1, -1), mask, stack["seg"].astype(np.uint8))


def test_p_values_say_when_too_few_patients_cannot_decide():
    from mrtrans.evaluation.statistics import min_wilcoxon_p

    assert min_wilcoxon_p(5) == 0.0625 and min_wilcoxon_p(2) == 0.5 and min_wilcoxon_p(6) == 0.03125
    for n in (2, 5):  # all differences one way: the most extreme outcome n patients allow
        r = paired_difference(np.zeros(n), np.arange(1, n + 1, dtype=float), 500, 0)
        assert np.isnan(r["p_wilcoxon"]) and r["p_min_attainable"] > 0.05 and "cannot decide" in r["p_note"]
        assert stats.wilcoxon(-np.arange(1, n + 1)).pvalue == pytest.approx(r["p_min_attainable"])
    r = paired_difference(np.zeros(6), np.arange(1, 7, dtype=float), 500, 0)
    assert r["p_wilcoxon"] == pytest.approx(0.03125) and r["p_note"] == ""


def test_hierarchical_bootstrap_is_a_point_for_identical_runs_and_widens_with_patient_spread():
    from mrtrans.evaluation.statistics import claim_answer, hierarchical_bootstrap_difference

    patients = np.repeat(np.arange(8), 5)  # 8 patients, 5 lesions each
    same = np.tile((np.arange(40) % 3 == 0).astype(float), (3, 1))  # 3 seeds, identical
    r = hierarchical_bootstrap_difference(same, same, patients, 1000, 0)
    assert r["difference"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
    assert claim_answer(r, 0.05) == "no difference shown"
    base = np.zeros((3, 40))
    uniform = np.tile((np.arange(40) % 5 < 3).astype(float), (3, 1))  # 60% in every patient
    spread = np.tile((patients < 5).astype(float), (3, 1)) * 1.0  # 100% in 5 patients, 0% in 3: 62.5%
    narrow = hierarchical_bootstrap_difference(uniform, base, patients, 2000, 0)
    wide = hierarchical_bootstrap_difference(spread, base, patients, 2000, 0)
    assert wide["ci_high"] - wide["ci_low"] > 2 * (narrow["ci_high"] - narrow["ci_low"])
    assert claim_answer(narrow, 0.05) == "worse" and claim_answer({k: -v for k, v in narrow.items()}, 0.05) == "better"
    seeds = base.copy()
    seeds[0] = 1.0  # one seed of three erases everything: seed spread widens the interval too
    assert hierarchical_bootstrap_difference(seeds, base, patients, 2000, 0)["ci_high"] > 0.5
