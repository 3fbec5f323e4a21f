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

Every metric is declared once, in :data:`REGISTRY` (function, which direction is better, display
digits, whether the paper reports it, its definition); region scoring, the report's tables, LaTeX,
``metrics.json``, reproduce-table1 and the benchmark read it. Besides the paper's four it holds MS-SSIM
and Pearson's correlation, both recommended for MR image synthesis (Dohmen et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

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
    luminance, contrast_structure = ssim_terms(a, b, data_range, mask)
    return luminance * contrast_structure


def ssim_terms(
    a: np.ndarray, b: np.ndarray, data_range: float, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The two factors of :func:`ssim_map`: luminance l and contrast-structure cs maps (their product is SSIM).

    ``mask`` may hold weights in [0, 1] (a pooled mask at a coarser MS-SSIM scale); both maps are 0 where it is 0.
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
    luminance = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    contrast_structure = (2 * vxy + c2) / (vx + vy + c2)
    if mask is None:
        return luminance, contrast_structure
    return np.where(m > 0, luminance, 0.0), np.where(m > 0, contrast_structure, 0.0)


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


# MS-SSIM (Wang, Simoncelli, Bovik 2003): the weights of its five scales; the coarsest keeps at least
# MS_SSIM_MIN_SIDE pixels a side, so an 11 x 11 window still fits (64 px: 3 scales, 128: 4, >= 256: 5).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = 16


def ms_ssim_scales(shape: tuple[int, ...]) -> int:
    """How many of MS-SSIM's five scales an (H, W) slice allows (at least 1)."""
    side = min(shape[-2:])
    return max(1, min(len(MS_SSIM_WEIGHTS), 1 + int(math.floor(math.log2(max(side, 1) / MS_SSIM_MIN_SIDE)))))


def _pool2(x: np.ndarray) -> np.ndarray:
    """2 x 2 average pooling of (N, H, W) (an odd last row/column is dropped, as torch's avg_pool2d does)."""
    n, h, w = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].astype(np.float64)
    return x.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ms_ssim_factors(
    pred: np.ndarray,
    real: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    first: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """MS-SSIM's factor map at each scale of :func:`ms_ssim_scales`: cs, and l * cs at the coarsest, on 2 x 2
    average-pooled images (and mask). They do not depend on the region, so a stack computes them once for all its
    regions; ``first``: :func:`ssim_terms` at scale 0 when the caller already has them (SSIM's own)."""
    scales = ms_ssim_scales(pred.shape)
    a, b = np.asarray(pred, np.float64), np.asarray(real, np.float64)
    m = None if mask is None else np.asarray(mask, np.float64)
    factors = []
    for s in range(scales):
        luminance, cs = first if (s == 0 and first is not None) else ssim_terms(a, b, data_range, m)
        factors.append(luminance * cs if s == scales - 1 else cs)
        if s < scales - 1:
            a, b = _pool2(a), _pool2(b)
            m = None if m is None else _pool2(m)
    return factors


def ms_ssim(
    pred: np.ndarray,
    real: np.ndarray,
    region: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    factors: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(N,) MS-SSIM per slice over ``region``: prod_s mean_region(cs_s)^w_s, with l * cs at the coarsest scale.

    Each scale is :func:`ssim_terms` (the same windows, covariance and ``mask`` as SSIM) on 2 x 2 average-pooled
    images; the region at scale 0 is SSIM's (pixels >= 5 px from the border), at coarser scales every pooled pixel
    the region touches (the windows reflect at the border). Scales follow :func:`ms_ssim_scales` with the first
    weights renormalised to sum 1, so one scale is SSIM itself. Negative factors are clipped at 0 (as MONAI does).
    ``factors``: :func:`ms_ssim_factors` of the same images, when already computed.
    """
    factors = ms_ssim_factors(pred, real, data_range, mask) if factors is None else factors
    weights = np.asarray(MS_SSIM_WEIGHTS[: len(factors)]) / sum(MS_SSIM_WEIGHTS[: len(factors)])
    r = region.astype(bool) & interior(pred.shape)
    out = np.ones(len(pred))
    for s, (weight, factor) in enumerate(zip(weights, factors)):
        out = out * np.maximum(_region_mean(factor, r), 0.0) ** weight  # NaN (empty region) stays NaN
        if s < len(factors) - 1:
            r = _pool2(region.astype(np.float64) if s == 0 else r.astype(np.float64)) > 0
    return out


def pearson(pred: np.ndarray, real: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(N,) Pearson correlation of the region's pixels per slice; NaN where either image is constant there."""
    mp, mr = _region_mean(pred, region)[:, None, None], _region_mean(real, region)[:, None, None]
    dp, dr = pred - mp, real - mr
    cov, vp, vr = (_region_mean(x, region) for x in (dp * dr, dp * dp, dr * dr))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((vp > 1e-20) & (vr > 1e-20), cov / np.sqrt(vp * vr), np.nan)


@dataclass
class SliceStack:
    """What the metrics of one protocol read, each computed once: (N, H, W) images in the protocol's range."""

    pred: np.ndarray
    real: np.ndarray
    data_range: float
    ssim_mask: np.ndarray | None = None

    @cached_property
    def diff(self) -> np.ndarray:
        return np.asarray(self.pred, np.float64) - np.asarray(self.real, np.float64)

    @cached_property
    def ssim_terms(self) -> tuple[np.ndarray, np.ndarray]:
        return ssim_terms(self.pred, self.real, self.data_range, self.ssim_mask)

    @cached_property
    def ssim(self) -> np.ndarray:
        luminance, contrast_structure = self.ssim_terms
        return luminance * contrast_structure  # ssim_map's product

    @cached_property
    def ms_ssim_factors(self) -> list[np.ndarray]:  # one computation for every region
        return ms_ssim_factors(self.pred, self.real, self.data_range, self.ssim_mask, first=self.ssim_terms)

    @cached_property
    def interior(self) -> np.ndarray:
        return interior(self.pred.shape)


@dataclass(frozen=True)
class Metric:
    """One image metric: how it is computed on a region, read and printed."""

    name: str
    label: str  # column header
    higher_is_better: bool
    compute: Callable[[SliceStack, np.ndarray], np.ndarray]  # (stack, (N, H, W) region) -> (N,) values, NaN if empty
    definition: str
    digits: int = 3  # below 10; values of 10 or more get 2 (PSNR in dB, MAE/MSE on 0-255)
    in_paper: bool = False  # a column of the paper's Table 1

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "–"
        return f"{value:.{self.digits}f}" if abs(value) < 10 else f"{value:.2f}"


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "mae",
            "MAE",
            False,
            lambda st, r: _region_mean(np.abs(st.diff), r),
            "mean absolute error over the region",
            in_paper=True,
        ),
        Metric(
            "mse",
            "MSE",
            False,
            lambda st, r: _region_mean(st.diff**2, r),
            "mean squared error over the region",
            in_paper=True,
        ),
        Metric(
            "psnr",
            "PSNR",
            True,
            lambda st, r: psnr_from_mse(_region_mean(st.diff**2, r), st.data_range),
            "10 log10(data_range^2 / MSE), capped at 100 dB",
            digits=2,
            in_paper=True,
        ),
        Metric(
            "ssim",
            "SSIM",
            True,
            lambda st, r: _region_mean(st.ssim, r & st.interior),
            "mean of the SSIM map (Gaussian window sigma 1.5, population covariance) over region pixels >= 5 px "
            "from the slice border",
            in_paper=True,
        ),
        Metric(
            "ms_ssim",
            "MS-SSIM",
            True,
            lambda st, r: ms_ssim(st.pred, st.real, r, st.data_range, factors=st.ms_ssim_factors),
            "multi-scale SSIM (Wang et al. 2003): SSIM's windows on 2x2-pooled images, as many of the 5 scales as "
            "the slice allows (64 px: 3), weights renormalised",
        ),
        Metric(
            "pearson",
            "Pearson r",
            True,
            lambda st, r: pearson(st.pred, st.real, r),
            "Pearson correlation of the region's pixel intensities per slice",
        ),
    ]
}
METRICS = tuple(REGISTRY)
PAPER_METRICS = tuple(name for name, metric in REGISTRY.items() if metric.in_paper)


