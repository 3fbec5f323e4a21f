"""``mrtrans benchmark hallucination``: do translators add or remove tumors? (Cohen et al. 2018)

HarmonicGAN's claim (Zhang, Pfister, Li, ICLR 2019) is that its smoothness term keeps CycleGAN from
adding or removing tumors. Cohen et al. showed how to provoke both: train with a target domain whose
tumor prevalence differs from the source's. With no tumor in the target training slices the
discriminator teaches the generator that tumors do not exist (removal); with only tumors, that they
always do (addition). This module runs that experiment end to end:

1. data: synthetic BraTS-like subjects (``cfg.synth``), or the user's BraTS root;
2. prepare: one balanced set (it trains the instruments, holds the validation patients and the test slices) and
   one set per ``target_tumor_fractions`` entry; all share patients and test slices (``prepare-brats`` draws
   each set from its own stream);
3. train every method x setting x seed, and the ``ceiling_methods`` (a paired model: what a translator with
   paired supervision keeps at this scale) in the balanced setting, ``jobs`` at a time; every run scores the
   validation patients (``best.pt``) and keeps checkpoints at ``keep_steps``;
4. ``mrtrans evaluate`` of every run on the shared test slices at each checkpoint: ``best`` (the primary answer,
   stated before running: ``primary``), ``last`` and every kept step (the trajectory);
5. the tables and the claim test (:mod:`.hallucination_report`).

The output folder is resumable: finished datasets and runs are kept and a re-run does only what is
missing (then evaluates again). Nothing outside that folder is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from mrtrans.checkpoint import resolve_checkpoint
from mrtrans.config import (
    MAY_BE_EMPTY,
    AuditConfig,
    EvalConfig,
    PrepareConfig,
    SynthConfig,
    TrainConfig,
    bounds,
    epoch_schedule,
    load_config,
    to_dict,
)
from mrtrans.data_prep.prepare import prepare_brats
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.evaluation.evaluate import evaluate_runs
from mrtrans.experiments import hallucination_report as report
from mrtrans.experiments.grid import TrainJob, train_grid
from mrtrans.experiments.hallucination_report import report_folder, setting_name
from mrtrans.experiments.workspace import NOT_BINDING, Workspace, check_methods
from mrtrans.io import atomic_path
from mrtrans.methods import method_class
from mrtrans.outputs import OutputKind, adopt_legacy, marker_kind


@dataclass(frozen=True)
class HallucinationConfig:
    """``mrtrans benchmark hallucination``: do translators add or remove tumors when the domains disagree?

    The setting of Cohen et al. (2018): the source training set keeps ``prepare.source_tumor_fraction``
    tumor slices while the target training set has ``target_tumor_fractions`` (0: the target domain
    has no tumors, the translator is pushed to remove them; 1: only tumors, pushed to add them). Every
    setting shares one balanced, paired test set. Each method is trained once per setting and seed
    and scored by ``mrtrans evaluate``. ``synth`` is used when no dataset root is given.
    """

    synth: SynthConfig = SynthConfig(subjects=48, shape=(64, 64, 48), tumor_fraction=0.9, seed=3)
    prepare: PrepareConfig = PrepareConfig(
        train_slices=160, test_slices=40, image_size=64, min_tumor_pixels=10, min_brain_fraction=0.15
    )
    # 0.5: balanced, the paper's own setting; 0: no tumor in the target training slices (towards removal);
    # 1: only tumor (towards addition). Every setting is tested on the same balanced test slices.
    target_tumor_fractions: tuple[float, ...] = (0.5, 0.0, 1.0)
    direction: str = "flair2t1"
    methods: tuple[str, ...] = (
        "cyclegan",
        "harmonicgan_hist",
    )  # configs/ names or YAML paths; the first is the reference
    # Trained in the balanced setting only, on the paired slices of the same training patients and for as long: the
    # information ceiling (what paired supervision keeps at this scale). Never a claim's reference or subject.
    ceiling_methods: tuple[str, ...] = field(default=(), metadata=MAY_BE_EMPTY)
    train_presets: tuple[str, ...] = ("cpu_small",)
    epochs: int = field(default=8, metadata=bounds(1))
    seeds: tuple[int, ...] = (0, 1, 2)
    # Steps between scores of the validation patients (best.pt); None: once per epoch.
    validate_every: int | None = field(default=None, metadata=bounds(1))
    # Steps at which every run keeps a checkpoint: the trajectory (when does a method fade tumors?).
    keep_steps: tuple[int, ...] = field(default=(), metadata=MAY_BE_EMPTY)
    # The settings whose runs are also scored at the kept steps; empty: every setting. The best and last checkpoints
    # are scored for every run.
    trajectory_settings: tuple[str, ...] = field(default=(), metadata=MAY_BE_EMPTY)
    # false: score best and last only, for an answer sooner; the kept checkpoints stay in the runs, and a re-run with
    # true scores them (best's and last's reports are kept).
    score_kept_steps: bool = True
    # The checkpoint of the primary answer, stated before running: best (validation brain MAE) or last.
    primary: str = "best"
    evaluation: EvalConfig = EvalConfig(audit=AuditConfig(steps=400), figure_slices=0)
    jobs: int = field(default=2, metadata=bounds(1))  # training runs in parallel
    # torch threads per run; None: the usable cores shared out over the jobs (mrtrans.experiments.grid)
    threads: int | None = field(default=None, metadata=bounds(1))
    # The claim test, stated before running: a method is "better" when the whole interval of its rate
    # difference from the reference lies below -claim_margin, "equivalent" when it lies within +-claim_margin;
    # "not at this scale" when test lesions span fewer than min_graph_nodes graph nodes (median).
    claim_margin: float = field(default=0.05, metadata=bounds(0.0, 1.0))
    claim_resamples: int = field(default=2000, metadata=bounds(100))
    min_graph_nodes: int = field(default=8, metadata=bounds(1))
    # The smallest detectable difference of each comparison (the true difference its rule calls better or worse
    # with probability `power`), by simulation from its own structure (mrtrans.evaluation.statistics).
    power: float = field(default=0.8, metadata=bounds(0.5, 0.99))
    power_simulations: int = field(default=200, metadata=bounds(10))
    power_resamples: int = field(default=400, metadata=bounds(50))
    power_patient_logit_sd: float = field(default=1.0, metadata=bounds(0.0))


# What a re-run may change: besides evaluation, jobs and threads, how the detectable difference is simulated.
HALLUCINATION_NOT_BINDING = (
    *NOT_BINDING,
    "power",
    "power_simulations",
    "power_resamples",
    "power_patient_logit_sd",
    "trajectory_settings",
    "score_kept_steps",
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the benchmark."""

    setting: str  # e.g. target0 (target training slices 0 % tumor)
    method: str  # label of the method config
    seed: int
    ceiling: bool = False  # a ceiling method (paired): reported, never compared

    @property
    def name(self) -> str:
        return f"{self.setting}-{self.method}-s{self.seed}"


