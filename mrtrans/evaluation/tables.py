"""Report tables: per slice, per subject, summary with patient-bootstrap CIs, paired comparisons,
spread over seeds, tumor consistency; Markdown and LaTeX.

The report leads with what separates models from doing nothing (protocol ``brain_shared`` and the
tumor region), then the per-image-rescaled ``brain`` protocol, then the paper's whole-slice protocol
for comparability; the paper's own published numbers stand in a separate table. Column names, units
and definitions are in docs/evaluation.md; ``metrics.json`` in every report repeats them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mrtrans.config import EvalConfig, to_dict
from mrtrans.domain import Direction, direction_label
from mrtrans.evaluation.metrics import METRICS, PSNR_CAP, REGISTRY
from mrtrans.evaluation.scored import Scored
from mrtrans.evaluation.statistics import bootstrap_ratio, paired_difference
from mrtrans.evaluation.tumor_report import (
    consistency_markdown,
    instrument_validity,
    lead_directions,
    tumor_per_subject,
    tumor_summary,
)
from mrtrans.provenance import git_commit, versions
from mrtrans.resources import resource_dir

KEYS = ["run", "method", "direction", "protocol", "region"]
PAPER_METHODS = ["CycleGAN", "DiscoGAN", "DistanceGAN", "UNIT", "HarmonicGAN-histogram", "HarmonicGAN-VGG"]

DEFINITIONS = {
    "protocols": {
        "brain_shared": "inside the brain mask, both images on the shared prepare-brats normalisation (model range -> "
        "[0, 1], no per-image rescaling): intensity and structure errors count; PSNR data range 1",
        "brain": "each image clipped to its own 0.5-99.5 brain percentiles and scaled to [0, 1] (structure, not "
        "intensity); metrics inside the region; PSNR data range 1",
        "paper": "the paper's protocol: whole 256x256 slice incl. background, intensities mapped to 0-255; "
        "PSNR = 10 log10(255^2/MSE); SSIM data_range 255, Gaussian window sigma 1.5 (11x11), population covariance",
    },
    "regions": {
        "whole": "all pixels (paper)",
        "brain": "brain mask",
        "tumor": "seg > 0",
        "healthy": "brain minus tumor",
    },
    "metrics": {
        name: f"{m.definition} ({'higher' if m.higher_is_better else 'lower'} is better)"
        for name, m in REGISTRY.items()
    },
    "psnr_cap_db": PSNR_CAP,
    "ci": "percentile bootstrap over patients (resample subjects with replacement, recompute the mean over their "
    "slices)",
    "paired": "per-patient mean of run minus reference; bootstrap CI over patients; Wilcoxon signed-rank p (scipy)",
    "presence": "per reference lesion (8-connected component >= min_lesion_pixels of the sequence's tumor region: "
    "core without edema for T1/T1ce, whole tumor for FLAIR/T2): signed CNR = (mean lesion - mean ring) / max(std ring, "
    "noise_floor), ring = healthy brain within ring_width px beyond the nearest healthy pixel; present = |CNR| > "
    "threshold, the (1 - false_present_rate) quantile of |CNR| on the real target with its tumors inpainted; judgeable "
    "= present in the real target; keepable = judgeable and |CNR source| above the source's own inpainted-calibrated "
    "threshold and the target's (stratum keepable / not_in_source / not_judgeable); outcomes of judgeable lesions: "
    "erased, present_same (real polarity), present_opposite; rates per stratum (keepable_erased_rate, ...); "
    "cnr_error = |CNR pred - CNR real| of keepable present_same lesions; the sanity-inpainted row is judged with "
    "cross-fitted thresholds (calibrated on the other half of the patients)",
    "segmentation": "BasicUNet trained on the real target training slices (one polarity) for the sequence's tumor "
    "region; a reference lesion is found when the segmentation covers >= min_overlap of its pixels (seg_found_rate "
    "over all reference lesions, seg_keepable_missed_rate over keepable ones); seg_dice over tumor slices; "
    "seg_healthy_with_false_rate = share of healthy slices with a segmented lesion outside every tumor label",
    "additions": "BasicUNet trained on real target training slices and copies whose tumors are inverted in their own "
    "context (both polarities) for the sequence's tumor region; added = detected lesions overlapping no tumor label; "
    "healthy_with_added_rate = share of healthy slices with one",
    "copy-source": "the source slice itself scored as the translation: the trivial baseline",
}


def _per_subject_sums(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    valid = df[df[column].notna()]
    g = valid.groupby("subject", sort=True)[column]
    return g.sum().to_numpy(), g.count().to_numpy(np.float64)


def summarize(per_slice: pd.DataFrame, cfg: EvalConfig) -> pd.DataFrame:
    """Mean over slices, std over slices (ddof 1) and the patient-bootstrap CI of the mean, per KEYS group."""
    rows = []
    for keys, df in per_slice.groupby(KEYS, sort=False):
        row = dict(zip(KEYS, keys))
        for m in METRICS:
            mean, low, high = bootstrap_ratio(
                *_per_subject_sums(df, m), cfg.bootstrap_resamples, cfg.bootstrap_seed, cfg.confidence
            )
            row |= {f"{m}_mean": mean, f"{m}_std": df[m].std(), f"{m}_ci_low": low, f"{m}_ci_high": high}
        row |= {"n_slices": len(df), "n_subjects": df["subject"].nunique()}
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(per_slice: pd.DataFrame, reference: str | None, cfg: EvalConfig) -> pd.DataFrame:
    """Every run (and copy-source) against ``reference``: per-patient differences of each metric."""
    if reference is None or reference not in set(per_slice["run"]):
        return pd.DataFrame()
    subj = per_slice.groupby([*KEYS, "subject"], sort=False)[list(METRICS)].mean().reset_index()
    ref = subj[subj["run"] == reference].drop(columns=["run", "method"])
    rows = []
    for (run, method), df in subj[subj["run"] != reference].groupby(["run", "method"], sort=False):
        merged = df.merge(ref, on=["direction", "protocol", "region", "subject"], suffixes=("", "_ref"))
        for (direction, protocol, region), m in merged.groupby(["direction", "protocol", "region"], sort=False):
            for metric in METRICS:
                stats = paired_difference(
                    m[metric].to_numpy(),
                    m[f"{metric}_ref"].to_numpy(),
                    cfg.bootstrap_resamples,
                    cfg.bootstrap_seed,
                    cfg.confidence,
                )
                rows.append(
                    {
                        "run": run,
                        "method": method,
                        "reference": reference,
                        "direction": direction,
                        "protocol": protocol,
                        "region": region,
                        "metric": metric,
                        **stats,
                    }
                )
    return pd.DataFrame(rows)


def seed_table(summary: pd.DataFrame, groups: dict[str, str]) -> pd.DataFrame:
    """Runs that differ only in their seed: mean and standard deviation (ddof 1) of the run means."""
    sizes = pd.Series(groups).value_counts()
    multi = {run: g for run, g in groups.items() if sizes[g] > 1}
    if not multi:
        return pd.DataFrame()
    sel = summary[summary["run"].isin(multi)].assign(group=lambda d: d["run"].map(multi))
    g = sel.groupby(["group", "direction", "protocol", "region"], sort=False)
    out = g[[f"{m}_mean" for m in METRICS]].agg(["mean", "std"])
    out.columns = [f"{c.removesuffix('_mean')}_{s}_over_seeds" for c, s in out.columns]
    out["n_seeds"] = g.size()
    out["runs"] = g["run"].agg(lambda r: " ".join(r))
    return out.reset_index()


def _num(value: float, metric: str) -> str:
    return REGISTRY[metric].format(value)


def _ci_cell(row: pd.Series, metric: str) -> str:
    mean = row[f"{metric}_mean"]
    if pd.isna(row.get(f"{metric}_ci_low")):
        return _num(mean, metric)
    return f"{_num(mean, metric)} [{_num(row[f'{metric}_ci_low'], metric)}, {_num(row[f'{metric}_ci_high'], metric)}]"


def _table_rows(
    summary: pd.DataFrame, protocol: str, region: str, directions: list[str], ci: bool = True
) -> list[tuple[str, list[str]]]:
    rows = []
    sel = summary[(summary["protocol"] == protocol) & (summary["region"] == region)]
    for (run, method), df in sel.groupby(["run", "method"], sort=False):
        cells = []
        for d in directions:
            r = df[df["direction"] == d]
            for m in METRICS:
                if not len(r):
                    cells.append("–")
                else:
                    cells.append(_ci_cell(r.iloc[0], m) if ci else _num(float(r[f"{m}_mean"].iloc[0]), m))
        rows.append((run if run == method else f"{run} ({method})", cells))
    return rows


def _paper_rows(directions: list[str]) -> list[tuple[str, list[str]]]:
    ref = pd.read_csv(resource_dir("evaluation") / "paper_table1.csv", comment="#")
    rows = []
    for label in PAPER_METHODS:
        cells = []
        for d in directions:
            r = ref[(ref["method"] == label) & (ref["direction"] == d)]
            cells += [
                _num(float(r[m].iloc[0]), m) if len(r) and m in r else "–" for m in METRICS
            ]  # MS-SSIM, r: not in it
        rows.append((label, cells))
    return rows


def markdown_table(title: str, directions: list[str], rows: list[tuple[str, list[str]]], note: str = "") -> str:
    head = ["Method"] + [
        f"{direction_label(d)} {REGISTRY[m].label} {REGISTRY[m].arrow}" for d in directions for m in METRICS
    ]
    lines = [f"### {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    return "\n".join(lines) + "\n"


def latex_table(title: str, directions: list[str], rows: list[tuple[str, list[str]]]) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")

    arrow = r"$\rightarrow$"
    width = len(METRICS)
    groups = " & ".join(
        rf"\multicolumn{{{width}}}{{c}}{{{esc(direction_label(d)).replace('→', arrow)}}}" for d in directions
    )
    heads = [
        esc(REGISTRY[m].label) + ("$\\uparrow$" if REGISTRY[m].higher_is_better else "$\\downarrow$") for m in METRICS
    ]
    metric_head = " & ".join(heads * len(directions))
    body = "\n".join(f"{esc(name)} & {' & '.join(cells).replace('–', '--')} \\\\" for name, cells in rows)
    return (
        f"% {esc(title)}\n\\begin{{table}}[t]\n\\centering\n\\caption{{{esc(title)}}}\n"
        f"\\begin{{tabular}}{{l{'c' * width * len(directions)}}}\n\\toprule\nMethod & {groups} \\\\\n"
        f"& {metric_head} \\\\\n\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}\n\\end{{table}}\n"
    )


def paired_markdown(paired: pd.DataFrame) -> str:
    if paired.empty:
        return ""
    reference = paired["reference"].iloc[0]
    lines = [
        f"### Paired comparison with `{reference}` (protocol brain_shared, per patient)",
        "",
        "Mean per-patient difference run - reference [bootstrap CI over patients], Wilcoxon signed-rank p. "
        "Negative MAE and positive SSIM differences favour the run. With n patients the exact test cannot give a "
        "p below 2/2^n (0.0625 at 5, 0.5 at 2): where that is above the test level the cell says so instead of "
        "printing a p.",
        "",
        "| Run | Direction | Region | n patients | MAE diff | p | SSIM diff | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sel = paired[(paired["protocol"] == "brain_shared") & paired["region"].isin(["brain", "tumor"])]
    for (run, direction, region), df in sel.groupby(["run", "direction", "region"], sort=False):
        m = df.set_index("metric")
        cells = []
        for metric in ("mae", "ssim"):
            r = m.loc[metric]
            cells += [
                f"{r['mean_difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                r["p_note"] or "–" if pd.isna(r["p_wilcoxon"]) else f"{r['p_wilcoxon']:.3g}",
            ]
        lines.append(
            f"| {run} | {direction_label(direction)} | {region} | {int(m.loc['mae', 'n_patients'])} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def seeds_markdown(seeds: pd.DataFrame) -> str:
    if seeds.empty:
        return ""
    lines = [
        "### Across seeds (protocol brain_shared, brain region)",
        "",
        "Runs whose configurations differ only in the seed: mean ± standard deviation of the run means.",
        "",
        "| Group | Direction | Seeds | MAE ↓ | SSIM ↑ |",
        "|---|---|---|---|---|",
    ]
    sel = seeds[(seeds["protocol"] == "brain_shared") & (seeds["region"] == "brain")]
    for _, r in sel.iterrows():
        lines.append(
            f"| {r['group']} | {direction_label(r['direction'])} | {r['n_seeds']} ({r['runs']}) | "
            f"{r['mae_mean_over_seeds']:.3f} ± {r['mae_std_over_seeds']:.3f} | "
            f"{r['ssim_mean_over_seeds']:.3f} ± {r['ssim_std_over_seeds']:.3f} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class ReportTables:
    """Every table of one report, computed (:func:`report_tables`), before any is written or rendered."""

    per_slice: pd.DataFrame
    per_subject: pd.DataFrame
    summary: pd.DataFrame
    consistency: pd.DataFrame
    lesions: pd.DataFrame
    tumor: pd.DataFrame  # tumor_summary.csv
    validity: pd.DataFrame
    paired: pd.DataFrame
    seeds: pd.DataFrame


def report_tables(
    scored: list[tuple[str, Scored]], cfg: EvalConfig, groups: dict[str, str], reference: str | None, mode: str
) -> ReportTables:
    """The statistics of a report: per slice and subject, the summary with CIs, tumor tables, paired and seeds."""
    per_slice = pd.concat([s.per_slice for _, s in scored if len(s.per_slice)], ignore_index=True)
    per_slice.insert(0, "mode", mode)
    consistency = pd.concat([s.consistency for _, s in scored], ignore_index=True)
    per_subject = per_slice.groupby([*KEYS, "subject"], sort=False)[list(METRICS)].mean()
    per_subject["n_slices"] = per_slice.groupby([*KEYS, "subject"], sort=False).size()
    summary = summarize(per_slice, cfg)
    summary.insert(0, "mode", mode)
    lesion_tables = [s.lesions for _, s in scored if s.lesions is not None]
    lesions = pd.concat(lesion_tables, ignore_index=True) if lesion_tables else pd.DataFrame()
    tumor = tumor_summary(consistency, lesions, cfg)
    return ReportTables(
        per_slice,
        per_subject.reset_index(),
        summary,
        consistency,
        lesions,
        tumor,
        instrument_validity(tumor, cfg),
        paired_table(per_slice, reference, cfg),
        seed_table(summary, groups),
    )


def _write_csvs(folder: Path, t: ReportTables, trained_on_test: dict[str, bool] | None) -> None:
    """The report's CSV files; with ``trained_on_test``, every table that has runs says which trained on test
    patients."""

    def stamped(frame: pd.DataFrame) -> pd.DataFrame:
        if trained_on_test is None or "run" not in frame:
            return frame
        return frame.assign(trained_on_test_patients=frame["run"].map(trained_on_test).fillna(False).astype(bool))

    tables = {
        "per_slice.csv": t.per_slice,
        "per_subject.csv": t.per_subject,
        "summary.csv": t.summary,
        "tumor_consistency.csv": t.consistency,
        "tumor_lesions.csv": t.lesions,
        "tumor_summary.csv": t.tumor,
        "tumor_validity.csv": t.validity,
        "paired.csv": t.paired,
        "seeds.csv": t.seeds,
    }
    if len(t.lesions) or "added_lesions" in t.consistency:
        tables["tumor_per_subject.csv"] = tumor_per_subject(t.consistency, t.lesions)
    for name, frame in tables.items():
        if len(frame) or name in (
            "per_slice.csv",
            "per_subject.csv",
            "summary.csv",
            "tumor_consistency.csv",
            "tumor_summary.csv",
        ):
            stamped(frame).to_csv(folder / name, index=False)


def _report_markdown(
    t: ReportTables, names: list[str], cfg: EvalConfig, mode: str, trained_on_test: dict[str, bool] | None
) -> str:
    """report.md: what separates models from doing nothing first, the paper's protocol and numbers last."""
    n_subjects = t.per_slice["subject"].nunique()
    lead = t.per_slice[(t.per_slice["protocol"] == "brain_shared") & (t.per_slice["region"] == "brain")]
    n_slices = lead.groupby(["run", "direction"]).size().max() if mode == "slices" else None
    level = f"{cfg.confidence:.0%}"
    md = ["# Evaluation report", ""]
    if trained_on_test and any(trained_on_test.values()):
        leaky = ", ".join(run for run, flag in trained_on_test.items() if flag)
        md += [
            f"**Scored on patients the run trained on ({leaky}; --allow-training-patients): these runs' numbers are "
            "optimistic and not a test result. Every table marks them (`trained_on_test_patients`).**",
            "",
        ]
    md += [
        f"Mode: **{mode}** "
        f"({'prepared paired test slices' if mode == 'slices' else 'evaluate-volumes on translated volumes'}; "
        f"tables of the two modes are not comparable). {n_subjects} patients"
        + (f", {n_slices} slices per run and direction" if n_slices else "")
        + f". Cells: mean over slices [{level} CI, bootstrap over patients, {cfg.bootstrap_resamples} resamples]. "
        "`copy-source` is the source slice itself scored as the translation: a model must beat it.",
    ]
    if n_subjects < 5:
        md.append(
            f"**Only {n_subjects} test patients: intervals that resample so few patients are unreliable; "
            "prepare with more subjects (or a larger --test-fraction) before drawing conclusions.**"
        )
    summary = t.summary

    def table(title: str, protocol: str, region: str, note: str = "") -> str:
        return markdown_table(title, names, _table_rows(summary, protocol, region, names), note)

    md += [
        table("Brain, shared normalisation (protocol brain_shared): intensity and structure", "brain_shared", "brain"),
        table("Tumor region (protocol brain_shared)", "brain_shared", "tumor"),
        consistency_markdown(t.tumor, lead_directions(t.tumor, names), t.validity),
        paired_markdown(t.paired),
        seeds_markdown(t.seeds),
        table(
            "Brain, per-image rescaling (protocol brain): structure only",
            "brain",
            "brain",
            "Each image is rescaled by its own brain percentiles, so a global intensity error is hidden.",
        ),
        table("Healthy brain (protocol brain_shared)", "brain_shared", "healthy"),
        table(
            PAPER_TITLE, "paper", "whole", "Background dominates whole-slice numbers: compare with the copy-source row."
        ),
    ]
    if set(names) <= {"flair2t1", "t12flair"}:
        md.append(
            markdown_table(
                "Numbers reported in the paper (Zhang et al., ICLR 2019, Table 1) - not our data",
                names,
                _paper_rows(names),
                "Published on the authors' BRATS 2015 slices at their scale and slice rules; not a comparison "
                "on the same data, and not reproduced here.",
            )
        )
    md.append("Definitions: docs/evaluation.md and metrics.json.\n")
    return "\n\n".join(m.strip("\n") for m in md if m.strip()) + "\n"


