import numpy as np
import pytest
from scipy import stats

from mrtrans.evaluation.statistics import bootstrap_ratio, paired_difference


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
    assert claim_answer(r, 0.05) == "equivalent"  # a point interval inside the margin
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


def test_the_claim_rule_separates_equivalence_from_too_wide_to_tell():
    from mrtrans.evaluation.statistics import claim_answer, hierarchical_bootstrap_difference

    patients = np.repeat(np.arange(20), 10)  # 20 patients, 10 lesions each
    rng = np.random.default_rng(0)
    hits = np.tile((rng.random(200) < 0.5).astype(float), (3, 1))  # three seeds that agree on every lesion
    tight = hierarchical_bootstrap_difference(hits, hits.copy(), patients, 2000, 0)  # and two identical methods
    assert claim_answer(tight, 0.05) == "equivalent"
    few = np.repeat(np.arange(3), 2)  # 3 patients, 2 lesions each: any difference has a wide interval
    a, b = np.tile([1.0, 0, 1, 0, 1, 1], (3, 1)), np.tile([0.0, 1, 1, 0, 0, 1], (3, 1))
    wide = hierarchical_bootstrap_difference(a, b, few, 2000, 0)
    assert wide["ci_low"] < -0.05 < 0.05 < wide["ci_high"] and claim_answer(wide, 0.05) == "inconclusive"
    # an interval that excludes 0 but reaches into the margin is not "worse": still inconclusive
    assert claim_answer({"ci_low": 0.03, "ci_high": 0.58}, 0.05) == "inconclusive"
    assert claim_answer({"ci_low": -0.04, "ci_high": 0.049}, 0.05) == "equivalent"
    assert claim_answer({"ci_low": float("nan"), "ci_high": 0.1}, 0.05) == "cannot decide"


def test_the_detectable_difference_falls_as_lesions_are_added():
    from mrtrans.evaluation.statistics import detectable_difference, simulated_power

    kw = dict(seeds=3, reference_rate=0.5, margin=0.05, seed_sd=0.02, resamples=200, simulations=60)
    few = detectable_difference(np.full(5, 3), **kw)["detectable_better"]
    many = detectable_difference(np.full(30, 10), **kw)["detectable_better"]
    assert many < few  # 300 lesions in 30 patients detect a smaller decrease than 15 in 5
    # no true difference: "better" is rare (about the test's one-sided error rate, or less given the margin)
    null = simulated_power(np.full(30, 10), 3, 0.5, 0.0, 0.05, 0.02, resamples=200, simulations=60)
    assert null["better"] <= 0.05 and null["worse"] <= 0.05
    # a reference rate of 2% leaves no room for a detectable decrease
    assert np.isnan(detectable_difference(np.full(30, 10), **{**kw, "reference_rate": 0.02})["detectable_better"])
