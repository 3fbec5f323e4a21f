"""mrtrans benchmark hallucination at a seconds-long size: the whole chain, the table, resumability."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.evaluation.statistics import ANSWERS

from helpers import HALLUCINATION_TINY, REPRODUCE_TINY

runner = CliRunner()
pytestmark = pytest.mark.slow  # every test here trains tiny benchmark runs


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "hallucination"
    result = runner.invoke(app, ["benchmark", "hallucination", "--out", str(out), "--config", str(HALLUCINATION_TINY)])
    assert result.exit_code == 0, result.output
    return out


def test_benchmark_trains_every_method_setting_and_seed_and_writes_its_table(bench):
    runs = sorted(p.name for p in (bench / "runs").iterdir())
    settings = ("balanced", "target0", "target100")
    unpaired = [f"{s}-{m}-s{k}" for s in settings for m in ("cyclegan", "harmonicgan_hist") for k in (0, 1)]
    assert runs == sorted(unpaired + ["balanced-pix2pix-s0", "balanced-pix2pix-s1"])  # the ceiling: balanced only
    for run in runs:  # validation patients (best.pt) and the kept step of the trajectory
        assert {p.name for p in (bench / "runs" / run / "checkpoints").iterdir()} >= {"best.pt", "step_0000004.pt"}
    per_run = pd.read_csv(bench / "hallucination.csv")
    assert set(per_run["setting"]) >= set(settings) and set(per_run["point"]) == {"best", "last", "step-4"}
    summary = pd.read_csv(bench / "hallucination_summary.csv")
    trained = summary[(summary["setting"] != "all") & (summary["point"] == "best")]
    assert (trained["n_seeds"] == 2).all() and len(trained) == (3 * 2 + 1) * 2  # (settings x methods + ceiling) x dirs
    assert trained["brain_mae_mean"].notna().all() and trained["keepable_lesions"].notna().all()
    assert {"keepable_erased_rate_mean", "seg_keepable_missed_rate_mean", "seg_healthy_with_false_rate_mean"} <= set(
        summary.columns
    )
    assert trained.loc[trained["ceiling"], "method"].unique().tolist() == ["pix2pix"]
    assert {"copy-source", "real", "sanity-inpainted", "sanity-healthy-fill", "sanity-pasted-source"} <= set(
        summary["method"]
    )
    md = (bench / "hallucination.md").read_text()
    assert "| balanced | cyclegan | flair2t1 |" in md and "Can the smoothness term act" in md
    assert "pix2pix (paired ceiling)" in md and "When does each method fade tumors?" in md
    assert "**Primary answer: `best`**" in md and "Keepable / judgeable / all lesions" in md
    # The tiny preset's 32x32 slices with the cpu_small networks: lesions of a few pixels, patch 1 -> patch of
    # the config; whatever the graph says, every claim gets one of the answers, with its counts.
    claims = pd.read_csv(bench / "claims.csv")
    assert set(claims["answer"]) <= set(ANSWERS)
    assert set(claims["point"]) == {"best", "last", "step-4"}
    primary = claims[claims["point"] == "best"]
    assert set(zip(primary.setting, primary.outcome)) == {
        ("balanced", "erased"),
        ("balanced", "missed"),
        ("balanced", "added"),
        ("balanced", "false lesion"),
        ("target0", "erased"),
        ("target0", "missed"),
        ("target100", "added"),
        ("target100", "false lesion"),
    }
    assert "pix2pix" not in set(claims["method"]) | set(claims["reference"])  # the ceiling is never compared
    assert {"detectable_better", "detectable_worse", "seed_sd"} <= set(primary.columns)
    assert primary.loc[primary["n_units"] > 0, "seed_sd"].notna().all()  # every comparison with units has one
    graphs = pd.read_csv(bench / "graph.csv")
    assert set(graphs.direction) == {"flair2t1", "t12flair"} and (graphs.patch_size == 1).all()
    small = graphs.set_index("direction")["mechanism_can_act"]
    assert (claims[claims.direction.map(~small)]["answer"] == "not at this scale").all()
    # The skewed sets really are skewed, and all share the balanced set's test slices.
    t1 = pd.read_csv(bench / "data" / "target0" / "manifest.csv")
    assert (t1[(t1.split == "train") & (t1.domain == "t1")].label == "healthy").all()


def test_not_at_this_scale_when_lesions_span_too_few_nodes(bench, tmp_path):
    """The tiny preset with 8x8 patches: every lesion is a node or less, so the graph says the term cannot act and
    every claim is 'not at this scale' (read from the fixture's reports: the answer follows the graph, whatever the
    runs did)."""
    import dataclasses

    from mrtrans.config import load_config
    from mrtrans.experiments import hallucination_report as report
    from mrtrans.experiments.hallucination import HallucinationConfig, _check, run_specs

    (tmp_path / "p8.yaml").write_text("loss:\n  patch_size: 8\n")
    cfg = load_config(HallucinationConfig, str(HALLUCINATION_TINY), {}, folder="evaluation")
    cfg = dataclasses.replace(cfg, train_presets=(*cfg.train_presets, str(tmp_path / "p8.yaml")))
    methods, ceilings = _check(cfg)
    graphs = report.graph_table(bench / "data" / "balanced", cfg, methods)
    assert (graphs.patch_size == 8).all() and not graphs.mechanism_can_act.any()
    claims = report.claim_table(
        bench / "report", run_specs(cfg, methods, ceilings), cfg, methods, graphs, "best", detectable=False
    )
    assert len(claims) == 8 * 1 * 2 and (claims["answer"] == "not at this scale").all()  # 8 outcomes x HG x dirs


def test_a_rerun_reuses_finished_runs_and_foreign_folders_are_refused(bench, tmp_path):
    before = {p.name: p.stat().st_mtime for p in (bench / "runs").iterdir()}
    result = runner.invoke(
        app, ["benchmark", "hallucination", "--out", str(bench), "--config", str(HALLUCINATION_TINY)]
    )
    assert result.exit_code == 0, result.output
    assert "train " not in result.output  # nothing retrained
    assert {p.name: p.stat().st_mtime for p in (bench / "runs").iterdir()} == before
    assert result.output.count("is current (kept)") == 3 and "evaluate " not in result.output  # nor re-scored
    # Scoring the kept steps for one setting only (not binding: evaluation only): that point is scored again,
    # with its runs alone; best and last stay as they were.
    reports = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in bench.glob("report*") if p.is_dir()}
    result = runner.invoke(
        app,
        ["benchmark", "hallucination", "--out", str(bench), "--config", str(HALLUCINATION_TINY)]
        + ["--set", "trajectory_settings=[balanced]"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("is current (kept)") == 2 and "evaluate 6 runs at checkpoint step-4" in result.output
    changed = {n for n, t in reports.items() if (bench / n / "metrics.json").stat().st_mtime_ns != t}
    assert len(changed) == 1, changed
    claims = pd.read_csv(bench / "claims.csv")
    assert set(claims.loc[claims["point"] == "step-4", "setting"]) == {"balanced"}
    assert set(claims.loc[claims["point"] == "last", "setting"]) == {"balanced", "target0", "target100"}
    assert "kept steps: balanced runs only" in (bench / "hallucination.md").read_text()
    # The answer sooner (not binding): best and last only, kept; the claims no longer hold the kept step.
    result = runner.invoke(
        app,
        ["benchmark", "hallucination", "--out", str(bench), "--config", str(HALLUCINATION_TINY)]
        + ["--set", "score_kept_steps=false"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("is current (kept)") == 2 and "evaluate " not in result.output
    assert set(pd.read_csv(bench / "claims.csv")["point"]) == {"best", "last"}
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = runner.invoke(
        app, ["benchmark", "hallucination", "--out", str(foreign), "--config", str(HALLUCINATION_TINY)]
    )
    assert result.exit_code == 2 and "was not made by" in result.output
    assert (foreign / "notes.txt").read_text() == "keep"
    marker = json.loads((bench / ".mrtrans-output.json").read_text())  # the one marker, with the record inside
    assert marker["kind"] == "benchmark" and marker["record"]["config"]["seeds"] == [0, 1]
    assert not (bench / "benchmark.json").exists()
    result = runner.invoke(
        app, ["benchmark", "hallucination", "--out", str(bench), "--config", str(HALLUCINATION_TINY), "--seeds", "3"]
    )
    assert result.exit_code == 2 and "other data, methods, seeds or training" in result.output


def test_an_out_inside_the_dataset_or_a_damaged_record_is_refused_before_writing(synth_root, tmp_path):
    import shutil

    root = shutil.copytree(synth_root, tmp_path / "data")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for command in (
        ["benchmark", "hallucination", str(root), "--out", str(root / "bench"), "--config", str(HALLUCINATION_TINY)],
        ["reproduce-table1", str(root), "--out", str(root / "rep"), "--config", str(REPRODUCE_TINY)],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "inside the input" in result.output, result.output
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written into the dataset
    damaged = [("benchmark.json", t) for t in ("{x", "[1, 2]", '{"config": 5}')]  # an older version's record file
    damaged += [(".mrtrans-output.json", t) for t in ("{x", '{"kind": "benchmark", "record": 5}')]
    for i, (name, text) in enumerate(damaged):
        out = tmp_path / f"b{i}"
        out.mkdir()
        (out / name).write_text(text)
        result = runner.invoke(
            app, ["benchmark", "hallucination", "--out", str(out), "--config", str(HALLUCINATION_TINY)]
        )
        assert result.exit_code == 2 and "damaged record" in result.output, result.output
        assert (out / name).read_text() == text
