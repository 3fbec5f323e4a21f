"""The hallucination benchmark's tables, claim test and report (:mod:`.hallucination` runs the experiment).

From every evaluation report of the benchmark (one per checkpoint: ``best``, ``last``, kept steps):

* ``hallucination.csv``: one row per run, direction and checkpoint, with the copy-source, ceiling and sanity rows;
* ``hallucination_summary.csv``: mean and standard deviation over seeds;
* ``graph.csv``: can the smoothness term act on these lesions (graph statistics of the source test slices)?
* ``claims.csv``: per checkpoint, setting, direction and outcome of each instrument, each method against the
  reference (the first method): the rate difference with a hierarchical-bootstrap interval over seeds,
  patients and units, the answer (better / worse / equivalent / inconclusive / not at this scale / cannot
  decide), and at the primary checkpoint the smallest difference the comparison could detect.

Outcomes and their instruments (docs/evaluation.md): ``erased`` (CNR presence, over keepable lesions), ``missed``
(the segmenter, over the same keepable lesions), ``added`` (the two-polarity detector, over healthy slices),
``false lesion`` (the segmenter, over healthy slices).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mrtrans.config import TrainConfig, load_config, resolve_patch_size
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.domain import Direction
from mrtrans.evaluation import audit
from mrtrans.evaluation.graph import graph_statistics, summarize_graph
from mrtrans.evaluation.metrics import METRICS
from mrtrans.evaluation.statistics import claim_answer, detectable_difference, hierarchical_bootstrap_difference
from mrtrans.experiments.workspace import method_label

if TYPE_CHECKING:  # the runner imports this module; its types are only named here
    from mrtrans.experiments.hallucination import HallucinationConfig, RunSpec

# Per run and direction, from `mrtrans evaluate`'s tumor tables: CNR presence over keepable lesions, the segmenter's
# findings, the detector's additions; brain metrics on the shared normalisation. Counts stand beside every rate.
TUMOR_COLUMNS = [
    "keepable_erased_rate",
    "keepable_present_same_rate",
    "keepable_present_opposite_rate",
    "seg_keepable_missed_rate",
    "seg_found_rate",
    "seg_dice_mean",
    "healthy_with_added_rate",
    "seg_healthy_with_false_rate",
]
COUNT_COLUMNS = ["keepable_lesions", "judgeable_lesions", "lesions", "n_healthy_slices"]
COLUMNS = TUMOR_COLUMNS + [f"brain_{m}" for m in METRICS]  # every metric of the registry, brain_shared protocol
# Outcome -> (instrument, the validity aspect that says whether it can decide).
OUTCOMES = {
    "erased": ("CNR", "removal"),
    "missed": ("segmenter", "segmentation"),
    "added": ("detector", "additions"),
    "false lesion": ("segmenter", "segmentation"),
}
# What each setting tests: target0 pushes towards removal (no unpaired method can learn the target's tumor contrast
# there, so only presence is tested), target100 towards addition, balanced (the paper's) both.
SETTING_OUTCOMES = {
    "balanced": ("erased", "missed", "added", "false lesion"),
    "target0": ("erased", "missed"),
    "target100": ("added", "false lesion"),
}
PAIRS = (("erased", "missed"), ("added", "false lesion"))  # the two instruments of removal and of additions


def setting_name(target_fraction: float) -> str:
    """0.5 -> balanced (the paper's own setting), 0 -> target0, 1 -> target100."""
    return "balanced" if target_fraction == 0.5 else f"target{round(100 * target_fraction)}"


def report_folder(out: Path, point: str, primary: str) -> Path:
    """``report`` for the primary checkpoint, ``report-<point>`` for the others."""
    return out / ("report" if point == primary else f"report-{point}")


def read_report(folder: Path, name: str) -> pd.DataFrame | None:
    """A CSV of an evaluation report, None when that report has none."""
    path = folder / name
    return pd.read_csv(path) if path.is_file() else None


def collect(report: Path, specs: list[RunSpec], point: str) -> pd.DataFrame:
    """One row per (run, direction) of one evaluation report, with the copy-source, ceiling and sanity rows."""
    tumor = pd.read_csv(report / "tumor_summary.csv")
    summary = pd.read_csv(report / "summary.csv")
    chosen = read_report(report, "checkpoints.csv")
    steps = dict(zip(chosen["run"], chosen["step"])) if chosen is not None and "step" in chosen else {}
    brain = summary[(summary["protocol"] == "brain_shared") & (summary["region"] == "brain")]
    by_name = {s.name: s for s in specs}
    rows = []
    for _, t in tumor.iterrows():
        spec = by_name.get(t["run"])
        b = brain[(brain["run"] == t["run"]) & (brain["direction"] == t["direction"])]
        row = {
            "point": point,
            "step": steps.get(t["run"], np.nan),
            "setting": spec.setting if spec else "all",
            "method": spec.method if spec else t["run"],
            "ceiling": bool(spec and spec.ceiling),
            "seed": spec.seed if spec else np.nan,
            "run": t["run"],
            "direction": t["direction"],
        }
        row |= {column: t.get(column, np.nan) for column in TUMOR_COLUMNS + COUNT_COLUMNS}
        for metric in METRICS:
            row[f"brain_{metric}"] = float(b[f"{metric}_mean"].iloc[0]) if len(b) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_seeds(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1) and count over seeds per checkpoint, setting, method and direction."""
    g = per_run.groupby(["point", "setting", "method", "direction"], sort=False)
    out = g[COLUMNS + ["step"]].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    for column in [*COUNT_COLUMNS, "ceiling"]:
        out[column] = g[column].first()
    out["n_seeds"] = g["seed"].count()
    return out.reset_index()


def graph_table(data: Path, cfg: HallucinationConfig, methods: dict[str, str]) -> pd.DataFrame:
    """Graph statistics of the smoothness term (:mod:`mrtrans.evaluation.graph`) on the test set, per direction,
    with the loss settings of the first method that has the term (the reference's otherwise)."""
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


def _units(report: Path, outcome: str, direction: str) -> tuple[pd.DataFrame, str]:
    """The units an outcome is counted over (keepable lesions or healthy slices) and the hit column's rule."""
    if outcome in ("erased", "missed"):
        table = read_report(report, "tumor_lesions.csv")
        if table is None or (outcome == "missed" and "seg_found" not in table):
            return pd.DataFrame(columns=["run", "subject"]), ""
        table = table[(table["direction"] == direction) & (table["stratum"] == "keepable") & (table["outcome"] != "")]
        return table.sort_values(["subject", "slice_index", "lesion"]), outcome
    table = pd.read_csv(report / "tumor_consistency.csv")
    column = "added_lesions" if outcome == "added" else "seg_false_lesions"
    if column not in table:
        return pd.DataFrame(columns=["run", "subject"]), ""
    table = table[(table["direction"] == direction) & (table["label"] == "healthy")]
    return table.sort_values(["subject", "slice_index"]), outcome


def _hits(units: pd.DataFrame, outcome: str, runs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(runs, units) 0/1 hits and (units,) patients; every run has the same units in the same order."""
    rule = {
        "erased": lambda t: t["outcome"] == "erased",
        "missed": lambda t: ~t["seg_found"].astype(bool),
        "added": lambda t: t["added_lesions"] > 0,
        "false lesion": lambda t: t["seg_false_lesions"] > 0,
    }.get(outcome)
    rows = [units[units["run"] == r] for r in runs]
    if rule is None or not rows or not len(rows[0]):
        return np.zeros((len(runs), 0)), np.zeros(0)
    return np.stack([rule(r).to_numpy(np.float64) for r in rows]), rows[0]["subject"].to_numpy()


def _answer(diff: dict, decidable: bool, can_act: bool, margin: float) -> str:
    if not can_act:
        return "not at this scale"
    if not decidable or not diff:
        return "cannot decide"
    return claim_answer(diff, margin)


def _detectable(cfg: HallucinationConfig, a: np.ndarray, b: np.ndarray, patients: np.ndarray, rate_b: float) -> dict:
    """The comparison's smallest detectable differences (and the seed spread they assume)."""
    per_seed = np.concatenate([a.mean(axis=1) - a.mean(), b.mean(axis=1) - b.mean()])
    dof = len(a) + len(b) - 2
    seed_sd = float(np.sqrt((per_seed**2).sum() / dof)) if dof > 0 else 0.0
    _, counts = np.unique(patients, return_counts=True)
    found = detectable_difference(
        counts,
        min(len(a), len(b)),
        rate_b,
        cfg.claim_margin,
        seed_sd,
        cfg.power_patient_logit_sd,
        cfg.evaluation.confidence,
        cfg.power,
        resamples=cfg.power_resamples,
        simulations=cfg.power_simulations,
    )
    return found | {"seed_sd": seed_sd}


def claim_table(
    report: Path,
    specs: list[RunSpec],
    cfg: HallucinationConfig,
    methods: dict[str, str],
    graphs: pd.DataFrame,
    point: str,
    detectable: bool,
) -> pd.DataFrame:
    """Per setting, direction and outcome at one checkpoint: each method against the reference (the first), the
    rate difference with a hierarchical bootstrap over seeds, test patients and units, and the answer; with
    ``detectable``, the smallest differences the comparison could detect."""
    validity = read_report(report, "tumor_validity.csv")
    decidable = {} if validity is None else {(r.direction, r.aspect): bool(r.decidable) for r in validity.itertuples()}
    can_act = graphs.set_index("direction")["mechanism_can_act"]
    labels, rows = list(methods), []
    for setting in dict.fromkeys(s.setting for s in specs if not s.ceiling):
        runs = {m: [s.name for s in specs if s.setting == setting and s.method == m] for m in labels}
        for direction in graphs["direction"]:
            for outcome in SETTING_OUTCOMES.get(setting, tuple(OUTCOMES)):
                units, rule = _units(report, outcome, direction)
                ref_hits, patients = _hits(units, rule, runs[labels[0]])
                for method in labels[1:]:
                    hits, _ = _hits(units, rule, runs[method])
                    diff = {}
                    if hits.size and ref_hits.size:
                        diff = hierarchical_bootstrap_difference(
                            hits,
                            ref_hits,
                            patients,
                            cfg.claim_resamples,
                            cfg.evaluation.bootstrap_seed,
                            cfg.evaluation.confidence,
                        )
                    instrument, aspect = OUTCOMES[outcome]
                    answer = _answer(
                        diff,
                        decidable.get((direction, aspect), False),
                        bool(can_act.get(direction, False)),
                        cfg.claim_margin,
                    )
                    row = {
                        "point": point,
                        "setting": setting,
                        "direction": direction,
                        "outcome": outcome,
                        "instrument": instrument,
                        "method": method,
                        "reference": labels[0],
                        "answer": answer,
                        "margin": cfg.claim_margin,
                        **diff,
                    }
                    if diff:
                        row["excludes_zero"] = bool(diff["ci_low"] > 0 or diff["ci_high"] < 0)
                    if detectable and diff:  # what the data could detect, whether or not the instrument can decide
                        row |= _detectable(cfg, hits, ref_hits, patients, diff["rate_b"])
                    rows.append(row)
    return _mark_disagreements(pd.DataFrame(rows))


def _mark_disagreements(claims: pd.DataFrame) -> pd.DataFrame:
    """``instruments_disagree``: the two instruments of removal (or of additions) give decided answers that differ
    for the same checkpoint, setting, direction and method."""
    if claims.empty:
        return claims
    claims = claims.assign(instruments_disagree=False)
    decided = ("better", "worse", "equivalent")
    keys = ["point", "setting", "direction", "method"]
    for first, second in PAIRS:
        a = claims[claims["outcome"] == first].set_index(keys)["answer"]
        b = claims[claims["outcome"] == second].set_index(keys)["answer"]
        both = a.index.intersection(b.index)
        differ = [k for k in both if a[k] in decided and b[k] in decided and a[k] != b[k]]
        for key in differ:
            mask = np.logical_and.reduce([claims[c] == v for c, v in zip(keys, key)])
            claims.loc[mask & claims["outcome"].isin([first, second]), "instruments_disagree"] = True
    return claims


def tables(
    out: Path, cfg: HallucinationConfig, specs: dict[str, list[RunSpec]], methods: dict[str, str]
) -> dict[str, pd.DataFrame]:
    """Every table of the benchmark, by file name, from the evaluation reports of each point (primary first) and
    the runs scored there (``specs``)."""
    graphs = graph_table(out / "data" / "balanced", cfg, methods)
    per_run, claims = [], []
    points = list(specs)
    for point, point_specs in specs.items():
        folder = report_folder(out, point, points[0])
        per_run.append(collect(folder, point_specs, point))
        claims.append(claim_table(folder, point_specs, cfg, methods, graphs, point, detectable=point == points[0]))
    per_run = pd.concat(per_run, ignore_index=True)
    return {
        "hallucination.csv": per_run,
        "hallucination_summary.csv": summarize_seeds(per_run),
        "graph.csv": graphs,
        "claims.csv": pd.concat(claims, ignore_index=True),
    }


# ---- rendering ----------------------------------------------------------------------------------------------------


def _pct(mean: float, std: float = math.nan) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.0%}" + ("" if std is None or math.isnan(std) else f" ± {std:.0%}")


def _num(mean: float, std: float = math.nan) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.3f}" + ("" if std is None or math.isnan(std) else f" ± {std:.3f}")


def _count(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def _intro(cfg: HallucinationConfig, points: list[str]) -> list[str]:
    methods = [method_label(m) for m in cfg.methods]
    ceilings = [method_label(m) for m in cfg.ceiling_methods]
    settings = ", ".join(dict.fromkeys(setting_name(f) for f in cfg.target_tumor_fractions))
    return [
        "# Hallucination benchmark",
        "",
        f"Setting of Cohen et al. (2018): source training slices {cfg.prepare.source_tumor_fraction:.0%} tumor, target "
        f"training slices {', '.join(f'{f:.0%}' for f in cfg.target_tumor_fractions)} tumor ({settings}; balanced is "
        f"the paper's own setting). One balanced paired test set ({cfg.prepare.test_slices} slices, "
        f"{cfg.prepare.image_size}x{cfg.prepare.image_size}). Methods {', '.join(methods)} (the first is the "
        f"reference); seeds {', '.join(map(str, cfg.seeds))}; {cfg.epochs} epochs of {cfg.prepare.train_slices} "
        "slices."
        + (
            f" Ceiling: {', '.join(ceilings)} trained on paired slices of the same training patients, balanced "
            "setting only, as long (what paired supervision keeps at this scale; never compared)."
            if ceilings
            else ""
        )
        + " In target0 no unpaired method can learn the target's tumor contrast, so only removal is tested there; "
        "target100 tests additions.",
        "",
        f"Checkpoints scored: {', '.join(points)}. **Primary answer: `{points[0]}`** (stated before running; best = "
        "the step with the lowest validation brain MAE, on patients held out of training and test); the others show "
        "the trajectory"
        + (
            f" (kept steps: {', '.join(cfg.trajectory_settings)} runs only; best and last: every run)."
            if cfg.trajectory_settings
            else "."
        ),
    ]


def _graph_lines(graphs: pd.DataFrame, cfg: HallucinationConfig) -> list[str]:
    lines = [
        "",
        "## Can the smoothness term act on these tumors?",
        "",
        "The graph of the source test slices as HarmonicGAN's term builds it (docs/training.md): brain patches are "
        "nodes; per reference lesion, the nodes it covers and the edges between them with affinity > 0.1; per node, "
        "the affinity mass of its neighbours; the share of affinity mass linking a tumor node to a healthy one. The "
        f"mechanism is taken to be able to act when lesions span at least {cfg.min_graph_nodes} nodes (median).",
        "",
        "| Direction | Image | Patch | Sigma | Lesions | Tumor nodes per lesion (median) | Tumor-tumor edges (median) "
        "| Effective neighbours per node | Lesion-healthy affinity mass | Mechanism can act |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, g in graphs.iterrows():
        lines.append(
            f"| {g['direction']} | {g['image_size']} | {g['patch_size']} | {g['sigma']:g} | {g['lesions']} | "
            f"{g['tumor_nodes_median']:g} | {g['tumor_edges_median']:g} | {g['effective_neighbours']:.1f} | "
            f"{g['lesion_healthy_mass']:.3f} | {'yes' if g['mechanism_can_act'] else '**no: not at this scale**'} |"
        )
    return lines


def _validity_lines(validity: pd.DataFrame | None) -> list[str]:
    if validity is None or not len(validity):
        return []
    lines = ["", "## Can each instrument decide? (its ceiling and sanity rows, docs/evaluation.md)", ""]
    return lines + [
        f"- {r['direction']}, {r['aspect']}: **{'yes' if r['decidable'] else 'no'}** - {r['reason']}"
        for _, r in validity.iterrows()
    ]


def _outcome_lines(summary: pd.DataFrame, point: str) -> list[str]:
    lines = [
        "",
        f"## Tumor outcomes at `{point}`",
        "",
        "Cells: mean ± standard deviation over seeds. Erased / present: share of the **keepable** reference lesions "
        "(the real target and the source both show them; count in the Keepable column) by CNR presence; Missed: "
        "share of the same lesions the segmenter of the real sequence does not find; Dice: the segmenter's, tumor "
        "slices. Added: share of healthy test slices with a lesion of the two-polarity detector outside every tumor "
        "label; False: the segmenter's. Brain MAE: protocol brain_shared. `copy-source` scores the source slice "
        "itself; `real` is the ceiling (and the additions floor); `sanity-*` show what the instruments can see.",
        "",
        "| Setting | Method | Direction | Keepable / judgeable / all lesions | Erased ↓ | Present, real polarity ↑ | "
        "Present, opposite polarity | Missed (segmenter) ↓ | Dice ↑ | Healthy slices | Added (detector) ↓ | "
        "False (segmenter) ↓ | Brain MAE ↓ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sel = summary[summary["point"] == point]
    sel = sel.assign(_all=sel["setting"] == "all").sort_values(["_all", "ceiling"], kind="stable")
    for _, r in sel.iterrows():
        name = f"{r['method']} (paired ceiling)" if r["ceiling"] else r["method"]
        lines.append(
            f"| {r['setting']} | {name} | {r['direction']} | {_count(r['keepable_lesions'])} / "
            f"{_count(r['judgeable_lesions'])} / {_count(r['lesions'])} | "
            + " | ".join(_pct(r[f"{c}_mean"], r[f"{c}_std"]) for c in TUMOR_COLUMNS[:4])
            + f" | {_num(r['seg_dice_mean_mean'], r['seg_dice_mean_std'])} | {_count(r['n_healthy_slices'])} | "
            f"{_pct(r['healthy_with_added_rate_mean'], r['healthy_with_added_rate_std'])} | "
            f"{_pct(r['seg_healthy_with_false_rate_mean'], r['seg_healthy_with_false_rate_std'])} | "
            f"{_num(r['brain_mae_mean'], r['brain_mae_std'])} |"
        )
    return lines


def _trajectory_lines(summary: pd.DataFrame, points: list[str]) -> list[str]:
    trained = summary[summary["setting"] != "all"]
    if len(points) < 2 or trained.empty:
        return []
    order = [p for p in points if p.startswith("step-")] + [p for p in ("best", "last") if p in points]
    lines = [
        "",
        "## When does each method fade tumors? (trajectory)",
        "",
        "Keepable lesions erased (CNR) / missed by the segmenter / brain MAE, mean over seeds, at each checkpoint "
        "(best: its mean step in brackets).",
        "",
        "| Setting | Method | Direction | " + " | ".join(order) + " |",
        "|---|---|---|" + "---|" * len(order),
    ]
    for (setting, method, direction), df in trained.groupby(["setting", "method", "direction"], sort=False):
        by_point = df.set_index("point")
        method = f"{method} (paired ceiling)" if df["ceiling"].any() else method
        cells = []
        for p in order:
            if p not in by_point.index:
                cells.append("–")
                continue
            r = by_point.loc[p]
            step = f" (step {r['step_mean']:.0f})" if p == "best" and not pd.isna(r["step_mean"]) else ""
            cells.append(
                f"{_pct(r['keepable_erased_rate_mean'])} / {_pct(r['seg_keepable_missed_rate_mean'])} / "
                f"{_num(r['brain_mae_mean'])}{step}"
            )
        lines.append(f"| {setting} | {method} | {direction} | " + " | ".join(cells) + " |")
    return lines


def _claim_lines(claims: pd.DataFrame, cfg: HallucinationConfig, point: str) -> list[str]:
    sel = claims[claims["point"] == point]
    if sel.empty:
        return []
    reference = sel["reference"].iloc[0]
    level = f"{cfg.evaluation.confidence:.0%}"
    m = f"{cfg.claim_margin:.0%}"
    lines = [
        "",
        f"## Does each method erase or add fewer tumors than `{reference}`? (at `{point}`)",
        "",
        f"Difference of rates (method - {reference}) with a {level} interval from a hierarchical bootstrap over seeds, "
        f"test patients and units within patients ({cfg.claim_resamples} resamples). Margin stated before running: "
        f"{m}. **better**: the whole interval below -{m}; **worse**: above +{m}; **equivalent**: the whole interval "
        f"within ±{m}; **inconclusive**: the interval crosses a margin (too wide to tell - not the same as "
        'equivalent; "excludes 0" says when it still shows a difference of unknown size); **not at this scale**: '
        "lesions span too few graph nodes for the term to act; **cannot decide**: the instrument's ceiling or sanity "
        f"rows fail in that direction. Detectable: the smallest true decrease / increase this comparison calls better "
        f"/ worse with {cfg.power:.0%} probability (simulated from its own patients, units and seeds; seed spread as "
        f"observed, patient logit SD {cfg.power_patient_logit_sd:g}); '–': none the reference rate leaves room for.",
        "",
        "| Setting | Direction | Outcome (instrument) | Method | Rate (method / reference) | Units (patients) | "
        "Difference [CI] | Detectable ↓ / ↑ | Answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, c in sel.iterrows():
        rate = "–" if pd.isna(c.get("rate_a")) else f"{c['rate_a']:.0%} / {c['rate_b']:.0%}"
        diff = "–"
        if not pd.isna(c.get("difference")):
            diff = f"{c['difference']:+.0%} [{c['ci_low']:+.0%}, {c['ci_high']:+.0%}]"
            if c["answer"] == "inconclusive" and c.get("excludes_zero"):
                diff += ", excludes 0"
        units = "–" if pd.isna(c.get("n_units")) else f"{int(c['n_units'])} ({int(c['n_patients'])})"
        found = "–"
        if not pd.isna(c.get("seed_sd", np.nan)):
            found = f"{_pct(c.get('detectable_better'))} / {_pct(c.get('detectable_worse'))}"
        flag = " (instruments disagree)" if c.get("instruments_disagree") else ""
        lines.append(
            f"| {c['setting']} | {c['direction']} | {c['outcome']} ({c['instrument']}) | {c['method']} | {rate} | "
            f"{units} | {diff} | {found} | **{c['answer']}**{flag} |"
        )
    return lines


def _other_point_lines(claims: pd.DataFrame, points: list[str]) -> list[str]:
    if len(points) < 2 or claims.empty:
        return []
    lines = [
        "",
        "## The same claims at the other checkpoints",
        "",
        "| Setting | Direction | Outcome | Method | " + " | ".join(points[1:]) + " |",
        "|---|---|---|---|" + "---|" * (len(points) - 1),
    ]
    keys = ["setting", "direction", "outcome", "method"]
    for key, df in claims.groupby(keys, sort=False):
        by_point = df.set_index("point")
        cells = []
        for p in points[1:]:
            if p not in by_point.index:
                cells.append("–")
                continue
            c = by_point.loc[p]
            diff = "" if pd.isna(c.get("difference")) else f" {c['difference']:+.0%}"
            cells.append(f"{c['answer']}{diff}")
        lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(cells) + " |")
    return lines


def markdown(out: Path, cfg: HallucinationConfig, frames: dict[str, pd.DataFrame], points: list[str]) -> str:
    """The benchmark's report: setting, graph statistics, what each instrument can decide, outcomes at the primary
    checkpoint, the trajectory, the claim answers with their detectable differences, and the other checkpoints."""
    validity = read_report(report_folder(out, points[0], points[0]), "tumor_validity.csv")
    lines = _intro(cfg, points) + _graph_lines(frames["graph.csv"], cfg) + _validity_lines(validity)
    lines += _outcome_lines(frames["hallucination_summary.csv"], points[0])
    lines += _trajectory_lines(frames["hallucination_summary.csv"], points)
    lines += _claim_lines(frames["claims.csv"], cfg, points[0])
    lines += _other_point_lines(frames["claims.csv"], points)
    return "\n".join(lines) + "\n"
