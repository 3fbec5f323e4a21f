"""Image metrics of the two evaluation protocols, vectorised over a stack of slices.

``paper`` (HarmonicGAN / Cohen et al. 2018): whole slice, background included, intensities in
0-255; MAE, MSE, PSNR = 10 log10(255^2 / MSE), SSIM with data range 255, Gaussian window sigma 1.5
(11 x 11), no sample-covariance correction (Wang et al. 2004) -- scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``, which the tests check against.

``brain`` (BraTS synthesis / BraSyn style): each image clipped to its own 0.5-99.5 percentiles
inside the brain and scaled to [0, 1]; MAE, MSE, PSNR (data range 1) over brain voxels; one SSIM map
(data range 1) per image, averaged over a region.

``brain_shared``: the same regions and metrics as ``brain``, on the shared prepare-brats
normalisation (model range mapped linearly to [0, 1], no per-image rescaling), so a global intensity
or contrast error counts too. It leads the report (docs/evaluation.md says why).

In ``brain`` and ``brain_shared`` the SSIM windows use brain pixels only (Gaussian-weighted statistics
over the brain mask, :func:`ssim_map`): a window at the brain's edge would otherwise be dominated by
the step to the zeroed background, which rewards an image for matching the background.

Regions: ``whole`` (paper) or ``brain`` (brain protocol), ``tumor`` (seg > 0) and ``healthy``
(brain minus tumor). A region's SSIM is the mean of the SSIM map over the region's pixels that lie
at least 5 pixels (the window radius) from the slice border, which for the whole slice is exactly
scikit-image's cropped mean. PSNR is capped at ``PSNR_CAP`` dB (identical images).

MONAI's SSIM applies the sample-covariance correction, which the paper protocol excludes, hence
this implementation (about 30 lines, checked against scikit-image).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PSNR_CAP = 100.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5: an 11 x 11 window, as in scikit-image


def to_paper_range(x: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Map model-range intensities to 0-255 (float64, clipped)."""
    return np.clip((np.asarray(x, np.float64) - low) / (high - low) * 255.0, 0.0, 255.0)


