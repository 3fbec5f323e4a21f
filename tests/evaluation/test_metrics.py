import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.domain import Direction
from mrtrans.evaluation.evaluate import score_slices
from mrtrans.evaluation.metrics import PSNR_CAP, brain_metrics, interior, paper_metrics, ssim_map, through_plane_metrics


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


def test_a_stack_computes_ms_ssim_once_for_all_regions_with_the_same_values(monkeypatch):
    """MS-SSIM's scale maps do not depend on the region: the stack computes SSIM's terms and MS-SSIM's coarser
    scales once (3 ssim_terms calls at 64 px, not 1 + 3 regions x 3 scales), with the values of the standalone
    per-region computation."""
    from mrtrans.evaluation import metrics

    pred, real, brain, tumor = _pair(seed=7, size=64)
    calls = []
    terms = metrics.ssim_terms
    monkeypatch.setattr(metrics, "ssim_terms", lambda *a, **k: calls.append(1) or terms(*a, **k))
    m = metrics.brain_metrics(pred, real, brain, tumor)
    assert len(calls) == metrics.ms_ssim_scales(pred.shape) == 3
    p, r = metrics.brain_normalize(pred, brain.astype(bool)), metrics.brain_normalize(real, brain.astype(bool))
    for region, mask in {"brain": brain, "tumor": tumor & brain}.items():
        alone = metrics.ms_ssim(p, r, mask, 1.0, brain)
        assert np.allclose(m[region]["ms_ssim"], alone, equal_nan=True), region


def test_pearson_is_numpy_corrcoef_on_the_region_and_ignores_a_linear_change():
    pred, real, brain, tumor = _pair(seed=6)
    m = paper_metrics(pred, real, brain, tumor)
    for i in range(len(pred)):
        assert m["tumor"]["pearson"][i] == pytest.approx(np.corrcoef(pred[i][tumor[i]], real[i][tumor[i]])[0, 1])
    scaled = brain_metrics(pred * 0.5 + 10, real, brain, tumor)["brain"]["pearson"]
    assert np.allclose(scaled, brain_metrics(pred, real, brain, tumor)["brain"]["pearson"])
    flat = paper_metrics(np.full_like(pred, 7.0), real, brain, tumor)["whole"]["pearson"]
    assert np.isnan(flat).all()  # a constant image has no correlation, not 0


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
