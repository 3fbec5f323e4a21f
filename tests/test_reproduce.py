"""`mrtrans reproduce-table1` (issue 14): six methods, one prepared set, one evaluation; resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.config import TrainConfig, load_config
from mrtrans.experiments.reproduce import vgg_missing

from helpers import REPRODUCE_TINY

runner = CliRunner()
TINY = REPRODUCE_TINY
METHODS = ["cyclegan", "discogan", "distancegan", "unit", "harmonicgan_hist", "harmonicgan_vgg"]


@pytest.fixture
def vgg_weights(tmp_path: Path) -> Path:
    """Random weights of VGG-16's shape (the network's values do not matter to the command's plumbing)."""
    from mrtrans.networks.vgg import VGG16Relu43

    path = tmp_path / "vgg16.pth"
    torch.save(VGG16Relu43().state_dict(), path)
    return path


def test_without_vgg_weights_the_vgg_row_says_how_to_supply_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MRTRANS_VGG16_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    why = vgg_missing(load_config(TrainConfig, "harmonicgan_vgg"))
    assert why and "MRTRANS_VGG16_WEIGHTS" in why and str(tmp_path / "hub") in why
    assert vgg_missing(load_config(TrainConfig, "harmonicgan_hist")) is None


@pytest.mark.slow
def test_reproduce_table1_resumes_after_a_kill(tmp_path: Path, vgg_weights: Path) -> None:
    """Kill the command once its first run is finished; the second invocation keeps that run and does the rest."""
    out = tmp_path / "repro"
    env = {**os.environ, "MRTRANS_VGG16_WEIGHTS": str(vgg_weights), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "mrtrans",
        "reproduce-table1",
        "--out",
        str(out),
        "--config",
        str(TINY),
        "--seeds",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "runs" / "cyclegan-s0" / "checkpoints" / "last.pt"
    try:
        deadline = time.time() + 300
        while not first.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert first.exists(), "the first run did not finish"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stamp = first.stat().st_mtime_ns
    assert not (out / "table1.md").exists()

    os.environ["MRTRANS_VGG16_WEIGHTS"] = str(vgg_weights)
    try:
        result = runner.invoke(app, ["reproduce-table1", "--out", str(out), "--config", str(TINY), "--seeds", "1"])
    finally:
        del os.environ["MRTRANS_VGG16_WEIGHTS"]
    assert result.exit_code == 0, result.output
    assert "1 finished earlier" in result.output
    assert first.stat().st_mtime_ns == stamp  # not retrained
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{m}-s0" for m in METHODS)

    table = pd.read_csv(out / "table1.csv")
    assert list(dict.fromkeys(table["method"])) == ["copy-source", *METHODS]
    assert set(table["direction"]) == {"flair2t1", "t12flair"} and table["mae_mean"].notna().all()
    text = (out / "table1.md").read_text()
    assert "## Published" in text and "## Tumor audit per method" in text and "UNIT" in text
    assert text.index("## Published") > text.index("| HarmonicGAN-VGG |")  # beside, not inside

    again = runner.invoke(app, ["reproduce-table1", "--out", str(out), "--config", str(TINY), "--seeds", "2"])
    assert again.exit_code == 2 and "other data, methods, seeds" in again.stderr


@pytest.mark.experiment
def test_the_cpu_preset_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--scale cpu` as a user runs it, on synthetic data and without VGG weights (minutes; its wall time is a
    benchmark in docs/benchmarks.md, not asserted here)."""
    monkeypatch.delenv("MRTRANS_VGG16_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no weights in a user's hub cache either
    result = runner.invoke(app, ["reproduce-table1", "--out", str(tmp_path / "cpu"), "--scale", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cpu" / "table1.csv")
    ran = table[table["method"] != "harmonicgan_vgg"]
    assert list(dict.fromkeys(table["method"])) == ["copy-source", *METHODS]
    assert ran["mae_mean"].notna().all() and table[table["method"] == "harmonicgan_vgg"]["mae_mean"].isna().all()
    assert "not run: ImageNet VGG-16 weights not found" in (tmp_path / "cpu" / "table1.md").read_text()


@pytest.mark.slow
def test_methods_beyond_the_paper_get_their_own_labelled_rows_after_its_six(tmp_path: Path) -> None:
    """reproduce-table1 --method cut --method pix2pix: CUT is 'beyond the paper', pix2pix the paired upper bound
    (trained on paired slices the command prepares for it), both after the paper's rows."""
    from mrtrans.api import reproduce_table1

    table = reproduce_table1(
        tmp_path / "repro",
        config=REPRODUCE_TINY,
        methods=["pix2pix", "cut"],
        overrides={"methods": ["cyclegan"], "seeds": [0]},
    )
    rows = pd.read_csv(table.parent / "table1.csv")
    names = list(dict.fromkeys(rows["paper_name"]))
    assert names == ["copy-source", "CycleGAN", "cut (beyond the paper)", "pix2pix (paired, upper bound)"]
    assert rows["mae_mean"].notna().all() and set(rows["direction"]) == {"flair2t1", "t12flair"}
    text = table.read_text()
    assert "| pix2pix (paired, upper bound) |" in text and "not a competitor in their ranking" in text
