"""``mrtrans demo``: the whole job end to end on synthetic data, small enough for a laptop CPU.

synthetic BraTS subjects -> prepare-brats (64x64 slices) -> train CycleGAN and HarmonicGAN-histogram
(``cpu_small`` preset) -> translate one whole volume -> evaluate both runs -> report folder.
Each stage calls the same function as its own command, with the same config files; on a machine
with CUDA the training and translation use the GPU.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrtrans.config import EvalConfig, PrepareConfig, SynthConfig, TrainConfig, epoch_schedule, load_config
from mrtrans.errors import MrtransError
from mrtrans.outputs import MARKER, OutputKind, check_output, output_lock, write_marker


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo; the defaults take about fifteen minutes on two CPU cores."""

    subjects: int = 32
    tumor_fraction: float = 0.9
    shape: tuple[int, int, int] = (64, 64, 48)
    image_size: int = 64
    train_slices: int = 100
    test_slices: int = 40
    min_tumor_pixels: int = 10
    min_brain_fraction: float = 0.15
    epochs: int = 24
    audit_steps: int = 400
    seed: int = 0


DEMO_ENTRIES = {"brats", "prepared", "runs", "translated", "report", "cache"}


def _legacy_demo_folder(out: Path) -> bool:
    """An unmarked folder that holds exactly what an older demo wrote (and nothing else)."""
    if not out.is_dir() or (out / MARKER).exists():
        return False
    names = {p.name for p in out.iterdir()}
    return bool(names) and names <= DEMO_ENTRIES and (out / "prepared" / "prepare.json").is_file()


def run_demo(
    out: Path, plan: DemoPlan = DemoPlan(), overwrite: bool = False, log: Callable[[str], None] = print
) -> Path:
    """Run every stage into ``out`` and return the report folder.

    Raises:
        MrtransError: ``out`` exists and is not empty (without ``overwrite``), or is not a demo folder.
    """
    out = Path(out)
    with output_lock(out):
        _claim(out, overwrite)
        return _stages(out, plan, log)


def _claim(out: Path, overwrite: bool) -> None:
    """Make ``out`` an empty, marked demo folder (replacing an earlier demo only with ``overwrite``)."""
    if _legacy_demo_folder(out):
        write_marker(out, OutputKind.demo)  # made by the demo of mrtrans < 0.2, before folders were marked
    check_output(out, OutputKind.demo, overwrite)
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)  # a demo folder (its marker says so): everything in it was made by the demo
    out.mkdir(parents=True)
    write_marker(out, OutputKind.demo)


def _stages(out: Path, plan: DemoPlan, log: Callable[[str], None]) -> Path:
    from mrtrans.data.slices import Direction
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.evaluation.evaluate import evaluate_runs
    from mrtrans.inference.translate import load_translator, translate_files
    from mrtrans.synth import write_synthetic_brats
    from mrtrans.training.loop import train

    start = time.perf_counter()

    def stage(text: str) -> None:
        log(f"[{time.perf_counter() - start:6.0f} s] {text}")

    stage(f"1/5 synth-brats: {plan.subjects} subjects of {'x'.join(map(str, plan.shape))} -> {out / 'brats'}")
    write_synthetic_brats(out / "brats", SynthConfig(plan.subjects, plan.shape, plan.tumor_fraction, plan.seed))

    stage(f"2/5 prepare-brats -> {out / 'prepared'}")
    prep = load_config(
        PrepareConfig,
        "paper_protocol",
        {
            "train_slices": plan.train_slices,
            "test_slices": plan.test_slices,
            "image_size": plan.image_size,
            "min_tumor_pixels": plan.min_tumor_pixels,
            "min_brain_fraction": plan.min_brain_fraction,
            "seed": plan.seed,
        },
        folder="data_prep",
    )
    prepare_brats(out / "brats", out / "prepared", prep)

    direction = Direction.parse("flair2t1")
    runs = []
    for method in ("cyclegan", "harmonicgan_hist"):
        run = out / "runs" / method
        cfg = load_config(
            TrainConfig,
            [method, "cpu_small"],
            {
                **epoch_schedule(plan.epochs),
                "run.seed": plan.seed,
                "run.log_every": 20,
                "run.sample_every": 500,
                "run.checkpoint_every": 500,
            },
        )
        stage(f"3/5 train {method} flair2t1 ({plan.epochs} epochs) -> {run}")
        train(out / "prepared", run, direction, cfg)
        runs.append(run)

    subject = sorted(p for p in (out / "brats").iterdir() if p.is_dir())[0]
    flair = subject / f"{subject.name}_flair.nii.gz"
    translated = out / "translated" / f"{subject.name}_t1_from_flair.nii.gz"
    stage(f"4/5 translate {flair.name} with harmonicgan_hist -> {translated}")
    report = translate_files([flair], translated, load_translator(runs[1]))
    if report.failed:
        raise MrtransError(f"demo translation failed: {report.failed[0][1]}")

    stage(f"5/5 evaluate both runs -> {out / 'report'}")
    ev = load_config(EvalConfig, "default", {"audit.steps": plan.audit_steps}, folder="evaluation")
    evaluate_runs(runs, out / "prepared", out / "report", ev, cache_dir=out / "cache", log=lambda s: None)
    stage("done")
    return out / "report"
