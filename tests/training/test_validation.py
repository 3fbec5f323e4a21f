"""Validation patients, best.pt and the checkpoint a report names (issue 27, item 5)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrtrans.checkpoint import load_checkpoint
from mrtrans.config import TrainConfig, load_config
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError

from helpers import TINY


def test_validation_patients_are_held_out_of_training_and_test(prepared_val: Path, prepared: Path) -> None:
    manifest = pd.read_csv(prepared_val / "manifest.csv")
    patients = {split: set(manifest.loc[manifest["split"] == split, "subject"]) for split in ("train", "val", "test")}
    assert patients["val"] and not patients["val"] & (patients["train"] | patients["test"])
    assert not patients["train"] & patients["test"]
    data = PreparedSlices(prepared_val)
    assert data.has_validation and len(data.validation("flair")) == len(data.validation("seg")) == 8
    assert len(data.train_paired("flair")) == len(data.train_paired("t1")) == 16
    paired = manifest[(manifest["split"] == "train") & (manifest["domain"] == "paired")]
    assert set(paired["subject"]) <= patients["train"] - patients["val"]
    # the test patients are drawn first: holding out validation patients leaves the test set as it was
    for key in ("flair", "t1", "seg"):
        np.testing.assert_array_equal(data.test(key), PreparedSlices(prepared).test(key))


def _train(data: Path, out: Path, steps: int, **sets) -> Path:
    from mrtrans.training.loop import train

    cfg = load_config(TrainConfig, ["cyclegan", TINY], {"run.max_steps": steps, **sets})
    return train(data, out, Direction.parse("flair2t1"), cfg, show_progress=False)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_training_scores_the_validation_slices_and_never_reads_the_test_set(
    prepared_val: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = []
    original = PreparedSlices._load

    def recording(self, relative: str):
        read.append(relative)
        return original(self, relative)

    monkeypatch.setattr(PreparedSlices, "_load", recording)
    _train(prepared_val, tmp_path / "run", 4, **{"run.validate_every": 2, "run.log_every": 3})
    assert read and not [r for r in read if r.startswith("test/")], read
    assert any(r.startswith("val/") for r in read)
    with open(tmp_path / "run" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    scored = {int(r["step"]): float(r["val_mae"]) for r in rows if r["val_mae"]}
    assert sorted(scored) == [2, 4]  # validation steps are logged even when they are not logging steps
    assert all(0 < v < 1 for v in scored.values())
    assert {r["val_mae_flair2t1"] != "" for r in rows if int(r["step"]) in scored} == {True}
    best = load_checkpoint(tmp_path / "run", which="best")
    assert best["selection"]["step"] == min(scored, key=scored.get)
    assert best["selection"]["value"] == pytest.approx(min(scored.values()))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["best_checkpoint"].startswith("lowest validation")


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_best_pt_is_the_step_where_the_validation_metric_peaked(
    prepared_val: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation MAE is made to be lowest at step 2 of 5; best.pt holds step 2's weights, last.pt step 5's."""
    import mrtrans.training.loop as loop

    maes = iter([0.5, 0.2, 0.3, 0.4, 0.6])

    def scripted(translators, data, device, batch_size=16):
        value = next(maes)
        return {"val_mae": value, "val_ssim": 1 - value} | {
            f"val_{m}_{d}": v for d in translators for m, v in (("mae", value), ("ssim", 1 - value))
        }

    monkeypatch.setattr(loop, "validation_scores", scripted)
    seen = {}
    _train(prepared_val, tmp_path / "run", 5, **{"run.validate_every": 1, "run.checkpoint_every": 1})
    best, last = load_checkpoint(tmp_path / "run", which="best"), load_checkpoint(tmp_path / "run")
    assert best["state"]["global_step"] == 2 and last["state"]["global_step"] == 5
    assert best["selection"] == {
        "rule": "lowest validation brain MAE, mean over the run's directions",
        "metric": "mae",
        "value": 0.2,
        "step": 2,
    }
    assert last["selection"]["rule"] == "last step"
    for key in ("gen_s2t", "gen_t2s"):
        seen[key] = any(
            not np.array_equal(best["models"][key][k].numpy(), last["models"][key][k].numpy())
            for k in best["models"][key]
        )
    assert all(seen.values())  # different weights: best.pt is not a copy of last.pt


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_evaluate_and_translate_name_the_checkpoint_they_used(
    prepared_val: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import evaluate, load_translator

    run = tmp_path / "run"
    _train(prepared_val, run, 2, **{"run.validate_every": 1})
    assert load_translator(run, device="cpu", checkpoint="best").chosen.startswith("best.pt (step ")
    assert load_translator(run, device="cpu").chosen == "last.pt (step 2: last step)"
    report = evaluate([run], prepared_val, tmp_path / "report", audit=False, checkpoint="best")
    chosen = pd.read_csv(report / "checkpoints.csv")
    assert chosen["run"].tolist() == ["run"] and chosen["checkpoint"].iloc[0].startswith("best.pt (step ")
    assert "lowest validation brain MAE" in (report / "report.md").read_text()


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_run_without_validation_slices_has_no_best_pt_and_says_so(prepared: Path, tmp_path: Path) -> None:
    from mrtrans.api import load_translator

    _train(prepared, tmp_path / "run", 1)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    with pytest.raises(MrtransError, match="no checkpoints/best.pt.*validation_fraction"):
        load_translator(tmp_path / "run", device="cpu", checkpoint="best")


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_kept_steps_are_checkpoints_a_report_can_name(prepared_val: Path, tmp_path: Path) -> None:
    from mrtrans.checkpoint import resolve_checkpoint

    run = tmp_path / "run"
    _train(prepared_val, run, 4, **{"run.keep_steps": [1, 3], "run.checkpoint_every": 100, "run.validate_every": 2})
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == ["step_0000001.pt", "step_0000003.pt"]
    kept = load_checkpoint(resolve_checkpoint(run, "step-3"))
    assert kept["state"]["global_step"] == 3 and kept["selection"] == {"rule": "kept at step 3", "step": 3}
    assert load_checkpoint(run)["state"]["global_step"] == 4
    with pytest.raises(MrtransError, match="no checkpoints/step_0000002.pt"):
        resolve_checkpoint(run, "step-2")
    with pytest.raises(MrtransError, match="use last, best or step-N"):
        resolve_checkpoint(run, "first")
