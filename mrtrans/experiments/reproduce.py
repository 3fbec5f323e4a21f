"""``mrtrans reproduce-table1``: HarmonicGAN's Table 1 (BRATS FLAIR <-> T1, six methods) in one command.

1. data: the user's BraTS root prepared with ``cfg.prepare`` (the paper's protocol by default), or
   synthetic subjects (``cfg.synth``) prepared with ``cfg.synth_prepare``;
2. train every method x seed (``jobs`` at a time) on that one prepared set; HarmonicGAN-VGG only when
   ImageNet VGG-16 weights are found (its row says how to supply them otherwise);
3. ``mrtrans evaluate`` of every run on the shared paired test slices (with the tumor audit);
4. ``table1.md``/``table1.csv``: the paper's layout (protocol "paper": whole slices in 0-255), each cell
   the mean over test slices with its patient-bootstrap confidence interval (one seed) or the mean and
   standard deviation over seeds, the copy-source baseline beside; then the paper's published numbers
   in their own table, and the tumor audit per method.

The folder is resumable: a finished run (its folder moved into place at the end of training) is never
retrained; a run killed mid-way is started again; the evaluation is always redone. Nothing outside the
output folder is written.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mrtrans.config import (
    EvalConfig,
    PrepareConfig,
    SmoothFeatures,
    SynthConfig,
    TrainConfig,
    bounds,
    epoch_schedule,
    load_config,
    to_dict,
)
from mrtrans.data_prep.prepare import prepare_brats
from mrtrans.domain import Direction, direction_label
from mrtrans.evaluation.evaluate import PAIRED_LABEL, evaluate_runs
from mrtrans.evaluation.metrics import METRICS, PAPER_METRICS, REGISTRY
from mrtrans.experiments.grid import TrainJob, train_grid
from mrtrans.experiments.workspace import Workspace, check_methods, method_label
from mrtrans.io import atomic_path
from mrtrans.methods import method_class
from mrtrans.networks.vgg import TORCHVISION_FILE, vgg16_weight_candidates
from mrtrans.outputs import OutputKind
from mrtrans.resources import resource_dir

# Rows of the paper's Table 1 and the method configs that train them.
PAPER_NAMES = {
    "cyclegan": "CycleGAN",
    "discogan": "DiscoGAN",
    "distancegan": "DistanceGAN",
    "unit": "UNIT",
    "harmonicgan_hist": "HarmonicGAN-histogram",
    "harmonicgan_vgg": "HarmonicGAN-VGG",
}


@dataclass(frozen=True)
class ReproduceConfig:
    """``mrtrans reproduce-table1``: the six methods of HarmonicGAN's Table 1 on one prepared set, one evaluation.

    ``prepare`` is the recipe for a dataset root; ``synth_prepare`` for the synthetic subjects made when
    no root is given. ``epochs`` None keeps each method's own schedule (the paper's 200). The defaults are
    the paper's scale (``evaluation/reproduce_paper.yaml``); ``evaluation/reproduce_cpu.yaml`` is the CPU preset.
    """

    synth: SynthConfig = SynthConfig(subjects=48, shape=(64, 64, 48), tumor_fraction=0.9, seed=3)
    prepare: PrepareConfig = PrepareConfig()
    synth_prepare: PrepareConfig = PrepareConfig(
        train_slices=160, test_slices=40, image_size=64, min_tumor_pixels=10, min_brain_fraction=0.15
    )
    direction: str = "flair2t1"
    # configs/ names (or YAML paths) in the paper's row order; the labels in the table are the file names.
    methods: tuple[str, ...] = ("cyclegan", "discogan", "distancegan", "unit", "harmonicgan_hist", "harmonicgan_vgg")
    train_presets: tuple[str, ...] = ()
    epochs: int | None = field(default=None, metadata=bounds(1))
    seeds: tuple[int, ...] = (0,)
    evaluation: EvalConfig = EvalConfig()
    jobs: int = field(default=1, metadata=bounds(1))  # training runs in parallel
    # torch threads per run; None: the usable cores shared out over the jobs (mrtrans.experiments.grid)
    threads: int | None = field(default=None, metadata=bounds(1))


BEYOND, PAIRED = "beyond the paper", PAIRED_LABEL


def row_name(label: str, group: str | None) -> str:
    """The name of a method's rows: the paper's name, or the label with what sets it apart from the paper's six."""
    if label in PAPER_NAMES or label == "copy-source" or group is None:
        return PAPER_NAMES.get(label, label)
    return f"{label} ({group})"


