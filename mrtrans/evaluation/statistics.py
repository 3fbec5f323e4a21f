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


def _unit_weights(patients: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, units) how often each unit is drawn: patients with replacement, then within each drawn patient its
    units with replacement (as many draws as the patient has units, per time the patient was drawn)."""
    labels, index = np.unique(patients, return_inverse=True)
    weights = np.zeros((resamples, len(patients)))
    drawn = rng.integers(0, len(labels), size=(resamples, len(labels)))
    for g in range(len(labels)):
        units = np.flatnonzero(index == g)
        times = (drawn == g).sum(axis=1)  # (resamples,) how often patient g was drawn
        weights[:, units] = rng.multinomial(times * len(units), np.full(len(units), 1 / len(units)))
    return weights


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
    rng = np.random.default_rng(seed)
    low, high = np.percentile(
        _bootstrap_differences(a, b, patients, resamples, rng), [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    )
    return out | {
        "difference": float(a.mean() - b.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "rate_a": float(a.mean()),
        "rate_b": float(b.mean()),
    }


def _bootstrap_differences(
    a: np.ndarray, b: np.ndarray, patients: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(resamples,) bootstrap replicates of rate(a) - rate(b) (:func:`hierarchical_bootstrap_difference`)."""
    weights = _unit_weights(patients, resamples, rng)
    seeds_a = rng.multinomial(len(a), np.full(len(a), 1 / len(a)), size=resamples).astype(np.float64)
    seeds_b = rng.multinomial(len(b), np.full(len(b), 1 / len(b)), size=resamples).astype(np.float64)
    total = weights.sum(axis=1)

    def rates(seeds: np.ndarray, hits: np.ndarray) -> np.ndarray:
        return np.einsum("rs,su,ru->r", seeds, hits, weights) / (seeds.sum(axis=1) * total)

    return rates(seeds_a, a) - rates(seeds_b, b)


# The answers of a claim test (docs/evaluation.md). "equivalent" and "inconclusive" differ: the first says the two
# rates are within the margin of each other, the second that the interval is too wide to say either way.
ANSWERS = ("better", "worse", "equivalent", "inconclusive", "not at this scale", "cannot decide")


def claim_answer(difference: dict[str, float], margin: float) -> str:
    """Words for a difference of a bad outcome (a - b, lower is better for a), from its interval:

    * ``better``: the whole interval below -margin; ``worse``: the whole interval above +margin;
    * ``equivalent``: the whole interval inside [-margin, +margin] (the rates are within the margin);
    * ``inconclusive``: the interval crosses -margin or +margin (too wide to tell; it may still exclude 0);
    * ``cannot decide``: no interval.
    """
    low, high = difference.get("ci_low", np.nan), difference.get("ci_high", np.nan)
    if np.isnan(low) or np.isnan(high):
        return "cannot decide"
    if high < -margin:
        return "better"
    if low > margin:
        return "worse"
    if low >= -margin and high <= margin:
        return "equivalent"
    return "inconclusive"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _intercepts(rates: np.ndarray, effects: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row, the intercept c with sum_p w_p sigmoid(c + u_p) / sum_p w_p = rate (bisection on the logit scale).

    Args:
        rates: (..., ) target rates; effects: (..., P) patient effects u_p; weights: (P,) units per patient.
    """
    low, high = np.full(rates.shape, -30.0), np.full(rates.shape, 30.0)
    for _ in range(50):
        mid = (low + high) / 2
        mean = (weights / (1 + np.exp(-(mid[..., None] + effects)))).sum(-1) / weights.sum()
        low, high = np.where(mean < rates, mid, low), np.where(mean < rates, high, mid)
    return (low + high) / 2


def simulated_power(
    units_per_patient: np.ndarray,
    seeds: int,
    reference_rate: float,
    difference: float,
    margin: float,
    seed_sd: float,
    patient_logit_sd: float = 1.0,
    level: float = 0.95,
    resamples: int = 400,
    simulations: int = 200,
    rng_seed: int = 0,
) -> dict[str, float]:
    """Share of simulated comparisons that answer ``better`` and ``worse`` when the true rate difference is
    ``difference`` (method - reference), with this comparison's structure: its patients and their units, its
    seeds per method, the claim rule and bootstrap (:func:`claim_answer`, :func:`hierarchical_bootstrap_difference`).

    Model: each patient has a logit effect u_p ~ N(0, ``patient_logit_sd``^2), shared by both methods (the same
    lesions); each run (method, seed) has its rate drawn around the method's (reference_rate, or reference_rate +
    difference) with standard deviation ``seed_sd``; within it a unit of patient p is a hit with probability
    sigmoid(c + u_p), c chosen so that the run's mean over units equals its rate.
    """
    counts = np.asarray(units_per_patient, np.int64)
    counts = counts[counts > 0]
    patients = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(rng_seed)
    rates = np.array([reference_rate + difference, reference_rate])
    answers = {"better": 0, "worse": 0, "equivalent": 0, "inconclusive": 0}
    for _ in range(simulations):
        effects = rng.normal(0.0, patient_logit_sd, len(counts))
        run_rates = np.clip(rates[:, None] + rng.normal(0.0, seed_sd, (2, seeds)), 1e-4, 1 - 1e-4)  # (2, seeds)
        c = _intercepts(run_rates, np.broadcast_to(effects, (*run_rates.shape, len(counts))), counts)
        p = 1 / (1 + np.exp(-(c[..., None] + effects[patients])))  # (2, seeds, units)
        hits = (rng.random(p.shape) < p).astype(np.float64)
        diffs = _bootstrap_differences(hits[0], hits[1], patients, resamples, rng)
        low, high = np.percentile(diffs, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
        answers[claim_answer({"ci_low": low, "ci_high": high}, margin)] += 1
    return {k: v / simulations for k, v in answers.items()}


def detectable_difference(
    units_per_patient: np.ndarray,
    seeds: int,
    reference_rate: float,
    margin: float,
    seed_sd: float,
    patient_logit_sd: float = 1.0,
    level: float = 0.95,
    power: float = 0.8,
    step: float = 0.025,
    resamples: int = 400,
    simulations: int = 200,
    rng_seed: int = 0,
) -> dict[str, float]:
    """The smallest true differences this comparison calls ``better`` (a decrease) and ``worse`` (an increase)
    with probability ``power``, on a grid of ``step`` searched by bisection (power rises with the difference;
    :func:`simulated_power`); NaN where no difference the reference rate leaves room for reaches it.

    Returns:
        detectable_better (a positive number of rate points: the decrease), detectable_worse (the increase).
    """
    out = {}
    for name, sign, room in (("better", -1, reference_rate), ("worse", 1, 1 - reference_rate)):

        def reaches(size: float, name: str = name, sign: int = sign) -> bool:
            share = simulated_power(
                units_per_patient,
                seeds,
                reference_rate,
                sign * size,
                margin,
                seed_sd,
                patient_logit_sd,
                level,
                resamples,
                simulations,
                rng_seed,
            )[name]
            return share >= power

        # Power rises with the difference: bisection over the grid (about log2(room / step) + 1 simulations,
        # not one per step; the deciding run's 16 comparisons took over 10 minutes with the linear search).
        sizes = np.arange(step, room + 1e-9, step)
        found = np.nan
        if len(sizes) and reaches(float(sizes[-1])):
            low, high = 0, len(sizes) - 1  # sizes[high] reaches the power
            while low < high:
                mid = (low + high) // 2
                low, high = (low, mid) if reaches(float(sizes[mid])) else (mid + 1, high)
            found = round(float(sizes[high]), 6)
        out[f"detectable_{name}"] = found
    return out
