"""The whole chain: the demo with a tiny plan, and the real BraTS sample (skipped when absent)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.errors import MrtransError
from mrtrans.experiments.demo import DemoPlan, run_demo

from helpers import captured_logs

runner = CliRunner()


@pytest.mark.slow
def test_demo_chain_with_a_tiny_plan(tmp_path):
    plan = DemoPlan(subjects=10, shape=(64, 64, 40), train_slices=16, test_slices=8, epochs=1, audit_steps=5)
    with captured_logs() as lines:
        report = run_demo(tmp_path / "demo", plan)
    assert (report / "report.md").is_file() and (report / "summary.csv").is_file()
    assert len(list((report / "figures").glob("*.png"))) == 4
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary.run) == {"copy-source", "cyclegan", "harmonicgan_hist"}  # the baseline beside the runs
    report_text = (report / "report.md").read_text()
    assert "| copy-source |" in report_text and "Paired comparison with `cyclegan`" in report_text
    translated = list((tmp_path / "demo" / "translated").glob("*.nii.gz"))
    assert len(translated) == 1 and nib.load(translated[0]).shape == (64, 64, 40)
    assert any("5/5 evaluate" in line for line in lines)
    trained = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo" / "runs").rglob("last.pt")}
    with captured_logs() as lines:
        run_demo(tmp_path / "demo", plan)  # the same command again: everything is kept, the report redone
    assert any("all 2 runs finished earlier" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "demo" / "runs").rglob("last.pt")} == trained
    with pytest.raises(MrtransError, match="other data, methods, seeds or training"):
        run_demo(tmp_path / "demo", DemoPlan(subjects=11, shape=(64, 64, 40), train_slices=16, test_slices=8))


@pytest.mark.slow
def test_an_interrupted_demo_continues_from_its_last_checkpoint(tmp_path, monkeypatch):
    import csv

    import mrtrans.training.loop as loop
    from mrtrans.checkpoint import load_checkpoint
    from mrtrans.experiments.demo import demo_status

    plan = DemoPlan(
        subjects=10, shape=(64, 64, 40), train_slices=16, test_slices=8, epochs=1, audit_steps=5, checkpoint_every=4
    )
    real_save = loop.save_checkpoint

    def save_then_interrupt(payload, path):  # Ctrl-C right after HarmonicGAN's first checkpoint
        saved = real_save(payload, path)
        if ".partial-harmonicgan_hist" in str(path) and path.name == "last.pt":
            raise KeyboardInterrupt
        return saved

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "demo", plan)
    assert demo_status(tmp_path / "demo", plan) == "cyclegan trained; harmonicgan_hist saved at step 4"
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    report = run_demo(tmp_path / "demo", plan)  # the same command again
    run = tmp_path / "demo" / "runs" / "harmonicgan_hist"
    assert (report / "report.md").is_file() and load_checkpoint(run)["state"]["global_step"] == 16
    info = __import__("json").loads((run / "run.json").read_text())
    assert [r["step"] for r in info["resumed"]] == [4]  # continued from step 4, not started again
    with open(run / "losses.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 16  # no step logged twice


def test_the_demo_says_where_it_stands_when_interrupted(tmp_path, monkeypatch):
    import mrtrans.experiments.demo as demo

    def interrupted(out, plan=None, overwrite=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 130
    assert "interrupted: cyclegan not started; harmonicgan_hist not started" in result.stderr
    assert "Run the same command again" in result.stderr


@pytest.mark.slow
def test_real_sample_chain(real_sample, tmp_path):
    """prepare -> train a few steps -> translate a whole volume -> evaluate, on real anatomy."""
    prepared, run, report = tmp_path / "prepared", tmp_path / "run", tmp_path / "report"
    steps = [
        [
            "prepare-brats",
            str(real_sample),
            "--out",
            str(prepared),
            "--train-slices",
            "20",
            "--test-slices",
            "10",
            "--workers",
            "2",
        ],
        ["train", "flair2t1", "--data", str(prepared), "--out", str(run), "--preset", "cpu_small", "--max-steps", "3"],
        ["evaluate", str(run), "--data", str(prepared), "--out", str(report), "--no-audit"],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args[0], result.output)
    flair = sorted(real_sample.glob("*/*_flair.nii.gz"))[0]
    out = tmp_path / "t1.nii.gz"
    result = runner.invoke(app, ["translate", str(flair), "--model", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    src, dst = nib.load(flair), nib.load(out)
    assert dst.shape == src.shape and np.allclose(dst.affine, src.affine)
    summary = pd.read_csv(report / "summary.csv")
    assert (summary[(summary.protocol == "paper") & (summary.region == "whole")].n_slices == 10).all()
