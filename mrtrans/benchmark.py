"""``mrtrans benchmark hallucination``: do translators add or remove tumors? (Cohen et al. 2018)

HarmonicGAN's claim (Zhang, Pfister, Li, ICLR 2019) is that its smoothness term keeps CycleGAN from
adding or removing tumors. Cohen et al. showed how to provoke both: train with a target domain whose
tumor prevalence differs from the source's. With no tumor in the target training slices the
discriminator teaches the generator that tumors do not exist (removal); with only tumors, that they
always do (addition). This module runs that experiment end to end:

1. data: synthetic BraTS-like subjects (``cfg.synth``), or the user's BraTS root;
2. prepare: one balanced set (it trains the audit's detector and holds the test slices) and one set
   per ``target_tumor_fractions`` entry; all share patients and test slices (``prepare-brats`` draws
   each set from its own stream);
3. train every method x setting x seed (``jobs`` at a time);
4. ``mrtrans evaluate`` of every run on the shared test slices;
5. ``hallucination.csv`` (one row per run), ``hallucination_summary.csv`` and ``hallucination.md``
   (mean and standard deviation over seeds, beside the copy-source baseline and the real-target ceiling).

The output folder is resumable: finished datasets and runs are kept and a re-run does only what is
missing (then evaluates again). Nothing outside that folder is written.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mrtrans.config import HallucinationConfig, SynthConfig, TrainConfig, epoch_schedule, load_config, resolve_config_path, to_dict
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path
from mrtrans.outputs import OutputKind, marker_kind

MARKER = "benchmark.json"


@dataclass(frozen=True)
class RunSpec:
    """One training run of the benchmark."""

    setting: str  # e.g. target0 (target training slices 0 % tumor)
    method: str  # label of the method config
    seed: int

    @property
    def name(self) -> str:
        return f"{self.setting}-{self.method}-s{self.seed}"


def setting_name(target_fraction: float) -> str:
    return f"target{round(100 * target_fraction)}"


def method_label(method: str) -> str:
    """``cyclegan`` -> cyclegan; ``sweep/hg_l5.yaml`` -> hg_l5."""
    return Path(method).stem


def check_methods(methods: tuple[str, ...], presets: tuple[str, ...]) -> dict[str, str]:
    """Label -> method config, after checking that every method and preset exists (before any work).

    Raises:
        MrtransError: two methods with one label, or a config that is not found.
    """
    labels = {method_label(m): m for m in methods}
    if len(labels) != len(methods):
        raise MrtransError(f"two methods share a name: {', '.join(methods)}")
    for m in [*methods, *presets]:
        resolve_config_path(m)  # fail before any work on a misspelt method
    return labels


def stage_logger(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` with the seconds since this call in front of every line."""
    start = time.perf_counter()

    def stage(text: str) -> None:
        log(f"[{time.perf_counter() - start:6.0f} s] {text}")

    return stage


def synthetic_root(out: Path, synth: SynthConfig, stage: Callable[[str], None]) -> Path:
    """``out/brats``, written with ``synth`` subjects unless an earlier run of the command made it."""
    from mrtrans.synth import write_synthetic_brats

    root = out / "brats"
    if not root.is_dir():
        stage(f"synthetic data: {synth.subjects} subjects -> {root}")
        write_synthetic_brats(root, synth)
    return root


def remove_partial_run(scratch: Path) -> None:
    """Remove the scratch folder of a run killed mid-way: only one that ``mrtrans train`` marked (or an empty one).

    Raises:
        MrtransError: the folder holds something train did not make.
    """
    if not scratch.exists():
        return
    if marker_kind(scratch) is not OutputKind.run and any(scratch.iterdir()):
        raise MrtransError(f"{scratch}: not a training run this command started; move it away and run the command again")
    shutil.rmtree(scratch)


