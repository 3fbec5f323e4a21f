"""``mrtrans demo``: the whole job end to end on synthetic data, small enough for a laptop CPU.

synthetic BraTS subjects -> prepare-brats (64x64 slices) -> train CycleGAN and HarmonicGAN-histogram
(``cpu_small`` preset) -> translate one whole volume -> evaluate both runs -> report folder.
Each stage calls the same function as its own command, with the same config files; on a machine
with CUDA the training and translation use the GPU.

The demo folder is resumable: run the same command again after an interrupt (Ctrl-C, a kill) and it continues
where it stopped - finished stages are kept, a training run continues from its last checkpoint (written at least
every minute, ``run.checkpoint_seconds``). :func:`demo_status` says where an interrupted demo stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrtrans.checkpoint import load_checkpoint
from mrtrans.config import EvalConfig, PrepareConfig, SynthConfig, TrainConfig, epoch_schedule, load_config
from mrtrans.data_prep.prepare import prepare_brats
from mrtrans.errors import MrtransError
from mrtrans.evaluation.evaluate import evaluate_runs
from mrtrans.experiments.grid import TrainJob, train_grid
from mrtrans.experiments.workspace import Workspace
from mrtrans.inference.translate import load_translator, translate_files
from mrtrans.outputs import OutputKind
from mrtrans.synth import write_synthetic_brats


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
    checkpoint_every: int = 500  # steps; and at least every minute (run.checkpoint_seconds)


METHODS = ("cyclegan", "harmonicgan_hist")


def run_demo(out: Path, plan: DemoPlan = DemoPlan(), overwrite: bool = False) -> Path:
    """Run every stage into ``out`` (continuing a demo an earlier call left there) and return the report folder.

    Raises:
        MrtransError: ``out`` holds something else than a demo of this plan (``overwrite``: a demo is replaced).
    """
    out = Path(out)
    with Workspace.lock(out):
        if overwrite:
            Workspace.fresh(out, OutputKind.demo, overwrite=True)
        return _stages(Workspace.resume(out, OutputKind.demo, plan, None), plan)


def demo_status(out: Path, plan: DemoPlan = DemoPlan()) -> str:
    """Where a demo in ``out`` stands, in words, for a user who interrupted it (which runs are finished, at which
    step the others' last checkpoints are)."""

    out = Path(out)
    parts = []
    for method in METHODS:
        final, partial = out / "runs" / method, out / "runs" / f".partial-{method}"
        if final.is_dir():
            parts.append(f"{method} trained")
        elif (partial / "checkpoints" / "last.pt").is_file():
            state = load_checkpoint(partial / "checkpoints" / "last.pt").get("state", {})
            parts.append(f"{method} saved at step {state.get('global_step', '?')}")
        else:
            parts.append(f"{method} not started" if not partial.exists() else f"{method} before its first checkpoint")
    return "; ".join(parts)


def _stages(ws: Workspace, plan: DemoPlan) -> Path:

    out, stage = ws.out, ws.stage
    stage(f"1/5 synth-brats: {plan.subjects} subjects of {'x'.join(map(str, plan.shape))} -> {out / 'brats'}")
    if not (out / "brats").is_dir():
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
    if not (out / "prepared").is_dir():
        prepare_brats(out / "brats", out / "prepared", prep)

    schedule = {
        **epoch_schedule(plan.epochs),
        "run.seed": plan.seed,
        "run.log_every": 20,
        "run.sample_every": 500,
        "run.checkpoint_every": plan.checkpoint_every,
        "run.checkpoint_seconds": 60,  # an interrupt loses at most a minute of training, however slow the machine
    }
    methods = METHODS
    stage(f"3/5 train {' and '.join(methods)} flair2t1 ({plan.epochs} epochs) -> {out / 'runs'}")
    grid = [
        TrainJob(out / "prepared", out / "runs" / m, "flair2t1", load_config(TrainConfig, [m, "cpu_small"], schedule))
        for m in methods
    ]
    runs = train_grid(grid, jobs=1, stage=stage, show_progress=True)

    subject = sorted(p for p in (out / "brats").iterdir() if p.is_dir())[0]
    flair = subject / f"{subject.name}_flair.nii.gz"
    translated = out / "translated" / f"{subject.name}_t1_from_flair.nii.gz"
    stage(f"4/5 translate {flair.name} with harmonicgan_hist -> {translated}")
    report = translate_files([flair], translated, load_translator(runs[1]))
    if report.failed:
        raise MrtransError(f"demo translation failed: {report.failed[0][1]}")

    stage(f"5/5 evaluate both runs -> {out / 'report'}")
    ev = load_config(
        EvalConfig,
        "default",
        {"audit.steps": plan.audit_steps, "segmentation.steps": plan.audit_steps},
        folder="evaluation",
    )
    evaluate_runs(runs, out / "prepared", out / "report", ev, cache_dir=out / "cache", overwrite=True)
    stage("done")
    return out / "report"
