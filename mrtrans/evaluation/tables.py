"""Report tables: per slice, per subject, summary, tumor consistency, and Table 1 as Markdown and LaTeX.

Column names, units and definitions are in docs/evaluation.md; ``metrics.json`` in every report
repeats them next to the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mrtrans.config import EvalConfig, to_dict
from mrtrans.data.slices import Direction
from mrtrans.provenance import git_commit, versions
from mrtrans.resources import resource_dir

if TYPE_CHECKING:
    from mrtrans.evaluation.evaluate import Scored

METRICS = ["mae", "mse", "psnr", "ssim"]
KEYS = ["run", "method", "direction", "protocol", "region"]
DISPLAY = {"flair": "Flair", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
ARROWS = {"mae": "↓", "mse": "↓", "psnr": "↑", "ssim": "↑"}
PAPER_METHODS = {"CycleGAN": "cyclegan", "HarmonicGAN-histogram": "harmonicgan-histogram", "HarmonicGAN-VGG": "harmonicgan-vgg"}

DEFINITIONS = {
    "protocols": {
        "paper": "whole 256x256 slice incl. background, intensities mapped to 0-255; PSNR = 10 log10(255^2/MSE); "
        "SSIM data_range 255, Gaussian window sigma 1.5 (11x11), population covariance",
        "brain": "each image clipped to its own 0.5-99.5 brain percentiles, scaled to [0, 1]; metrics inside the region; "
        "PSNR data range 1; one SSIM map per image averaged over the region",
    },
    "regions": {"whole": "all pixels (paper)", "brain": "brain mask (brain)", "tumor": "seg > 0",
                "healthy": "brain minus tumor"},  # fmt: skip
    "ssim_region": "mean of the SSIM map over region pixels at least 5 px from the slice border",
    "psnr_cap_db": 100.0,
    "contrast": "mean tumor intensity / mean healthy-brain intensity on the 0-255 images",
    "audit": "BasicUNet trained on real target training slices; removed = tumor slice with < min_detected_pixels "
    "detected; added = healthy slice with >= min_detected_pixels detected; dice on tumor slices",
}


def direction_label(name: str) -> str:
    d = Direction.parse(name)
    return f"{DISPLAY.get(d.source, d.source)} → {DISPLAY.get(d.target, d.target)}"


def summarize(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over slices per run, direction, protocol and region (std with ddof=1)."""
    g = per_slice.groupby(KEYS, sort=False)[METRICS]
    out = g.agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["n_slices"] = g.size()
    return out.reset_index()


def tumor_summary(consistency: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (run, method, direction), df in consistency.groupby(["run", "method", "direction"], sort=False):
        tumor, healthy = df[df["label"] == "tumor"], df[df["label"] == "healthy"]
        row = {"run": run, "method": method, "direction": direction,
               "n_tumor_slices": len(tumor), "n_healthy_slices": len(healthy),
               "contrast_real_mean": tumor["contrast_real"].mean(), "contrast_pred_mean": tumor["contrast_pred"].mean(),
               "contrast_abs_error_mean": tumor["contrast_error"].abs().mean()}  # fmt: skip
        if "dice" in df:
            row |= {"dice_mean": tumor["dice"].mean(), "dice_std": tumor["dice"].std(),
                    "removed_rate": tumor["removed"].mean(), "added_rate": healthy["added"].mean()}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.3f}" if metric == "ssim" else f"{value:.2f}"


def _table_rows(summary: pd.DataFrame, protocol: str, region: str, directions: list[str]) -> list[tuple[str, list[str]]]:
    rows = []
    sel = summary[(summary["protocol"] == protocol) & (summary["region"] == region)]
    for (run, method), df in sel.groupby(["run", "method"], sort=False):
        cells = []
        for d in directions:
            r = df[df["direction"] == d]
            for m in METRICS:
                cells.append(_fmt(float(r[f"{m}_mean"].iloc[0]), m) if len(r) else "–")
        rows.append((f"{run} ({method})", cells))
    return rows


def _paper_rows(directions: list[str]) -> list[tuple[str, list[str]]]:
    ref = pd.read_csv(resource_dir("evaluation") / "paper_table1.csv", comment="#")
    rows = []
    for label in PAPER_METHODS:
        cells = []
        for d in directions:
            r = ref[(ref["method"] == label) & (ref["direction"] == d)]
            cells += [_fmt(float(r[m].iloc[0]), m) if len(r) else "–" for m in METRICS]
        rows.append((f"{label} (reported in the paper, real BRATS)", cells))
    return rows


def markdown_table(title: str, directions: list[str], rows: list[tuple[str, list[str]]]) -> str:
    head = ["Method"] + [f"{direction_label(d)} {m.upper()} {ARROWS[m]}" for d in directions for m in METRICS]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    return "\n".join(lines) + "\n"