PAPER_TITLE = "The paper's protocol (whole slice incl. background, 0-255), for comparability"


def write_tables(
    folder: Path,
    scored: list[tuple[str, Scored]],
    directions: list[Direction],
    cfg: EvalConfig,
    figures: bool = True,
    groups: dict[str, str] | None = None,
    reference: str | None = None,
    mode: str = "slices",
    trained_on_test: dict[str, bool] | None = None,
) -> None:
    """Write every table (and figures) of a report into ``folder``: the statistics (:func:`report_tables`), their
    CSV files, report.md, the LaTeX tables and metrics.json.

    Args:
        groups: run label -> seed group (runs that differ only in the seed).
        reference: run every other run is compared with (paired.csv).
        mode: ``slices`` (prepared test slices) or ``volumes`` (evaluate-volumes); written into every table.
        trained_on_test: run label -> whether it trained on some test patients (evaluate's
            ``allow_training_patients``): every table gets the column ``trained_on_test_patients`` and report.md
            a warning first.
    """
    t = report_tables(scored, cfg, groups or {}, reference, mode)
    names = [d.name for d in directions]
    _write_csvs(folder, t, trained_on_test)
    (folder / "report.md").write_text(_report_markdown(t, names, cfg, mode, trained_on_test))
    (folder / "paper.tex").write_text(
        latex_table(PAPER_TITLE, names, _table_rows(t.summary, "paper", "whole", names, ci=False))
    )
    brain_title = "Brain, shared normalisation (protocol brain_shared)"
    (folder / "brain.tex").write_text(
        latex_table(brain_title, names, _table_rows(t.summary, "brain_shared", "brain", names))
    )
    meta = {
        "mode": mode,
        "definitions": DEFINITIONS,
        "config": to_dict(cfg),
        "reference": reference,
        "groups": groups or {},
        "versions": versions(),
        "git_commit": git_commit(),
        "columns": {
            "per_slice.csv": list(t.per_slice.columns),
            "summary.csv": list(t.summary.columns),
            "tumor_consistency.csv": list(t.consistency.columns),
            "tumor_summary.csv": list(t.tumor.columns),
        },
    }
    (folder / "metrics.json").write_text(json.dumps(meta, indent=2))
    if figures and cfg.figure_slices > 0:
        from mrtrans.evaluation.figures import write_figures  # matplotlib: only when figures are asked for

        write_figures(folder / "figures", scored, cfg.figure_slices)
