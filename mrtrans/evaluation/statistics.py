"""Uncertainty of report numbers: bootstrap over patients, paired comparisons, spread over seeds.

Test slices are clustered in patients (several slices of one brain are not independent), so every
confidence interval resamples **patients** with replacement and recomputes the statistic from their
slices (percentile bootstrap; Efron & Tibshirani 1993). A mean over slices is the ratio
sum(values) / count(slices) over the resampled patients; a lesion rate is sum(removed) /
sum(reference lesions). Paired comparisons work on per-patient means: their mean difference, its
bootstrap interval, and the Wilcoxon signed-rank test of the differences (scipy).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def bootstrap_ratio(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """sum(numerator) / sum(denominator) over patients and its bootstrap interval.

    Args:
        numerator, denominator: (P,) one value per patient (e.g. sum of a metric over the patient's
            slices, and the patient's slice count).
        resamples: bootstrap resamples of the P patients.
        seed: seed of the resampling.
        level: confidence level of the percentile interval.

    Returns:
        (estimate, low, high); NaN where the denominator is 0.
    """
    num = np.asarray(numerator, np.float64)
    den = np.asarray(denominator, np.float64)
    if len(num) == 0 or den.sum() <= 0:
        return np.nan, np.nan, np.nan
    estimate = num.sum() / den.sum()
    idx = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    d = den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1), np.nan)
    if np.isnan(ratios).all():
        return estimate, np.nan, np.nan
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(estimate), float(low), float(high)


def min_wilcoxon_p(n: int) -> float:
    """Smallest two-sided p-value the exact Wilcoxon signed-rank test can give with ``n`` non-zero differences:
    every difference of one sign, probability 2 / 2^n (0.0625 at n = 5, 0.5 at n = 2)."""
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))


def paired_difference(run: np.ndarray, reference: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> dict:
    """Per-patient paired comparison: mean of run - reference, its bootstrap CI, Wilcoxon p-value.

    A test that cannot reach ``alpha = 1 - level`` with its number of patients (:func:`min_wilcoxon_p`) gives
    no p-value: ``p_wilcoxon`` is NaN and ``p_note`` says why in words.

    Args:
        run, reference: (P,) per-patient means of the same patients, same order.
    """
    diff = np.asarray(run, np.float64) - np.asarray(reference, np.float64)
    diff = diff[~np.isnan(diff)]
    mean, low, high = bootstrap_ratio(diff, np.ones_like(diff), resamples, seed, level)
    nonzero = int(np.count_nonzero(diff))
    floor, alpha = min_wilcoxon_p(nonzero), 1 - level
    p, note = np.nan, ""
    if nonzero == 0:
        note = "no difference in any patient"
    elif floor > alpha:
        note = f"cannot decide: {nonzero} patients with a difference, smallest attainable p {floor:.3g} > {alpha:.3g}"
    else:
        p = float(stats.wilcoxon(diff).pvalue)
    return {"n_patients": len(diff), "mean_difference": mean, "ci_low": low, "ci_high": high, "p_wilcoxon": p,
            "p_min_attainable": floor, "p_note": note}  # fmt: skip