def _check(cfg: HallucinationConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Methods and ceiling methods by label, checked before any work."""
    Direction.parse(cfg.direction)
    if cfg.primary not in ("best", "last"):
        raise MrtransError(f"primary {cfg.primary!r}: use best (validation) or last")
    methods = check_methods(cfg.methods, cfg.train_presets)
    ceilings = check_methods(cfg.ceiling_methods, cfg.train_presets) if cfg.ceiling_methods else {}
    for label, m in methods.items():  # the question is what unpaired training on skewed domains does
        if method_class(load_config(TrainConfig, [m, *cfg.train_presets]).method).paired:
            raise MrtransError(
                f"--method {m}: {label} trains on paired slices; this benchmark skews the tumor share of unpaired "
                "training domains, which a paired method never sees. Name it in ceiling_methods (the balanced "
                "setting's ceiling row), or compare it with `mrtrans evaluate`"
            )
    if set(methods) & set(ceilings):
        raise MrtransError(f"{', '.join(sorted(set(methods) & set(ceilings)))}: a method and a ceiling at once")
    return methods, ceilings


def run_specs(cfg: HallucinationConfig, methods: dict[str, str], ceilings: dict[str, str]) -> list[RunSpec]:
    """Every run: each method in each setting and seed, then each ceiling method in the balanced setting."""
    specs = [
        RunSpec(setting_name(f), label, seed)
        for f in cfg.target_tumor_fractions
        for label in methods
        for seed in cfg.seeds
    ]
    return specs + [RunSpec("balanced", label, seed, ceiling=True) for label in ceilings for seed in cfg.seeds]


def _train_config(cfg: HallucinationConfig, method: str, seed: int) -> TrainConfig:
    """A run's training config: the method on the presets, the benchmark's schedule, validation and kept steps."""
    base = load_config(TrainConfig, [method, *cfg.train_presets])
    validate_every = cfg.validate_every or math.ceil(cfg.prepare.train_slices / base.data.batch_size)
    schedule = {
        **epoch_schedule(cfg.epochs),
        "run.checkpoint_every": 10**9,
        "run.sample_every": 10**9,
        "run.validate_every": validate_every,
        "run.keep_steps": list(cfg.keep_steps),
        "run.seed": seed,
    }
    return load_config(TrainConfig, [method, *cfg.train_presets], schedule)


def evaluation_points(cfg: HallucinationConfig, has_validation: bool) -> list[str]:
    """The checkpoints every run is scored at, the primary first: best (with validation patients), last, and the
    kept steps in order (unless ``score_kept_steps`` is false)."""
    kept = sorted(cfg.keep_steps) if cfg.score_kept_steps else []
    points = (["best"] if has_validation else []) + ["last"] + [f"step-{n}" for n in kept]
    primary = cfg.primary if cfg.primary in points else "last"
    return [primary] + [p for p in points if p != primary]


def point_specs(cfg: HallucinationConfig, specs: list[RunSpec], point: str) -> list[RunSpec]:
    """The runs scored at ``point``: all at best and last, at a kept step those of ``cfg.trajectory_settings``."""
    if not point.startswith("step-") or not cfg.trajectory_settings:
        return specs
    return [s for s in specs if s.setting in cfg.trajectory_settings]


def stale_report(folder: Path, runs: list[Path], evaluation: EvalConfig, point: str) -> str | None:
    """Why the evaluation report in ``folder`` is not what scoring ``runs`` at ``point`` would write now (None: it
    is): missing or unfinished, another evaluation config, other runs, or a checkpoint newer than the report."""
    meta, chosen = folder / "metrics.json", folder / "checkpoints.csv"
    if marker_kind(folder) is not OutputKind.report or not meta.is_file() or not chosen.is_file():
        return "no finished report"
    if json.loads(meta.read_text()).get("config") != json.loads(json.dumps(to_dict(evaluation))):
        return "another evaluation config"
    if sorted(pd.read_csv(chosen)["run"]) != sorted(r.name for r in runs):
        return "other runs"
    newer = [r.name for r in runs if resolve_checkpoint(r, point).stat().st_mtime > meta.stat().st_mtime]
    return f"checkpoints newer than the report ({', '.join(newer[:3])})" if newer else None


def run_hallucination_benchmark(
    out: str | Path,
    cfg: HallucinationConfig,
    root: str | Path | None = None,
) -> Path:
    """Run the benchmark into ``out`` (resumable) and return the path of ``hallucination.md``.

    Args:
        out: benchmark folder; a new one, or one an earlier run of the same benchmark made.
        cfg: the benchmark (``evaluation/hallucination_cpu.yaml`` is the CPU preset).
        root: a BraTS dataset root; None generates ``cfg.synth`` subjects.

    Raises:
        MrtransError: ``out`` belongs to something else, bad methods, or a failing stage.
    """
    root = Path(root) if root is not None else None
    methods, ceilings = _check(cfg)
    ws = Workspace.resume(out, OutputKind.benchmark, cfg, root, not_binding=HALLUCINATION_NOT_BINDING)
    out, stage = ws.out, ws.stage
    if root is None:
        root = ws.synthetic_root(cfg.synth)
    _prepare_sets(out, root, cfg, stage)
    specs = run_specs(cfg, methods, ceilings)
    labels = {**methods, **ceilings}
    grid = [
        TrainJob(
            out / "data" / s.setting, out / "runs" / s.name, cfg.direction, _train_config(cfg, labels[s.method], s.seed)
        )
        for s in specs
    ]
    train_grid(grid, cfg.jobs, stage, threads=cfg.threads)

    balanced = out / "data" / "balanced"
    points = evaluation_points(cfg, PreparedSlices(balanced).has_validation)
    for point in points:
        folder = report_folder(out, point, points[0])
        runs = [out / "runs" / s.name for s in point_specs(cfg, specs, point)]
        adopt_legacy(folder, OutputKind.report)  # an unmarked report of mrtrans < 0.2: replaced like a marked one
        # the primary checkpoint gets the full report; the trajectory's points only what its tables read
        evaluation = cfg.evaluation if point == points[0] else replace(cfg.evaluation, protocols=("brain_shared",))
        if stale_report(folder, runs, evaluation, point) is None:
            stage(f"checkpoint {point}: the report in {folder} is current (kept)")
            continue
        stage(f"evaluate {len(runs)} runs at checkpoint {point} on the shared test slices -> {folder}")
        evaluate_runs(
            runs,
            balanced,
            folder,
            evaluation,
            cache_dir=out / "cache",
            overwrite=True,
            checkpoint=point,
        )
    stage("claim tests and the smallest detectable differences")
    tables = report.tables(out, cfg, {p: point_specs(cfg, specs, p) for p in points}, methods)
    for name, frame in tables.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    md = out / "hallucination.md"
    with atomic_path(md) as tmp:
        tmp.write_text(report.markdown(out, cfg, tables, points))
    stage(f"done: {md}")
    return md


def _prepare_sets(out: Path, root: Path, cfg: HallucinationConfig, stage) -> None:
    """The balanced set and one set per target tumor fraction (kept when an earlier run made them)."""
    fractions = {"balanced": 0.5} | {setting_name(f): f for f in cfg.target_tumor_fractions}
    for name, fraction in fractions.items():
        folder = out / "data" / name
        if not folder.is_dir():
            stage(f"prepare {name} (target training slices {fraction:.0%} tumor) -> {folder}")
            prepare_brats(root, folder, replace(cfg.prepare, target_tumor_fraction=fraction))
