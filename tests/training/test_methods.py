"""UNIT, DiscoGAN and DistanceGAN (issue 14), CUT and FastCUT (issue 27): a few hundred CPU steps each,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mrtrans.config import TrainConfig, load_config
from mrtrans.domain import Direction

METHODS = {  # method config -> the loss that must fall over a few hundred steps
    "unit": "rec_s",
    "discogan": "cycle_s",
    "distancegan": "distance_s2t",
    "distancegan_cycle": "cycle_s",
    "cut": "nce_s2t",
    "fastcut": "nce_s2t",
}


STEPS = 200
# PatchNCE falls fast (from about log 257 = 5.5 within tens of steps) and a CUT step costs about two cycle steps
STEPS_OF = {"cut": 60, "fastcut": 60}


@pytest.fixture(scope="module")
def method_runs(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each new method trained STEPS (STEPS_OF) steps on the suite's small prepared set (tiny networks)."""
    from mrtrans.training.loop import train

    folder = tmp_path_factory.mktemp("methods")
    runs = {}
    for method in METHODS:
        generator = {"base_channels": 8} if method == "discogan" else {"base_channels": 8, "num_res_blocks": 2}
        small = {
            "generator": generator,
            "discriminator": {"base_channels": 8},
            "run": {
                "max_steps": STEPS_OF.get(method, STEPS),
                "log_every": 1,
                "sample_every": 10_000,
                "checkpoint_every": 10_000,
            },
        }
        train(
            prepared,
            folder / method,
            Direction.parse("flair2t1"),
            load_config(TrainConfig, [method, small]),
            show_progress=False,
        )
        runs[method] = folder / method
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_a_few_hundred_steps_reduce_the_reconstruction_loss(method_runs: dict[str, Path], method: str) -> None:
    with open(method_runs[method] / "losses.csv") as f:
        values = [float(row[METHODS[method]]) for row in csv.DictReader(f)]
    assert len(values) == STEPS_OF.get(method, STEPS)
    window = len(values) // 10  # the first and last tenth (20 steps of 200, as before CUT joined)
    first, last = np.mean(values[:window]), np.mean(values[-window:])
    assert last < 0.95 * first, (first, last)


@pytest.mark.slow
def test_translate_and_evaluate_use_every_method(
    method_runs: dict[str, Path], prepared: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import evaluate, translate_files
    from mrtrans.checkpoint import load_checkpoint

    flair = sorted(synth_root.glob("*/*_flair.nii.gz"))[0]
    kinds = {}
    for method, run in method_runs.items():
        kinds[method] = load_checkpoint(run)["kind"]
        for direction in ("flair2t1", "t12flair"):
            report = translate_files(
                flair, tmp_path / f"{method}_{direction}.nii.gz", run, direction=direction, device="cpu"
            )
            assert report.written and not report.failed, report.failed
    assert kinds == {
        "unit": "unit",
        "discogan": "discogan",
        "distancegan": "distancegan",
        "distancegan_cycle": "distancegan-cycle",
        "cut": "cut",
        "fastcut": "fastcut",
    }
    folder = evaluate(list(method_runs.values()), prepared, tmp_path / "report", audit=False)
    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary["run"]) == {"copy-source", *METHODS}
    for method in METHODS:  # every method's run is scored in both directions
        assert set(summary.loc[summary["run"] == method, "direction"]) == {"flair2t1", "t12flair"}, method