def brain_normalize(x: np.ndarray, brain: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Per image: clip to its own brain percentiles, scale to [0, 1]; 0 outside the brain.

    Args:
        x: (N, H, W) images; brain: (N, H, W) masks.
    """
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in range(len(x)):
        m = brain[i].astype(bool)
        if not m.any():
            continue
        lo, hi = np.percentile(x[i][m], [lower, upper])
        out[i][m] = (np.clip(x[i][m], lo, hi) - lo) / max(hi - lo, 1e-12)
    return out


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) SSIM maps with a Gaussian window (sigma 1.5), population covariance.

    Args:
        mask: (N, H, W) pixels the windows may use (e.g. the brain); None: every pixel (scikit-image's
            SSIM). With a mask the local means and (co)variances are Gaussian-weighted over the mask only
            (normalised convolution), so a window at the brain's edge does not see the zeroed background:
            an image cannot score well by matching the background. Outside the mask the map is 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=(0, SSIM_SIGMA, SSIM_SIGMA), truncate=SSIM_TRUNCATE, mode="reflect")

    if mask is None:
        weight, m = 1.0, 1.0
    else:
        m = np.asarray(mask, np.float64)
        weight = np.maximum(blur(m), 1e-12)

    def local_mean(x: np.ndarray) -> np.ndarray:
        return blur(x * m) / weight

    ux, uy = local_mean(a), local_mean(b)
    vx = local_mean(a * a) - ux * ux
    vy = local_mean(b * b) - uy * uy
    vxy = local_mean(a * b) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return out if mask is None else np.where(m > 0, out, 0.0)


def interior(shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) mask of pixels at least SSIM_RADIUS from the border."""
    m = np.zeros(shape[-2:], bool)
    m[SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS] = True
    return m


def _region_mean(values: np.ndarray, region: np.ndarray) -> np.ndarray:
    count = region.sum(axis=(1, 2))
    total = (values * region).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def psnr_from_mse(mse: np.ndarray, data_range: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(data_range**2 / mse)
    return np.where(np.isnan(mse), np.nan, np.minimum(psnr, PSNR_CAP))


def region_metrics(
    pred: np.ndarray, real: np.ndarray, regions: dict[str, np.ndarray], data_range: float, ssim_mask: np.ndarray | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """MAE, MSE, PSNR and SSIM per slice for each region.

    Args:
        pred, real: (N, H, W) in the protocol's range.
        regions: name -> (N, H, W) boolean mask.
        data_range: 255 (paper) or 1 (brain).
        ssim_mask: pixels the SSIM windows may use (:func:`ssim_map`); None: the whole slice.

    Returns:
        region -> metric -> (N,) values; NaN where a slice has no pixel of the region.
    """
    diff = np.asarray(pred, np.float64) - np.asarray(real, np.float64)
    smap = ssim_map(pred, real, data_range, ssim_mask)
    inner = interior(pred.shape)
    out = {}
    for name, mask in regions.items():
        mask = mask.astype(bool)
        mse = _region_mean(diff**2, mask)
        out[name] = {
            "mae": _region_mean(np.abs(diff), mask),
            "mse": mse,
            "psnr": psnr_from_mse(mse, data_range),
            "ssim": _region_mean(smap, mask & inner),
        }
    return out


def paper_metrics(pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``paper`` on 0-255 images: regions whole, tumor, healthy."""
    whole = np.ones(pred.shape, bool)
    regions = {"whole": whole, "tumor": tumor, "healthy": brain.astype(bool) & ~tumor}
    return region_metrics(pred, real, regions, 255.0)


def brain_metrics(pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``brain`` on raw images of any range: per-image brain normalisation, regions brain, tumor, healthy."""
    brain = brain.astype(bool)
    p, r = brain_normalize(pred, brain), brain_normalize(real, brain)
    return region_metrics(p, r, {"brain": brain, "tumor": tumor & brain, "healthy": brain & ~tumor}, 1.0, ssim_mask=brain)


def brain_shared_metrics(
    pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray, value_range: tuple[float, float]
) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``brain_shared``: model range -> [0, 1] for both images alike, 0 outside the brain; regions brain, tumor, healthy."""
    lo, hi = value_range
    brain = brain.astype(bool)
    p, r = (np.where(brain, np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0), 0.0) for x in (pred, real))
    return region_metrics(p, r, {"brain": brain, "tumor": tumor & brain, "healthy": brain & ~tumor}, 1.0, ssim_mask=brain)


def through_plane_metrics(pred: np.ndarray, real: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """What a slice-wise translator can get wrong across slices, on (X, Y, Z) volumes in [0, 1] (RAS).

    * ``through_plane_mae``: mean |(pred[z+1] - pred[z]) - (real[z+1] - real[z])| over voxels that
      are brain in both slices -- 0 when the volume changes from slice to slice as the reference
      does, however large the in-plane error; flicker between slices raises it.
    * ``ssim_coronal`` / ``ssim_sagittal``: SSIM (data range 1) on every coronal (y) / sagittal (x)
      plane of the reassembled volume, averaged over brain pixels.
    """
    both = brain[:, :, 1:] & brain[:, :, :-1]
    dz = np.diff(np.asarray(pred, np.float64), axis=2) - np.diff(np.asarray(real, np.float64), axis=2)
    through = float(np.abs(dz)[both].mean()) if both.any() else np.nan
    out = {"through_plane_mae": through}
    for name, axis in (("ssim_coronal", 1), ("ssim_sagittal", 0)):
        p, r, m = (np.moveaxis(a, axis, 0) for a in (pred, real, brain))  # planes first
        smap = ssim_map(p, r, 1.0, m)
        region = m.astype(bool) & interior(p.shape)
        out[name] = float(smap[region].mean()) if region.any() else np.nan
    return out
