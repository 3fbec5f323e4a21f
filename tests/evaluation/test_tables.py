import pandas as pd

from mrtrans.config import EvalConfig


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