def train_job(data: str, run: str, direction: str, cfg_dict: dict, threads: int) -> str:
    """Train one run into a scratch folder and move it into place when complete (a worker's job)."""
    import torch

    from mrtrans.config import from_dict
    from mrtrans.data.slices import Direction
    from mrtrans.training.loop import train

    torch.set_num_threads(threads)
    final = Path(run)
    scratch = final.with_name(f".partial-{final.name}")
    train(data, scratch, Direction.parse(direction), from_dict(TrainConfig, cfg_dict), show_progress=False)
    scratch.rename(final)
    return str(final)


# What a re-run may change without invalidating finished data and runs: evaluation is always redone.
NOT_BINDING = ("evaluation", "jobs")


def claim_output(out: Path, marker: str, config: dict, root: Path | None, command: str, what: str) -> None:
    """Create ``out``, or accept it when an earlier run of the same command (same data and runs) made it.

    ``marker`` names the record file written into ``out`` (the config and data root of the latest run); a
    non-empty ``out`` without it, or whose record differs in anything but ``NOT_BINDING``, is refused.

    Raises:
        MrtransError: ``out`` was made by something else, or holds a ``what`` with other data or training.
    """
    record = {"config": config, "root": str(root.resolve()) if root else None}
    path = out / marker

    def binding(rec: dict) -> dict:
        return {"root": rec.get("root"), **{k: v for k, v in rec.get("config", {}).items() if k not in NOT_BINDING}}

    if out.exists() and any(out.iterdir()):
        if not path.is_file():
            raise MrtransError(f"{out}: exists and was not made by `{command}`; choose another --out")
        if binding(json.loads(path.read_text())) != binding(record):
            raise MrtransError(f"{out}: holds a {what} with other data, methods, seeds or training; choose another --out "
                               "(or give the same options as before to continue it)")  # fmt: skip
    else:
        out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a half-written record would lock the folder out of every later run
        tmp.write_text(json.dumps(record, indent=2))  # the evaluation settings of the latest run


