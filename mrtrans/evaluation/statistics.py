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
    return {
        "n_patients": len(diff),
        "mean_difference": mean,
        "ci_low": low,
        "ci_high": high,
        "p_wilcoxon": p,
        "p_min_attainable": floor,
        "p_note": note,
    }


def hierarchical_bootstrap_difference(
    hits_a: np.ndarray, hits_b: np.ndarray, patients: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> dict[str, float]:
    """Difference of two rates (a - b) with a hierarchical bootstrap over seeds, patients and units within patients.

    Each method was trained with several seeds and every run scored on the same units (lesions, or healthy
    slices) of the same test patients. A resample draws, independently per method, its seeds with replacement;
    draws the test patients with replacement (the same for both methods: they are scored on the same patients);
    and within each drawn patient its units with replacement (the same for both). The rate of a method is the
    mean of its hits over the drawn seeds and units. Identical runs give a point interval; spread between
    patients, units or seeds widens it.

    Args:
        hits_a, hits_b: (seeds, units) 0/1 outcomes of each method's runs (NaN: unit not scored), units in the
            same order for both.
        patients: (units,) patient of each unit.

    Returns:
        difference (a - b on all data), ci_low, ci_high, rate_a, rate_b, n_units, n_patients.
    """
    a, b = np.asarray(hits_a, np.float64), np.asarray(hits_b, np.float64)
    valid = ~(np.isnan(a).any(axis=0) | np.isnan(b).any(axis=0))
    a, b, patients = a[:, valid], b[:, valid], np.asarray(patients)[valid]
    out = {"n_units": int(valid.sum()), "n_patients": int(len(np.unique(patients)))}
    if not valid.any():
        return out | {"difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "rate_a": np.nan, "rate_b": np.nan}
    rate_a, rate_b = a.mean(), b.mean()
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(patients == p) for p in np.unique(patients)]
    # Unit weights per resample: patients drawn with replacement, then units within each drawn patient.
    weights = np.zeros((resamples, a.shape[1]))
    drawn = rng.integers(0, len(groups), size=(resamples, len(groups)))
    for g, units in enumerate(groups):
        times = (drawn == g).sum(axis=1)  # (resamples,) how often patient g was drawn
        for r in np.flatnonzero(times):
            np.add.at(weights[r], units[rng.integers(0, len(units), size=times[r] * len(units))], 1.0)
    seeds_a = rng.multinomial(len(a), np.full(len(a), 1 / len(a)), size=resamples).astype(np.float64)
    seeds_b = rng.multinomial(len(b), np.full(len(b), 1 / len(b)), size=resamples).astype(np.float64)
    total = weights.sum(axis=1)

    def rates(seeds: np.ndarray, hits: np.ndarray) -> np.ndarray:
        return np.einsum("rs,su,ru->r", seeds, hits, weights) / (seeds.sum(axis=1) * total)

    diffs = rates(seeds_a, a) - rates(seeds_b, b)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return out | {
        "difference": float(rate_a - rate_b),
        "ci_low": float(low),
        "ci_high": float(high),
        "rate_a": float(rate_a),
        "rate_b": float(rate_b),
    }


def claim_answer(difference: dict[str, float], margin: float) -> str:
    """Words for a difference of a bad outcome (a - b, lower is better for a): ``better`` when the whole interval
    lies below -margin, ``worse`` when above +margin, else ``no difference shown``."""
    if np.isnan(difference.get("ci_low", np.nan)):
        return "cannot decide"
    if difference["ci_high"] < -margin:
        return "better"
    if difference["ci_low"] > margin:
        return "worse"
    return "no difference shown"