def method_groups(methods: dict[str, TrainConfig]) -> dict[str, str | None]:
    """Label -> None for the paper's six, ``BEYOND`` for other unpaired methods, ``PAIRED`` for a method trained
    on paired slices (reported apart: it sees what no unpaired method may)."""

    return {
        label: PAIRED if method_class(c.method).paired else (None if label in PAPER_NAMES else BEYOND)
        for label, c in methods.items()
    }


def ordered_methods(methods: tuple[str, ...], groups: dict[str, str | None]) -> list[str]:
    """The paper's methods first (in the given order), then the others, then the paired ones."""
    rank = {None: 0, BEYOND: 1, PAIRED: 2}
    return sorted(methods, key=lambda m: rank[groups[method_label(m)]])


def run_name(method: str, seed: int) -> str:
    return f"{method_label(method)}-s{seed}"


def vgg_missing(cfg: TrainConfig) -> str | None:
    """Why a VGG-feature run cannot start here (no weights), or None."""

    if cfg.loss.lambda_smooth == 0 or cfg.loss.smooth_features is not SmoothFeatures.vgg:
        return None
    candidates = vgg16_weight_candidates(cfg.loss.vgg_weights)
    if any(p.is_file() for p in candidates):
        return None
    return (
        f"not run: ImageNet VGG-16 weights not found. Copy torchvision's {TORCHVISION_FILE} to {candidates[-1]} "
        "or set $MRTRANS_VGG16_WEIGHTS to its path, then run the same command again"
    )


def reproduce_table1(out: str | Path, cfg: ReproduceConfig, root: str | Path | None = None) -> Path:
    """Run the reproduction into ``out`` (resumable) and return the path of ``table1.md``.

    Raises:
        MrtransError: ``out`` belongs to something else, a misspelt method, or a failing stage.
    """

    root = Path(root) if root is not None else None
    Direction.parse(cfg.direction)
    check_methods(cfg.methods, cfg.train_presets)
    ws = Workspace.resume(out, OutputKind.reproduction, cfg, root)
    out, stage = ws.out, ws.stage
    recipe = cfg.prepare if root is not None else cfg.synth_prepare
    groups = method_groups({method_label(m): load_config(TrainConfig, [m, *cfg.train_presets]) for m in cfg.methods})
    if PAIRED in groups.values() and recipe.paired_train_slices == 0:  # as many pairs as each unpaired domain has
        recipe = dataclasses.replace(recipe, paired_train_slices=recipe.train_slices)
    if root is None:
        root = ws.synthetic_root(cfg.synth)
    data = out / "data"
    if not data.is_dir():
        stage(f"prepare {root} -> {data}")
        prepare_brats(root, data, recipe)

    overrides = {**epoch_schedule(cfg.epochs), "run.checkpoint_every": 10**9, "run.sample_every": 10**9}
    train_cfgs = {m: load_config(TrainConfig, [m, *cfg.train_presets], overrides) for m in cfg.methods}
    cfg = dataclasses.replace(cfg, methods=tuple(ordered_methods(cfg.methods, groups)))
    skipped = {method_label(m): why for m, c in train_cfgs.items() if (why := vgg_missing(c))}
    specs = [(m, seed) for m in cfg.methods if method_label(m) not in skipped for seed in cfg.seeds]
    for label, why in skipped.items():
        stage(f"{label}: {why}")
    grid = [
        TrainJob(
            data,
            out / "runs" / run_name(m, seed),
            cfg.direction,
            load_config(TrainConfig, [to_dict(train_cfgs[m])], {"run.seed": seed}),
        )
        for m, seed in specs
    ]
    train_grid(grid, cfg.jobs, stage, threads=cfg.threads)

    report = out / "report"
    stage(f"evaluate {len(specs)} runs on the shared test slices -> {report}")
    evaluate_runs(
        [out / "runs" / run_name(m, s) for m, s in specs],
        data,
        report,
        cfg.evaluation,
        cache_dir=out / "cache",
        overwrite=True,
    )
    table = table1(report, cfg, skipped, groups)
    with atomic_path(out / "table1.csv") as tmp:
        table.to_csv(tmp, index=False)
    md = out / "table1.md"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown(table, report, cfg, skipped, recipe.image_size))
    stage(f"done: {md}")
    return md


