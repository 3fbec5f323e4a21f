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

from mrtrans.config import (
    HallucinationConfig,
    SynthConfig,
    TrainConfig,
    epoch_schedule,
    load_config,
    resolve_config_path,
    to_dict,
)
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path
from mrtrans.outputs import OutputKind, check_inputs, marker_kind

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
    """0.5 -> balanced (the paper's own setting), 0 -> target0, 1 -> target100."""
    return "balanced" if target_fraction == 0.5 else f"target{round(100 * target_fraction)}"


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
        raise MrtransError(
            f"{scratch}: not a training run this command started; move it away and run the command again"
        )
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
    check_inputs(out, [root] if root else [])  # before anything is written: never into the user's dataset
    record = {"config": config, "root": str(root.resolve()) if root else None}
    path = out / marker

    def binding(rec: dict) -> dict:
        return {"root": rec.get("root"), **{k: v for k, v in rec.get("config", {}).items() if k not in NOT_BINDING}}

    if out.exists() and any(out.iterdir()):
        if not path.is_file():
            raise MrtransError(f"{out}: exists and was not made by `{command}`; choose another --out")
        try:
            earlier = json.loads(path.read_text())
            if not isinstance(earlier, dict) or not isinstance(earlier.get("config", {}), dict):
                raise ValueError("not a record")
        except (OSError, ValueError) as exc:
            raise MrtransError(
                f"{path}: damaged record of an earlier `{command}` ({type(exc).__name__}); if this folder is "
                "yours to discard, remove it, else choose another --out"
            ) from None
        if binding(earlier) != binding(record):
            raise MrtransError(
                f"{out}: holds a {what} with other data, methods, seeds or training; choose another --out "
                "(or give the same options as before to continue it)"
            )
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
    Direction.parse(cfg.direction)  # a bad direction stops here, before any work
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

    specs = [
        RunSpec(setting_name(f), label, seed)
        for f in cfg.target_tumor_fractions
        for label in methods
        for seed in cfg.seeds
    ]
    todo = [s for s in specs if not (out / "runs" / s.name).is_dir()]
    jobs = min(cfg.jobs, max(1, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    (out / "runs").mkdir(exist_ok=True)
    args = []
    for spec in todo:
        scratch = out / "runs" / f".partial-{spec.name}"
        remove_partial_run(scratch)  # an interrupted run of this benchmark, inside the folder it made
        train_cfg = load_config(
            TrainConfig,
            [methods[spec.method], *cfg.train_presets],
            {
                **epoch_schedule(cfg.epochs),
                "run.seed": spec.seed,
                "run.checkpoint_every": 10**9,
                "run.sample_every": 10**9,
            },
        )
        args.append(
            (
                str(out / "data" / spec.setting),
                str(out / "runs" / spec.name),
                cfg.direction,
                to_dict(train_cfg),
                threads,
            )
        )
    if todo:
        stage(f"train {len(todo)} of {len(specs)} runs, {jobs} at a time ({threads} threads each)")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for i, path in enumerate(pool.map(train_job, *zip(*args)), 1):
                stage(f"  run {i}/{len(todo)} done: {Path(path).name}")

    stage(f"evaluate {len(specs)} runs on the shared test slices -> {out / 'report'}")
    if (out / "report").is_dir() and marker_kind(out / "report") is None:
        shutil.rmtree(out / "report")  # an unmarked report of mrtrans < 0.2, inside the folder this benchmark made
    evaluate_runs(
        [out / "runs" / s.name for s in specs],
        out / "data" / "balanced",
        out / "report",
        cfg.evaluation,
        cache_dir=out / "cache",
        overwrite=True,
        log=lambda s: None,
    )
    per_run = collect(out / "report", specs)
    summary = summarize_seeds(per_run)
    graphs = graph_table(out / "data" / "balanced", cfg, methods)
    claims = claim_table(out / "report", specs, cfg, methods, graphs)
    for frame, name in (
        (per_run, "hallucination.csv"),
        (summary, "hallucination_summary.csv"),
        (graphs, "graph.csv"),
        (claims, "claims.csv"),
    ):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    validity = (
        pd.read_csv(out / "report" / "tumor_validity.csv")
        if (out / "report" / "tumor_validity.csv").is_file()
        else None
    )
    md = out / "hallucination.md"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown(summary, cfg, graphs, claims, validity))
    stage(f"done: {md}")
    return md


# Per run and direction: what the benchmark reports, from `mrtrans evaluate`'s tumor outcomes (docs/evaluation.md):
# over the judgeable reference lesions, the share erased / present with the real polarity / present with the
# opposite one; the share of healthy test slices with an added lesion (two-polarity detector); brain MAE/SSIM on
# the shared normalisation. Counts (judgeable lesions, healthy slices) stand beside every rate.
TUMOR_COLUMNS = ["erased_rate", "present_same_rate", "present_opposite_rate", "healthy_with_added_rate"]
COUNT_COLUMNS = ["judgeable_lesions", "lesions", "n_healthy_slices"]
COLUMNS = TUMOR_COLUMNS + ["brain_mae", "brain_ssim"]
# What each setting tests: target0 pushes towards removal (no unpaired method can learn the target's tumor
# contrast there, so only presence is tested), target100 towards addition, balanced (the paper's) both.
SETTING_OUTCOMES = {"balanced": ("erased", "added"), "target0": ("erased",), "target100": ("added",)}


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
        row = {
            "setting": spec.setting if spec else "all",
            "method": spec.method if spec else t["run"],
            "seed": spec.seed if spec else np.nan,
            "run": t["run"],
            "direction": t["direction"],
        }
        for column in TUMOR_COLUMNS + COUNT_COLUMNS:
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
    for column in COUNT_COLUMNS:
        out[column] = g[column].first()
    out["n_seeds"] = g["seed"].count()
    return out.reset_index()


def graph_table(data: Path, cfg: HallucinationConfig, methods: dict[str, str]) -> pd.DataFrame:
    """Graph statistics of the smoothness term (:mod:`mrtrans.evaluation.graph`) on the test set, per direction,
    with the loss settings of the first method that has the term (the reference's otherwise)."""
    from mrtrans.config import resolve_patch_size
    from mrtrans.data.slices import Direction, PreparedSlices
    from mrtrans.evaluation import audit
    from mrtrans.evaluation.graph import graph_statistics, summarize_graph

    dataset = PreparedSlices(data)
    configs = [
        resolve_patch_size(load_config(TrainConfig, [m, *cfg.train_presets]), dataset.image_size)
        for m in methods.values()
    ]
    loss = next((c.loss for c in configs if c.loss.lambda_smooth > 0), configs[0].loss)
    seg = np.asarray(dataset.test("seg"))
    min_px = cfg.evaluation.audit.min_lesion_pixels or max(1, cfg.prepare.min_tumor_pixels // 2)
    forward = Direction.parse(cfg.direction)
    rows = []
    for direction in (forward, forward.reversed()):
        labels = audit.region_labels(direction.target, cfg.evaluation.audit.region.value, dataset.meta.get("layouts"))
        per_lesion, per_slice = graph_statistics(
            np.asarray(dataset.test(direction.source), np.float32),
            audit.region_mask(seg, labels),
            seg > 0,
            loss,
            min_px,
        )
        rows.append(
            {
                "direction": direction.name,
                "image_size": dataset.image_size,
                "patch_size": loss.patch_size,
                "sigma": loss.sigma,
                **summarize_graph(per_lesion, per_slice, cfg.min_graph_nodes),
            }
        )
    return pd.DataFrame(rows)


def _hits(
    tables: dict[str, pd.DataFrame], outcome: str, run_names: list[str], direction: str
) -> tuple[np.ndarray, np.ndarray]:
    """(runs, units) 0/1 hits and (units,) patients: judgeable lesions erased, or healthy slices with an addition.

    Args:
        tables: the report's ``lesions`` (tumor_lesions.csv) and ``slices`` (tumor_consistency.csv), read once.
    """
    if outcome == "erased":
        table = tables["lesions"]
        table = table[(table["direction"] == direction) & table["judgeable"]]
        hit = lambda rows: rows["outcome"] == "erased"  # noqa: E731
    else:
        table = tables["slices"]
        if "added_lesions" not in table:
            return np.zeros((len(run_names), 0)), np.zeros(0)
        table = table[(table["direction"] == direction) & (table["label"] == "healthy")].sort_values(
            ["subject", "slice_index"]
        )
        hit = lambda rows: rows["added_lesions"] > 0  # noqa: E731
    rows = [table[table["run"] == r] for r in run_names]  # every run has the same units in the same order
    if not rows:
        return np.zeros((0, 0)), np.zeros(0)
    return np.stack([hit(r).to_numpy(np.float64) for r in rows]), rows[0]["subject"].to_numpy()


def claim_table(
    report: Path, specs: list[RunSpec], cfg: HallucinationConfig, methods: dict[str, str], graphs: pd.DataFrame
) -> pd.DataFrame:
    """Per setting, direction and tumor outcome: each method against the reference method (the first), the rate
    difference with a hierarchical bootstrap over seeds, test patients and units, and the answer."""
    from mrtrans.evaluation.statistics import claim_answer, hierarchical_bootstrap_difference

    validity_path = report / "tumor_validity.csv"
    validity = pd.read_csv(validity_path).set_index(["direction", "aspect"]) if validity_path.is_file() else None
    can_act = graphs.set_index("direction")["mechanism_can_act"]
    lesions = report / "tumor_lesions.csv"  # absent when the test set has no lesion of either region
    tables = {
        "lesions": pd.read_csv(lesions)
        if lesions.is_file()
        else pd.DataFrame(columns=["run", "direction", "judgeable", "outcome", "subject"]),
        "slices": pd.read_csv(report / "tumor_consistency.csv"),
    }
    labels = list(methods)
    reference, rows = labels[0], []
    ev = cfg.evaluation
    for setting in dict.fromkeys(s.setting for s in specs):
        for direction in graphs["direction"]:
            for outcome in SETTING_OUTCOMES.get(setting, ("erased", "added")):
                aspect = "removal" if outcome == "erased" else "additions"
                runs = {m: [s.name for s in specs if s.setting == setting and s.method == m] for m in labels}
                ref_hits, patients = _hits(tables, outcome, runs[reference], direction)
                for method in labels[1:]:
                    hits, _ = _hits(tables, outcome, runs[method], direction)
                    diff = (
                        hierarchical_bootstrap_difference(
                            hits, ref_hits, patients, cfg.claim_resamples, ev.bootstrap_seed, ev.confidence
                        )
                        if hits.size and ref_hits.size
                        else {}
                    )
                    decidable = (
                        validity is not None
                        and (direction, aspect) in validity.index
                        and bool(validity.loc[(direction, aspect), "decidable"])
                    )
                    if not bool(can_act.get(direction, False)):
                        answer = "not at this scale"
                    elif not decidable:
                        answer = "cannot decide"
                    else:
                        answer = claim_answer(diff, cfg.claim_margin) if diff else "cannot decide"
                    rows.append(
                        {
                            "setting": setting,
                            "direction": direction,
                            "outcome": outcome,
                            "method": method,
                            "reference": reference,
                            "answer": answer,
                            "margin": cfg.claim_margin,
                            **diff,
                        }
                    )
    return pd.DataFrame(rows)


def _cell(mean: float, std: float, pct: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if pct:
        return f"{mean:.0%}" + ("" if math.isnan(std) else f" ± {std:.0%}")
    return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")


def _count(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def markdown(
    summary: pd.DataFrame,
    cfg: HallucinationConfig,
    graphs: pd.DataFrame,
    claims: pd.DataFrame,
    validity: pd.DataFrame | None,
) -> str:
    """The benchmark's report: setting, graph statistics, what the instrument can decide, outcomes, claim answers."""
    methods = [method_label(m) for m in cfg.methods]
    settings = ", ".join(setting_name(f) for f in cfg.target_tumor_fractions)
    lines = [
        "# Hallucination benchmark",
        "",
        f"Setting of Cohen et al. (2018): source training slices {cfg.prepare.source_tumor_fraction:.0%} tumor, target "
        f"training slices {', '.join(f'{f:.0%}' for f in cfg.target_tumor_fractions)} tumor ({settings}; balanced is "
        f"the paper's own setting). One balanced paired test set ({cfg.prepare.test_slices} slices, "
        f"{cfg.prepare.image_size}x{cfg.prepare.image_size}). Methods {', '.join(methods)}; seeds "
        f"{', '.join(map(str, cfg.seeds))}; {cfg.epochs} epochs of {cfg.prepare.train_slices} slices. In target0 no "
        "unpaired method can learn the target's tumor contrast, so only presence (erased) is tested there; target100 "
        "tests additions.",
        "",
        "## Can the smoothness term act on these tumors?",
        "",
        "The graph of the source test slices as HarmonicGAN's term builds it (docs/training.md): brain patches are "
        f"nodes; per reference lesion, the nodes it covers and the edges between them with affinity > 0.1; per node, "
        f"the affinity mass of its neighbours; the share of affinity mass linking a tumor node to a healthy one. The "
        f"mechanism is taken to be able to act when lesions span at least {cfg.min_graph_nodes} nodes (median).",
        "",
        "| Direction | Image | Patch | Sigma | Lesions | Tumor nodes per lesion (median) | Tumor-tumor edges (median) "
        "| "
        "Effective neighbours per node | Lesion-healthy affinity mass | Mechanism can act |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, g in graphs.iterrows():
        lines.append(
            f"| {g['direction']} | {g['image_size']} | {g['patch_size']} | {g['sigma']:g} | {g['lesions']} | "
            f"{g['tumor_nodes_median']:g} | {g['tumor_edges_median']:g} | {g['effective_neighbours']:.1f} | "
            f"{g['lesion_healthy_mass']:.3f} | {'yes' if g['mechanism_can_act'] else '**no: not at this scale**'} |"
        )
    if validity is not None and len(validity):
        lines += ["", "## Can the audit decide? (its ceiling and sanity rows, docs/evaluation.md)", ""]
        lines += [
            f"- {r['direction']}, {r['aspect']}: **{'yes' if r['decidable'] else 'no'}** - {r['reason']}"
            for _, r in validity.iterrows()
        ]
    lines += [
        "",
        "## Tumor outcomes",
        "",
        "Cells: mean ± standard deviation over seeds. Erased / present: share of the judgeable reference lesions "
        "(those the real target shows; count in the Lesions column). Added: share of healthy test slices with a lesion "
        "outside every tumor label. Brain MAE: protocol brain_shared. `copy-source` scores the source slice itself; "
        "`real` is the ceiling (and the additions floor); `sanity-*` show what the instruments can see.",
        "",
        "| Setting | Method | Direction | Lesions judgeable / all | Erased ↓ | Present, real polarity ↑ | "
        "Present, opposite polarity | Healthy slices (n) | With added lesion ↓ | Brain MAE ↓ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    trained_first = summary.assign(_all=summary["setting"] == "all").sort_values("_all", kind="stable")
    for _, r in trained_first.iterrows():
        lines.append(
            f"| {r['setting']} | {r['method']} | {r['direction']} | {_count(r['judgeable_lesions'])} / "
            f"{_count(r['lesions'])} | "
            + " | ".join(_cell(r[f"{c}_mean"], r[f"{c}_std"], True) for c in TUMOR_COLUMNS[:3])
            + f" | {_count(r['n_healthy_slices'])} | "
            f"{_cell(r['healthy_with_added_rate_mean'], r['healthy_with_added_rate_std'], True)} | "
            f"{_cell(r['brain_mae_mean'], r['brain_mae_std'], False)} |"
        )
    if len(claims):
        level = f"{cfg.evaluation.confidence:.0%}"
        lines += [
            "",
            f"## Does each method erase or add fewer tumors than `{methods[0]}`?",
            "",
            f"Difference of rates (method - {methods[0]}) with a {level} interval from a hierarchical bootstrap over "
            f"seeds, test patients and lesions (or healthy slices) within patients ({cfg.claim_resamples} resamples). "
            f"Margin stated before running: {cfg.claim_margin:.0%}. **better**: the whole interval below "
            f"-{cfg.claim_margin:.0%}; **worse**: above +{cfg.claim_margin:.0%}; **no difference shown** otherwise; "
            "**not at this scale**: lesions span too few graph nodes for the term to act; **cannot decide**: the "
            "audit's ceiling or sanity rows fail in that direction.",
            "",
            "| Setting | Direction | Outcome | Method | Rate (method / reference) | Units (patients) | "
            "Difference [CI] | Answer |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, c in claims.iterrows():
            rate = "–" if pd.isna(c.get("rate_a")) else f"{c['rate_a']:.0%} / {c['rate_b']:.0%}"
            diff = (
                "–"
                if pd.isna(c.get("difference"))
                else f"{c['difference']:+.0%} [{c['ci_low']:+.0%}, {c['ci_high']:+.0%}]"
            )
            units = "–" if pd.isna(c.get("n_units")) else f"{int(c['n_units'])} ({int(c['n_patients'])})"
            lines.append(
                f"| {c['setting']} | {c['direction']} | {c['outcome']} | {c['method']} | {rate} | {units} | {diff} "
                f"| **{c['answer']}** |"
            )
    return "\n".join(lines) + "\n"