def run_hallucination_benchmark(
    out: str | Path,
    cfg: HallucinationConfig,
    root: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the benchmark into ``out`` (resumable) and return the path of ``hallucination.md``.

    Args:
        out: benchmark folder; a new one, or one an earlier run of the same benchmark made.
        cfg: the benchmark (``evaluation/hallucination_cpu.yaml`` is the CPU preset).
        root: a BraTS dataset root; None generates ``cfg.synth`` subjects.

    Raises:
        MrtransError: ``out`` belongs to something else, bad methods, or a failing stage.
    """
    from mrtrans.data.slices import Direction
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.evaluation.evaluate import evaluate_runs

    out = Path(out)
    root = Path(root) if root is not None else None
    direction = Direction.parse(cfg.direction)
    methods = check_methods(cfg.methods, cfg.train_presets)
    claim_output(out, MARKER, to_dict(cfg), root, "mrtrans benchmark hallucination", "benchmark")
    stage = stage_logger(log)
    if root is None:
        root = synthetic_root(out, cfg.synth, stage)

    fractions = {"balanced": 0.5} | {setting_name(f): f for f in cfg.target_tumor_fractions}
    for name, fraction in fractions.items():
        folder = out / "data" / name
        if not folder.is_dir():
            stage(f"prepare {name} (target training slices {fraction:.0%} tumor) -> {folder}")
            prepare_brats(root, folder, replace(cfg.prepare, target_tumor_fraction=fraction))

    specs = [RunSpec(setting_name(f), label, seed) for f in cfg.target_tumor_fractions for label in methods for seed in cfg.seeds]
    todo = [s for s in specs if not (out / "runs" / s.name).is_dir()]
    jobs = min(cfg.jobs, max(1, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    (out / "runs").mkdir(exist_ok=True)
    args = []
    for spec in todo:
        scratch = out / "runs" / f".partial-{spec.name}"
        remove_partial_run(scratch)  # an interrupted run of this benchmark, inside the folder it made
        train_cfg = load_config(TrainConfig, [methods[spec.method], *cfg.train_presets], {
            **epoch_schedule(cfg.epochs), "run.seed": spec.seed, "run.checkpoint_every": 10**9, "run.sample_every": 10**9,
        })  # fmt: skip
        args.append((str(out / "data" / spec.setting), str(out / "runs" / spec.name), cfg.direction, to_dict(train_cfg), threads))
    if todo:
        stage(f"train {len(todo)} of {len(specs)} runs, {jobs} at a time ({threads} threads each)")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for i, path in enumerate(pool.map(train_job, *zip(*args)), 1):
                stage(f"  run {i}/{len(todo)} done: {Path(path).name}")

    stage(f"evaluate {len(specs)} runs on the shared test slices -> {out / 'report'}")
    if (out / "report").is_dir() and marker_kind(out / "report") is None:
        shutil.rmtree(out / "report")  # an unmarked report of mrtrans <= 0.2, inside the folder this benchmark made
    evaluate_runs([out / "runs" / s.name for s in specs], out / "data" / "balanced", out / "report", cfg.evaluation,
                  cache_dir=out / "cache", overwrite=True, log=lambda s: None)  # fmt: skip
    per_run = collect(out / "report", specs)
    summary = summarize_seeds(per_run)
    for frame, name in ((per_run, "hallucination.csv"), (summary, "hallucination_summary.csv")):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    md = out / "hallucination.md"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown(summary, cfg, direction.name))
    stage(f"done: {md}")
    return md


# Per run and direction: what the benchmark reports, from the per-lesion audit of `mrtrans evaluate`:
# removed = share of reference lesions no detected lesion overlaps; added = share of healthy test slices
# with a detected lesion outside every tumor label (and added lesions per slice); contrast error =
# |translated - real| tumor/healthy intensity ratio; brain MAE/SSIM on the shared normalisation.
TUMOR_COLUMNS = ["removed_rate", "healthy_with_added_rate", "added_per_slice", "contrast_abs_error_mean",
                 "contrast_pred_mean", "contrast_real_mean"]  # fmt: skip
COLUMNS = TUMOR_COLUMNS + ["brain_mae", "brain_ssim"]


def collect(report: Path, specs: list[RunSpec]) -> pd.DataFrame:
    """One row per (run, direction) from an evaluation report, with the copy-source, ceiling and sanity rows."""
    tumor = pd.read_csv(report / "tumor_summary.csv")
    summary = pd.read_csv(report / "summary.csv")
    brain = summary[(summary["protocol"] == "brain_shared") & (summary["region"] == "brain")]
    by_name = {s.name: s for s in specs}
    rows = []
    for _, t in tumor.iterrows():
        spec = by_name.get(t["run"])
        b = brain[(brain["run"] == t["run"]) & (brain["direction"] == t["direction"])]
        row = {"setting": spec.setting if spec else "all", "method": spec.method if spec else t["run"],
               "seed": spec.seed if spec else np.nan, "run": t["run"], "direction": t["direction"]}  # fmt: skip
        for column in TUMOR_COLUMNS:
            row[column] = t.get(column, np.nan)
        row["brain_mae"] = float(b["mae_mean"].iloc[0]) if len(b) else np.nan
        row["brain_ssim"] = float(b["ssim_mean"].iloc[0]) if len(b) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_seeds(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1) and count over seeds per setting, method and direction."""
    g = per_run.groupby(["setting", "method", "direction"], sort=False)
    out = g[COLUMNS].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["n_seeds"] = g["seed"].count()
    return out.reset_index()


def _cell(mean: float, std: float, pct: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if pct:
        return f"{mean:.0%}" + ("" if math.isnan(std) else f" ± {std:.0%}")
    return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")


def claim_check(summary: pd.DataFrame, setting: str, direction: str, column: str, reference: str, method: str) -> str:
    """Does ``method`` have a lower ``column`` than ``reference`` by more than the two spreads together?"""
    sel = summary[(summary["setting"] == setting) & (summary["direction"] == direction)].set_index("method")
    if reference not in sel.index or method not in sel.index:
        return "–"
    a, b = sel.loc[method], sel.loc[reference]
    diff = b[f"{column}_mean"] - a[f"{column}_mean"]
    spread = np.nansum([a[f"{column}_std"], b[f"{column}_std"]])
    verdict = "yes" if diff > spread else "no"
    return f"{verdict} ({method} {a[f'{column}_mean']:.0%} vs {reference} {b[f'{column}_mean']:.0%}; standard deviations sum {spread:.0%})"


def markdown(summary: pd.DataFrame, cfg: HallucinationConfig, forward: str) -> str:
    methods = [method_label(m) for m in cfg.methods]
    lines = [
        "# Hallucination benchmark",
        "",
        f"Setting of Cohen et al. (2018): source training slices {cfg.prepare.source_tumor_fraction:.0%} tumor, target "
        f"training slices {', '.join(f'{f:.0%}' for f in cfg.target_tumor_fractions)} tumor "
        f"({', '.join(setting_name(f) for f in cfg.target_tumor_fractions)}); one balanced paired test set "
        f"({cfg.prepare.test_slices} slices). Methods {', '.join(methods)}; seeds {', '.join(map(str, cfg.seeds))}; "
        f"{cfg.epochs} epochs of {cfg.prepare.train_slices} slices. Cells: mean ± standard deviation over seeds. "
        "Per-lesion audit of `mrtrans evaluate` (docs/evaluation.md): removed = share of reference tumor lesions "
        "that the target-sequence detector does not find; added = share of healthy test slices with a detected "
        "lesion outside every tumor label. Brain MAE/SSIM: protocol brain_shared. `copy-source` scores the source "
        "slice itself (no model); `real` is the detector on the real target slices (the audit's ceiling); the "
        "sanity rows show whether the detector sees inpainted-away and pasted-in tumors at all.",
        "",
        "| Setting | Method | Direction | Removed lesions ↓ | Healthy slices with added lesion ↓ | Tumor contrast: translated (real) | "
        "Abs. contrast error ↓ | Brain MAE ↓ | Brain SSIM ↑ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    trained_first = summary.assign(_all=summary["setting"] == "all").sort_values("_all", kind="stable")
    for _, r in trained_first.iterrows():
        pred = r["contrast_pred_mean_mean"]
        contrast = ("–" if pd.isna(pred) else f"{pred:.2f}") + f" ({r['contrast_real_mean_mean']:.2f})"
        lines.append(
            f"| {r['setting']} | {r['method']} | {r['direction']} | {_cell(r['removed_rate_mean'], r['removed_rate_std'], True)} | "
            f"{_cell(r['healthy_with_added_rate_mean'], r['healthy_with_added_rate_std'], True)} | {contrast} | "
            f"{_cell(r['contrast_abs_error_mean_mean'], r['contrast_abs_error_mean_std'], False)} | "
            f"{_cell(r['brain_mae_mean'], r['brain_mae_std'], False)} | {_cell(r['brain_ssim_mean'], r['brain_ssim_std'], False)} |"
        )
    if len(methods) >= 2:
        ref = methods[0]
        lines += ["", f"Does each method remove and add fewer tumors than `{ref}` ({forward}) by more than the sum of "
                  "the two standard deviations over seeds?", ""]  # fmt: skip
        for m in methods[1:]:
            for f in cfg.target_tumor_fractions:
                column = "removed_rate" if f < 0.5 else "healthy_with_added_rate"
                what = "removed" if column == "removed_rate" else "added"
                lines.append(f"- {m}, {setting_name(f)} ({what}): "
                             f"{claim_check(summary, setting_name(f), forward, column, ref, m)}")  # fmt: skip
    return "\n".join(lines) + "\n"