def latex_table(title: str, directions: list[str], rows: list[tuple[str, list[str]]]) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")

    arrow = r"$\rightarrow$"
    groups = " & ".join(rf"\multicolumn{{4}}{{c}}{{{esc(direction_label(d)).replace('→', arrow)}}}" for d in directions)
    metric_head = " & ".join(["MAE$\\downarrow$", "MSE$\\downarrow$", "PSNR$\\uparrow$", "SSIM$\\uparrow$"] * len(directions))
    body = "\n".join(f"{esc(name)} & {' & '.join(cells).replace('–', '--')} \\\\" for name, cells in rows)
    return (
        f"% {esc(title)}\n\\begin{{table}}[t]\n\\centering\n\\caption{{{esc(title)}}}\n"
        f"\\begin{{tabular}}{{l{'cccc' * len(directions)}}}\n\\toprule\nMethod & {groups} \\\\\n"
        f"& {metric_head} \\\\\n\\midrule\n{body}\n\\bottomrule\n\\end{{tabular}}\n\\end{{table}}\n"
    )


def consistency_markdown(summary: pd.DataFrame) -> str:
    lines = ["### Tumor-region consistency (hallucination audit and tumor contrast)", "",
             "| Run | Direction | Dice ↑ | Removed ↓ | Added ↓ | Contrast real | Contrast translated | Abs. contrast error ↓ |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in summary.iterrows():
        dice = f"{r['dice_mean']:.3f}" if "dice_mean" in r and not pd.isna(r.get("dice_mean")) else "–"
        removed = f"{r['removed_rate']:.1%}" if "removed_rate" in r and not pd.isna(r.get("removed_rate")) else "–"
        added = f"{r['added_rate']:.1%}" if "added_rate" in r and not pd.isna(r.get("added_rate")) else "–"
        lines.append(f"| {r['run']} ({r['method']}) | {direction_label(r['direction'])} | {dice} | {removed} | {added} | "
                     f"{r['contrast_real_mean']:.3f} | {r['contrast_pred_mean']:.3f} | {r['contrast_abs_error_mean']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_tables(folder: Path, scored: list[tuple[str, "Scored"]], directions: list[Direction], cfg: EvalConfig, figures: bool = True) -> None:
    """Write every table (and figures) of a report into ``folder``."""
    per_slice = pd.concat([s.per_slice for _, s in scored if len(s.per_slice)], ignore_index=True)
    consistency = pd.concat([s.consistency for _, s in scored], ignore_index=True)
    per_slice.to_csv(folder / "per_slice.csv", index=False)
    per_subject = per_slice.groupby([*KEYS, "subject"], sort=False)[METRICS].mean()
    per_subject["n_slices"] = per_slice.groupby([*KEYS, "subject"], sort=False).size()
    per_subject.reset_index().to_csv(folder / "per_subject.csv", index=False)
    summary = summarize(per_slice)
    summary.to_csv(folder / "summary.csv", index=False)
    consistency.to_csv(folder / "tumor_consistency.csv", index=False)
    t_summary = tumor_summary(consistency)
    t_summary.to_csv(folder / "tumor_summary.csv", index=False)

    names = [d.name for d in directions]
    tables = [
        ("Table 1, protocol paper (whole slice, 0-255), mean over test slices", _table_rows(summary, "paper", "whole", names)),
        ("Protocol brain (inside the brain, per-image [0, 1])", _table_rows(summary, "brain", "brain", names)),
        ("Protocol brain, tumor region", _table_rows(summary, "brain", "tumor", names)),
        ("Protocol brain, healthy brain", _table_rows(summary, "brain", "healthy", names)),
    ]
    paper_rows = _paper_rows(names) if set(names) <= {"flair2t1", "t12flair"} else []
    md = ["# Evaluation report", ""]
    for i, (title, rows) in enumerate(tables):
        md.append(markdown_table(title, names, rows + (paper_rows if i == 0 else [])))
    md.append(consistency_markdown(t_summary))
    md.append("Definitions: docs/evaluation.md and metrics.json. Paper rows are the numbers reported by "
              "Zhang et al. (ICLR 2019) on real BRATS, for orientation only.\n")  # fmt: skip
    (folder / "table1.md").write_text("\n".join(md))
    (folder / "table1.tex").write_text(latex_table(tables[0][0], names, tables[0][1] + paper_rows))
    meta = {"definitions": DEFINITIONS, "config": to_dict(cfg), "versions": versions(), "git_commit": git_commit(),
            "columns": {"per_slice.csv": list(per_slice.columns), "summary.csv": list(summary.columns),
                        "tumor_consistency.csv": list(consistency.columns)}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(meta, indent=2))
    if figures and cfg.figure_slices > 0:
        from mrtrans.evaluation.figures import write_figures

        write_figures(folder / "figures", scored, cfg.figure_slices)