def region_metrics(
    pred: np.ndarray,
    real: np.ndarray,
    regions: dict[str, np.ndarray],
    data_range: float,
    ssim_mask: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Every metric of :data:`REGISTRY` per slice for each region.

    Args:
        pred, real: (N, H, W) in the protocol's range.
        regions: name -> (N, H, W) boolean mask.
        data_range: 255 (paper) or 1 (brain).
        ssim_mask: pixels the SSIM windows may use (:func:`ssim_map`); None: the whole slice.

    Returns:
        region -> metric -> (N,) values; NaN where a slice has no pixel of the region.
    """
    stack = SliceStack(np.asarray(pred, np.float64), np.asarray(real, np.float64), data_range, ssim_mask)
    return {
        name: {m.name: m.compute(stack, mask.astype(bool)) for m in REGISTRY.values()} for name, mask in regions.items()
    }


def paper_metrics(
    pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``paper`` on 0-255 images: regions whole, tumor, healthy."""
    whole = np.ones(pred.shape, bool)
    regions = {"whole": whole, "tumor": tumor, "healthy": brain.astype(bool) & ~tumor}
    return region_metrics(pred, real, regions, 255.0)


def brain_metrics(
    pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``brain`` on raw images of any range: per-image brain normalisation, regions brain, tumor, healthy."""
    brain = brain.astype(bool)
    p, r = brain_normalize(pred, brain), brain_normalize(real, brain)
    return region_metrics(
        p, r, {"brain": brain, "tumor": tumor & brain, "healthy": brain & ~tumor}, 1.0, ssim_mask=brain
    )


def brain_shared_metrics(
    pred: np.ndarray, real: np.ndarray, brain: np.ndarray, tumor: np.ndarray, value_range: tuple[float, float]
) -> dict[str, dict[str, np.ndarray]]:
    """Protocol ``brain_shared``: model range -> [0, 1] for both images alike, 0 outside the brain; regions brain,
    tumor, healthy.
    """
    lo, hi = value_range
    brain = brain.astype(bool)
    p, r = (np.where(brain, np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0), 0.0) for x in (pred, real))
    return region_metrics(
        p, r, {"brain": brain, "tumor": tumor & brain, "healthy": brain & ~tumor}, 1.0, ssim_mask=brain
    )


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