def _runs_of(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The rows of ``label``'s runs (``<label>-s<seed>``), or the copy-source rows."""
    if label == "copy-source":
        return frame[frame["run"] == label]
    return frame[frame["run"].str.fullmatch(rf"{re.escape(label)}-s\d+")]


def table1(
    report: Path, cfg: ReproduceConfig, skipped: dict[str, str], groups: dict[str, str | None] | None = None
) -> pd.DataFrame:
    """One row per method and direction: paper-protocol metrics over the method's runs (seeds).

    ``group``: empty for the paper's methods and copy-source, ``beyond the paper`` or ``paired, upper bound``."""
    groups = groups or {}
    summary = pd.read_csv(report / "summary.csv")
    whole = summary[(summary["protocol"] == "paper") & (summary["region"] == "whole")]
    rows = []
    labels = ["copy-source", *(method_label(m) for m in cfg.methods)]
    for label in labels:
        for direction in sorted(whole["direction"].unique(), key=lambda d: d != cfg.direction):
            runs = whole[whole["direction"] == direction]
            runs = _runs_of(runs, label)
            row: dict = {
                "method": label,
                "paper_name": row_name(label, groups.get(label)),
                "group": groups.get(label) or "",
                "direction": direction,
                "n_seeds": len(runs),
                "note": skipped.get(label, ""),
            }
            for metric in METRICS:
                values = runs[f"{metric}_mean"].to_numpy(dtype=float)
                row[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
                row[f"{metric}_std_over_seeds"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
                row[f"{metric}_ci_low"] = float(runs[f"{metric}_ci_low"].iloc[0]) if len(values) == 1 else math.nan
                row[f"{metric}_ci_high"] = float(runs[f"{metric}_ci_high"].iloc[0]) if len(values) == 1 else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, metric: str) -> str:
    mean = row[f"{metric}_mean"]
    if pd.isna(mean):
        return "–"
    fmt = REGISTRY[metric].format
    if row["n_seeds"] > 1:
        return f"{fmt(mean)} ± {fmt(row[f'{metric}_std_over_seeds'])}"
    return f"{fmt(mean)} [{fmt(row[f'{metric}_ci_low'])}, {fmt(row[f'{metric}_ci_high'])}]"


def markdown(table: pd.DataFrame, report: Path, cfg: ReproduceConfig, skipped: dict[str, str], image_size: int) -> str:
    """reproduce.md: our Table 1 (mean ± SD over seeds beside copy-source), the paper's, and the tumor audit."""
    directions = list(dict.fromkeys(table["direction"]))
    arrow = {d: direction_label(d) for d in directions}
    lines = _our_table(table, cfg, skipped, image_size, directions, arrow)
    lines += _published_table(directions, arrow)
    lines += _tumor_table(report, table, cfg, directions, arrow)
    return "\n".join(lines) + "\n"


def _our_table(
    table: pd.DataFrame,
    cfg: ReproduceConfig,
    skipped: dict[str, str],
    image_size: int,
    directions: list[str],
    arrow: dict[str, str],
) -> list[str]:
    """Table 1 of our runs: the paper's metrics per direction, in the paper's order."""
    # the paper's order: the lower-is-better metrics of every direction, then the higher-is-better ones
    columns = [
        (m, d)
        for better in (False, True)
        for d in directions
        for m in METRICS
        if REGISTRY[m].higher_is_better is better
    ]
    seeds = ", ".join(map(str, cfg.seeds))
    lines = [
        "# Table 1, reproduced",
        "",
        f'Protocol "paper" of `mrtrans evaluate`: whole {image_size}x{image_size} test slices, intensities mapped to '
        f"0-255, as the paper scores (docs/evaluation.md). Seeds {seeds}. Cells: mean over test slices "
        + (
            "± standard deviation over seeds (copy-source, which has no seed: [95% CI, bootstrap over patients])."
            if len(cfg.seeds) > 1
            else "[95% CI, bootstrap over patients]."
        )
        + " `copy-source` scores the source slice itself (no model): a method must beat it. These are our runs on our "
        "data at this command's scale, not the paper's numbers; those follow in their own table. Rows marked "
        f"({BEYOND}) are methods the paper does not have; ({PAIRED}) rows are trained on paired slices, which no "
        "unpaired method may see: a bound to measure the others against, not a competitor in their ranking.",
        "",
        "| Method | " + " | ".join(f"{arrow[d]} {REGISTRY[m].label}" for m, d in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label in dict.fromkeys(table["method"]):
        rows = table[table["method"] == label].set_index("direction")
        name = rows["paper_name"].iloc[0]
        if label in skipped:
            lines.append(f"| {name} | " + " | ".join("–" for _ in columns) + " |")
            continue
        cells = [_cell(rows.loc[d], m) for m, d in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for label, why in skipped.items():
        lines += ["", f"{table.loc[table['method'] == label, 'paper_name'].iloc[0]}: {why}."]
    return lines


def _published_table(directions: list[str], arrow: dict[str, str]) -> list[str]:
    """The paper's own Table 1 (evaluation/paper_table1.csv), for comparison only."""
    published = pd.read_csv(resource_dir("evaluation") / "paper_table1.csv", comment="#")
    lines = [
        "",
        "## Published (Zhang, Pfister, Li, ICLR 2019, Table 1)",
        "",
        "The paper's numbers, for comparison only: its data (BRATS 2015), slice selection and training length "
        "differ from this run's (docs/reproduce_paper.md).",
        "",
        "| Method | "
        + " | ".join(f"{arrow.get(d, d)} {REGISTRY[m].label}" for d in directions for m in PAPER_METRICS)
        + " |",
        "|---|" + "---|" * (len(PAPER_METRICS) * len(directions)),
    ]
    for name in dict.fromkeys(published["method"]):
        sel = published[published["method"] == name].set_index("direction")
        cells = [f"{sel.loc[d, m]:g}" if d in sel.index else "–" for d in directions for m in PAPER_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _tumor_table(
    report: Path, table: pd.DataFrame, cfg: ReproduceConfig, directions: list[str], arrow: dict[str, str]
) -> list[str]:
    """Per method and direction, the tumor audit's keepable-lesion outcomes (mean over seeds), after what the audit
    can decide on this data; nothing when the report has no tumor summary."""
    lines: list[str] = []
    tumor = report / "tumor_summary.csv"
    if tumor.is_file():
        audit = pd.read_csv(tumor)
        lines += [
            "",
            "## Tumor audit per method",
            "",
            "Per-lesion outcomes of `mrtrans evaluate` (docs/evaluation.md), over the keepable reference lesions (the "
            "real target and the source both show them): erased (no longer stands out from the healthy brain around "
            "it), kept with the real target's polarity or with the opposite one; missed = share of the same lesions a "
            "segmenter of the real target sequence does not find; added = share of healthy test slices with a lesion "
            "found by the two-polarity detector outside every tumor label. Mean over seeds; whether each can be "
            "decided on this data is in the report's report.md and tumor_validity.csv.",
            "",
            "| Method | Direction | Keepable lesions | Erased ↓ | Present, real polarity ↑ | "
            "Present, opposite polarity | Missed (segmenter) ↓ | Healthy slices with added lesion ↓ |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def mean(sel: pd.DataFrame, column: str) -> str:
            values = sel[column] if column in sel else pd.Series(dtype=float)
            return "–" if values.isna().all() else f"{np.nanmean(values):.0%}"

        validity = report / "tumor_validity.csv"
        if validity.is_file():  # what the audit can decide on this data, before its numbers
            lines[-2:-2] = [
                f"- {r.direction}, {r.aspect}: **{'can decide' if r.decidable else 'cannot decide'}** - {r.reason}"
                for r in pd.read_csv(validity).itertuples()
            ] + [""]
        for label in ["copy-source", *(method_label(m) for m in cfg.methods)]:
            runs = _runs_of(audit, label)
            for d in directions:
                sel = runs[runs["direction"] == d]
                if len(sel):
                    name = table.loc[table["method"] == label, "paper_name"].iloc[0]
                    keepable = sel["keepable_lesions"].iloc[0] if "keepable_lesions" in sel else np.nan
                    lines.append(
                        f"| {name} | {arrow[d]} | {'–' if pd.isna(keepable) else int(keepable)} | "
                        f"{mean(sel, 'keepable_erased_rate')} | {mean(sel, 'keepable_present_same_rate')} | "
                        f"{mean(sel, 'keepable_present_opposite_rate')} | {mean(sel, 'seg_keepable_missed_rate')} | "
                        f"{mean(sel, 'healthy_with_added_rate')} |"
                    )
    return lines
