"""mrtrans benchmark hallucination at a seconds-long size: the whole chain, the table, resumability."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mrtrans.benchmark import claim_check
from mrtrans.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "hallucination"
    result = runner.invoke(app, ["benchmark", "hallucination", "--out", str(out), "--config", "hallucination_tiny"])
    assert result.exit_code == 0, result.output
    return out


def test_benchmark_trains_every_method_setting_and_seed_and_writes_its_table(bench):
    runs = sorted(p.name for p in (bench / "runs").iterdir())
    assert runs == [f"{s}-{m}-s{k}" for s in ("target0", "target100") for m in ("cyclegan", "harmonicgan_hist") for k in (0, 1)]
    per_run = pd.read_csv(bench / "hallucination.csv")
    assert set(per_run["setting"]) >= {"target0", "target100"}
    summary = pd.read_csv(bench / "hallucination_summary.csv")
    trained = summary[summary["setting"] != "all"]
    assert (trained["n_seeds"] == 2).all() and len(trained) == 2 * 2 * 2  # settings x methods x directions
    assert trained["removed_rate_mean"].between(0, 1).all() and trained["brain_mae_mean"].notna().all()
    assert {"copy-source", "real", "sanity-inpainted"} <= set(summary["method"])  # baseline, ceiling, sanity
    md = (bench / "hallucination.md").read_text()
    assert "| target0 | cyclegan | flair2t1 |" in md and "harmonicgan_hist, target0 (removed):" in md
    # The skewed sets really are skewed, and all share the balanced set's test slices.
    t1 = pd.read_csv(bench / "data" / "target0" / "manifest.csv")
    assert (t1[(t1.split == "train") & (t1.domain == "t1")].label == "healthy").all()


def test_a_rerun_reuses_finished_runs_and_foreign_folders_are_refused(bench, tmp_path):
    before = {p.name: p.stat().st_mtime for p in (bench / "runs").iterdir()}
    result = runner.invoke(app, ["benchmark", "hallucination", "--out", str(bench), "--config", "hallucination_tiny"])
    assert result.exit_code == 0, result.output
    assert "train " not in result.output  # nothing retrained
    assert {p.name: p.stat().st_mtime for p in (bench / "runs").iterdir()} == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = runner.invoke(app, ["benchmark", "hallucination", "--out", str(foreign), "--config", "hallucination_tiny"])
    assert result.exit_code == 2 and "was not made by" in result.output
    assert (foreign / "notes.txt").read_text() == "keep"
    marker = json.loads((bench / "benchmark.json").read_text())
    assert marker["config"]["seeds"] == [0, 1]
    result = runner.invoke(app, ["benchmark", "hallucination", "--out", str(bench), "--config", "hallucination_tiny", "--seeds", "3"])
    assert result.exit_code == 2 and "other data, methods, seeds or training" in result.output


def test_claim_check_needs_a_gap_larger_than_both_spreads():
    summary = pd.DataFrame({"setting": ["target0"] * 2, "direction": ["flair2t1"] * 2, "method": ["cyclegan", "hg"],
                            "removed_rate_mean": [0.8, 0.4], "removed_rate_std": [0.1, 0.1]})  # fmt: skip
    assert claim_check(summary, "target0", "flair2t1", "removed_rate", "cyclegan", "hg").startswith("yes")
    summary["removed_rate_std"] = [0.25, 0.2]
    assert claim_check(summary, "target0", "flair2t1", "removed_rate", "cyclegan", "hg").startswith("no")
