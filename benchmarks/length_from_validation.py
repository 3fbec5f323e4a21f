"""How long should the hallucination benchmark's runs train? A validation curve on subjects its tests never see.

Trains each method of a hallucination preset (default ``evaluation/hallucination_cpu.yaml``) in the balanced
setting on synthetic subjects of another seed (``--synth-seed``, default 4; the preset's test subjects use its
own), for ``--epochs`` epochs of the preset's schedule shape (half constant learning rate, half linear decay),
scoring the validation patients once per epoch (brain MAE, both directions, ``losses.csv``'s ``val_mae``). Prints
per method the epoch of the lowest validation MAE and the first epoch within 2% of it, and appends the table to
docs/benchmarks.md. Rule, stated before running: the preset trains for the largest "within 2%" epoch over methods
and seeds, rounded up to an even number (the schedule halves it), so that every method has reached its plateau
and best.pt (chosen on validation in every run) can land anywhere before the end.

    python benchmarks/length_from_validation.py --out /tmp/length [--epochs 32] [--seeds 1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from mrtrans.config import TrainConfig, epoch_schedule, load_config  # noqa: E402
from mrtrans.data_prep.prepare import prepare_brats  # noqa: E402
from mrtrans.experiments.grid import TrainJob, train_grid  # noqa: E402
from mrtrans.experiments.hallucination import HallucinationConfig  # noqa: E402
from mrtrans.experiments.workspace import stage_logger  # noqa: E402
from mrtrans.synth import write_synthetic_brats  # noqa: E402


def curve(run: Path) -> pd.DataFrame:
    """Validation rows of a run's losses.csv: step, epoch and val_mae."""
    losses = pd.read_csv(run / "losses.csv")
    return losses.loc[losses["val_mae"].notna(), ["step", "epoch", "val_mae"]].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", default="hallucination_cpu", help="the hallucination preset whose length is chosen")
    parser.add_argument("--synth-seed", type=int, default=4, help="subjects the preset's tests never see (they use 3)")
    parser.add_argument("--epochs", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    cfg = load_config(HallucinationConfig, args.config, folder="evaluation")
    if args.synth_seed == cfg.synth.seed:
        parser.error(f"--synth-seed {args.synth_seed} is the preset's own: choose subjects its tests never see")
    stage = stage_logger()
    root, data = args.out / "brats", args.out / "balanced"
    if not root.is_dir():
        write_synthetic_brats(root, dataclasses.replace(cfg.synth, seed=args.synth_seed))
    if not data.is_dir():
        prepare_brats(root, data, dataclasses.replace(cfg.prepare, target_tumor_fraction=0.5))
    methods = {Path(m).stem: m for m in (*cfg.methods, *cfg.ceiling_methods)}
    grid = []
    for label, method in methods.items():
        base = load_config(TrainConfig, [method, *cfg.train_presets])
        per_epoch = math.ceil(cfg.prepare.train_slices / base.data.batch_size)
        for seed in range(args.seeds):
            sets = {
                **epoch_schedule(args.epochs),
                "run.checkpoint_every": 10**9,
                "run.sample_every": 10**9,
                "run.validate_every": per_epoch,
                "run.seed": seed,
            }
            config = load_config(TrainConfig, [method, *cfg.train_presets], sets)
            grid.append(TrainJob(data, args.out / "runs" / f"{label}-s{seed}", cfg.direction, config))
    train_grid(grid, args.jobs, stage, threads=1)

    rows, plateau = [], []
    for job in grid:
        c = curve(job.run)
        best = c.loc[c["val_mae"].idxmin()]
        within = c.loc[c["val_mae"] <= best["val_mae"] * 1.02].iloc[0]
        plateau.append(int(within["epoch"]))
        marks = {e: c.loc[c["epoch"] == e, "val_mae"] for e in (4, 8, 16, 24, args.epochs)}
        rows.append(
            [
                job.run.name,
                f"{int(best['epoch'])} (step {int(best['step'])})",
                f"{best['val_mae']:.4f}",
                str(int(within["epoch"])),
            ]
            + [f"{v.iloc[0]:.4f}" if len(v) else "–" for v in marks.values()]
        )
    chosen = max(plateau) + max(plateau) % 2
    header = ["run", "lowest val MAE at epoch", "lowest val MAE", "first epoch within 2%"] + [
        f"val MAE, epoch {e}" for e in (4, 8, 16, 24, args.epochs)
    ]
    notes = (
        f"Preset {args.config}, balanced setting, synthetic subjects of seed {args.synth_seed} (its tests use "
        f"{cfg.synth.seed}), {args.epochs} epochs (half constant lr, half linear decay), validation patients scored "
        f"once per epoch; 1 thread per run. Rule (stated before running): the preset's length is the largest "
        f"'within 2%' epoch, rounded up to even: **{chosen} epochs**."
    )
    report("Hallucination preset: length from a validation curve", header, rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
