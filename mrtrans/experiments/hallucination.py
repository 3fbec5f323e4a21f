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

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mrtrans.config import (
    AuditConfig,
    EvalConfig,
    PrepareConfig,
    SynthConfig,
    TrainConfig,
    bounds,
    epoch_schedule,
    load_config,
)
from mrtrans.errors import MrtransError
from mrtrans.evaluation.metrics import METRICS
from mrtrans.experiments.grid import TrainJob, train_grid
from mrtrans.experiments.workspace import Workspace, check_methods, method_label
from mrtrans.io import atomic_path
from mrtrans.outputs import OutputKind, adopt_legacy


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
    train_presets: tuple[str, ...] = ("cpu_small",)
    epochs: int = field(default=8, metadata=bounds(1))
    seeds: tuple[int, ...] = (0, 1, 2)
    evaluation: EvalConfig = EvalConfig(audit=AuditConfig(steps=400), figure_slices=0)
    jobs: int = field(default=2, metadata=bounds(1))  # training runs in parallel (CPU threads are shared out)
    # The claim test, stated before running: a method is "better" when the whole interval of its rate
    # difference from the reference lies below -claim_margin; "not at this scale" when test lesions span
    # fewer than min_graph_nodes graph nodes (median).
    claim_margin: float = field(default=0.05, metadata=bounds(0.0, 1.0))
    claim_resamples: int = field(default=2000, metadata=bounds(100))
    min_graph_nodes: int = field(default=8, metadata=bounds(1))


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
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.data_prep.slices import Direction
    from mrtrans.evaluation.evaluate import evaluate_runs

    root = Path(root) if root is not None else None
    Direction.parse(cfg.direction)  # a bad direction stops here, before any work
    methods = check_methods(cfg.methods, cfg.train_presets)
    from mrtrans.methods import method_class

    for label, m in methods.items():  # the question is what unpaired training on skewed domains does
        if method_class(load_config(TrainConfig, [m, *cfg.train_presets]).method).paired:
            raise MrtransError(
                f"--method {m}: {label} trains on paired slices; this benchmark skews the tumor share of unpaired "
                "training domains, which a paired method never sees. Compare it with `mrtrans evaluate` instead"
            )
    ws = Workspace.resume(out, OutputKind.benchmark, cfg, root)
    out, stage = ws.out, ws.stage
    if root is None:
        root = ws.synthetic_root(cfg.synth)

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
    schedule = {**epoch_schedule(cfg.epochs), "run.checkpoint_every": 10**9, "run.sample_every": 10**9}
    grid = [
        TrainJob(
            out / "data" / spec.setting,
            out / "runs" / spec.name,
            cfg.direction,
            load_config(TrainConfig, [methods[spec.method], *cfg.train_presets], {**schedule, "run.seed": spec.seed}),
        )
        for spec in specs
    ]
    train_grid(grid, cfg.jobs, stage)

    stage(f"evaluate {len(specs)} runs on the shared test slices -> {out / 'report'}")
    adopt_legacy(out / "report", OutputKind.report)  # an unmarked report of mrtrans < 0.2: replaced like a marked one
    evaluate_runs(
        [out / "runs" / s.name for s in specs],
        out / "data" / "balanced",
        out / "report",
        cfg.evaluation,
        cache_dir=out / "cache",
        overwrite=True,
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
COLUMNS = TUMOR_COLUMNS + [f"brain_{m}" for m in METRICS]  # every metric of the registry, brain_shared protocol
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
        for metric in METRICS:
            row[f"brain_{metric}"] = float(b[f"{metric}_mean"].iloc[0]) if len(b) else np.nan
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
    from mrtrans.data_prep.slices import Direction, PreparedSlices
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
