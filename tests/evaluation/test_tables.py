import pandas as pd

from mrtrans.config import EvalConfig


def test_instrument_validity_says_when_it_cannot_decide():
    from mrtrans.evaluation.tumor_report import instrument_validity

    def row(run, direction, **values):
        return {"run": run, "direction": direction, **values}

    summary = pd.DataFrame(
        [
            row(
                "real",
                "t12flair",
                lesions=40,
                judgeable_lesions=36,
                keepable_lesions=20,
                healthy_with_added_rate=0.05,
                seg_found_rate=0.95,
            ),
            row("sanity-inpainted", "t12flair", judgeable_erased_rate=0.95, seg_found_rate=0.4),
            row("sanity-healthy-fill", "t12flair", seg_found_rate=0.05),
            row("sanity-pasted-target", "t12flair", healthy_with_added_rate=1.0),
            row("sanity-pasted-source", "t12flair", healthy_with_added_rate=0.9),
            row(
                "real",
                "flair2t1",
                lesions=40,
                judgeable_lesions=4,
                keepable_lesions=4,
                healthy_with_added_rate=0.5,
                seg_found_rate=0.6,
            ),
            row("sanity-inpainted", "flair2t1", judgeable_erased_rate=0.95),
            row("sanity-healthy-fill", "flair2t1", seg_found_rate=0.0),
            row("sanity-pasted-target", "flair2t1", healthy_with_added_rate=1.0),
            row("sanity-pasted-source", "flair2t1", healthy_with_added_rate=0.2),
        ]
    )

    def validity(frame):
        return instrument_validity(frame, EvalConfig()).set_index(["direction", "aspect"])

    v = validity(summary)
    assert all(v.loc[("t12flair", aspect), "decidable"] for aspect in ("removal", "additions", "segmentation"))
    assert "20 keepable of 36 judgeable" in v.loc[("t12flair", "removal"), "reason"]
    assert (
        not v.loc[("flair2t1", "removal"), "decidable"] and "shows 4 of 40" in v.loc[("flair2t1", "removal"), "reason"]
    )
    assert not v.loc[("flair2t1", "additions"), "decidable"] and "50%" in v.loc[("flair2t1", "additions"), "reason"]
    assert (
        not v.loc[("flair2t1", "segmentation"), "decidable"] and "60%" in v.loc[("flair2t1", "segmentation"), "reason"]
    )
    summary.loc[summary.run == "sanity-inpainted", "judgeable_erased_rate"] = 0.5
    assert "inpainted" in validity(summary).loc[("t12flair", "removal"), "reason"]
    summary.loc[summary.run == "real", "keepable_lesions"] = 3  # the source shows too few: erasure cannot be judged
    assert "the source shows only 3" in validity(summary).loc[("t12flair", "removal"), "reason"]
    summary.loc[summary.run == "sanity-healthy-fill", "seg_found_rate"] = 0.3  # the segmenter's floor is too high
    assert not validity(summary).loc[("t12flair", "segmentation"), "decidable"]


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
