"""The tumor instruments' tables: per-lesion presence (keepable lesions first), additions, the segmenter, what
each can decide, and their Markdown.

Statistics (:func:`tumor_summary`, :func:`instrument_validity`, :func:`tumor_per_subject`) and rendering
(:func:`consistency_markdown`) are separate functions; :func:`mrtrans.evaluation.tables.write_tables` calls them.
Definitions: :mod:`.presence` (CNR presence, keepable lesions), :mod:`.audit` (additions),
:mod:`.segmentation` (the segmenter), docs/evaluation.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrtrans.config import EvalConfig
from mrtrans.domain import direction_label
from mrtrans.evaluation import presence
from mrtrans.evaluation.statistics import bootstrap_ratio

PSEUDO_RUNS = ("real", "sanity-inpainted", "sanity-healthy-fill", "sanity-pasted-target", "sanity-pasted-source")


def _patient_rate(hits: pd.Series, subjects: pd.Series, order: list[str], boot: tuple) -> tuple:
    """(count, total, rate, ci_low, ci_high) of boolean ``hits``, bootstrapped over patients (``order``: all
    patients)."""
    hits = hits.astype(bool)
    num = hits.groupby(subjects).sum().reindex(order, fill_value=0).to_numpy(np.float64)
    den = hits.groupby(subjects).count().reindex(order, fill_value=0).to_numpy(np.float64)
    return (int(num.sum()), int(den.sum()), *bootstrap_ratio(num, den, *boot))


def _rate_columns(name: str, rate: tuple, count: str | None = None) -> dict:
    """``{count}`` (default ``{name}_lesions``), ``{name}_rate`` and its CI from a :func:`_patient_rate`."""
    hits, _, est, low, high = rate
    return {
        count or f"{name}_lesions": hits,
        f"{name}_rate": est,
        f"{name}_rate_ci_low": low,
        f"{name}_rate_ci_high": high,
    }


def _presence_row(les: pd.DataFrame, patients: list[str], boot: tuple) -> dict:
    """Per-lesion presence of one run and direction: counts per stratum and outcome rates over each stratum."""
    scored = les[les["outcome"] != ""]
    judged = scored[scored["judgeable"]]
    keepable = judged[judged["stratum"] == "keepable"]
    row = {
        "presence_threshold": float(les["threshold"].iloc[0]),
        "source_threshold": float(les["source_threshold"].iloc[0]),
        "lesions": len(les),
        "judgeable_lesions": len(judged),
        "keepable_lesions": len(keepable),
        "not_in_source_lesions": int((judged["stratum"] == "not_in_source").sum()),
        "not_judgeable_lesions": len(les) - len(judged),
        "not_judgeable_present": int((~les["judgeable"] & les["outcome"].str.startswith("present")).sum()),
        "cnr_error_mean": keepable.loc[keepable["outcome"] == "present_same", "cnr_error"].mean(),
    }
    for stratum in presence.STRATA:
        units = judged if stratum == "judgeable" else judged[judged["stratum"] == stratum]
        for outcome in presence.OUTCOMES:
            rate = _patient_rate(units["outcome"] == outcome, units["subject"], patients, boot)
            row |= _rate_columns(f"{stratum}_{outcome}", rate)
    if "seg_found" in les:
        row |= _rate_columns("seg_found", _patient_rate(les["seg_found"], les["subject"], patients, boot))
        missed = ~keepable["seg_found"].astype(bool)
        row |= _rate_columns("seg_keepable_missed", _patient_rate(missed, keepable["subject"], patients, boot))
        kept = keepable["outcome"] == "present_same"  # what a segmenter of the real sequence should find
        row |= {
            "instruments_agree_lesions": int((kept == keepable["seg_found"].astype(bool)).sum()),
            "cnr_kept_seg_missed": int((kept & missed).sum()),
            "cnr_not_kept_seg_found": int((~kept & ~missed).sum()),
        }
    return row


def _slice_row(df: pd.DataFrame, patients: list[str], boot: tuple) -> dict:
    """Per-slice instruments of one run and direction: the detector's additions and the segmenter's Dice and false
    lesions."""
    row: dict = {}
    healthy = df[df["label"] == "healthy"]
    if "added_lesions" in df:
        added = _patient_rate(healthy["added_lesions"] > 0, healthy["subject"], patients, boot)
        row |= _rate_columns("healthy_with_added", added, count="healthy_with_added")
        row |= {
            "added_lesions": int(df["added_lesions"].sum()),
            "added_per_slice": df["added_lesions"].mean(),
            "detector_dice_mean": df["dice"].mean(),
        }
    if "seg_dice" in df:
        tumor = df[(df["label"] == "tumor") & df["seg_dice"].notna()]
        sums = tumor.groupby("subject")["seg_dice"].sum().reindex(patients, fill_value=0).to_numpy()
        counts = tumor.groupby("subject")["seg_dice"].count().reindex(patients, fill_value=0).to_numpy(np.float64)
        dice, low, high = bootstrap_ratio(sums, counts, *boot)
        row |= {"seg_dice_mean": dice, "seg_dice_ci_low": low, "seg_dice_ci_high": high}
        false = _patient_rate(healthy["seg_false_lesions"] > 0, healthy["subject"], patients, boot)
        row |= _rate_columns("seg_healthy_with_false", false, count="seg_healthy_with_false")
    return row


def tumor_summary(consistency: pd.DataFrame, lesions: pd.DataFrame, cfg: EvalConfig) -> pd.DataFrame:
    """Per run and direction: per-lesion presence outcomes over the judgeable, keepable and not-in-source lesions;
    the detector's additions on healthy slices; the segmenter's lesions found, Dice and false lesions; every rate
    with its count and patient-bootstrap CI."""
    boot = (cfg.bootstrap_resamples, cfg.bootstrap_seed, cfg.confidence)
    rows = []
    for (run, method, direction), df in consistency.groupby(["run", "method", "direction"], sort=False):
        patients = sorted(df["subject"].unique())
        row = {
            "run": run,
            "method": method,
            "direction": direction,
            "n_tumor_slices": int((df["label"] == "tumor").sum()),
            "n_healthy_slices": int((df["label"] == "healthy").sum()),
        }
        les = lesions[(lesions["run"] == run) & (lesions["direction"] == direction)] if len(lesions) else lesions
        if len(les):
            row |= _presence_row(les, patients, boot)
        rows.append(row | _slice_row(df, patients, boot))
    return pd.DataFrame(rows)


def _get(summary: pd.DataFrame, run: str, direction: str, column: str) -> float:
    sel = summary[(summary["run"] == run) & (summary["direction"] == direction)]
    return float(sel[column].iloc[0]) if len(sel) and column in sel else np.nan


def instrument_validity(summary: pd.DataFrame, cfg: EvalConfig) -> pd.DataFrame:
    """Per direction: can each instrument decide on this data? (its ceiling and sanity rows, before its numbers)

    * removal (CNR presence): the real target and the source both show at least ``presence.min_judgeable_lesions``
      lesions (keepable), and the inpainted target comes out erased for at least ``presence.min_sanity_rate`` of
      the judgeable lesions, each judged by a threshold calibrated on other patients' lesions (cross-fitted);
    * additions (detector): at most ``audit.max_floor_rate`` of healthy real slices with a detection, both pasted
      sanity rows found at ``audit.min_sanity_rate`` or more;
    * segmentation: at least ``segmentation.min_ceiling_rate`` of the reference lesions found on the real target,
      at most ``segmentation.max_floor_rate`` on the target with its tumors replaced by healthy tissue.

    Returns:
        rows of direction, aspect (removal / additions / segmentation), decidable, reason (words for the report).
    """
    rows = []
    pc, ac, sc = cfg.presence, cfg.audit, cfg.segmentation

    def add(direction: str, aspect: str, ok: bool, why: str) -> None:
        rows.append({"direction": direction, "aspect": aspect, "decidable": ok, "reason": why})

    for direction in summary["direction"].unique():
        shown, total = (
            _get(summary, "real", direction, "judgeable_lesions"),
            _get(summary, "real", direction, "lesions"),
        )
        keepable = _get(summary, "real", direction, "keepable_lesions")
        if not np.isnan(total):
            erased = _get(summary, "sanity-inpainted", direction, "judgeable_erased_rate")
            if shown < pc.min_judgeable_lesions:
                ok, why = False, f"the real target shows {int(shown)} of {int(total)} reference lesions"
                why += f" (at least {pc.min_judgeable_lesions} needed)"
            elif not keepable >= pc.min_judgeable_lesions:
                ok, why = False, f"the source shows only {int(keepable)} of the {int(shown)} lesions the target shows"
                why += f" (keepable; at least {pc.min_judgeable_lesions} needed)"
            elif not erased >= pc.min_sanity_rate:
                ok, why = False, f"the inpainted target is called erased for only {erased:.0%} of lesions (held out)"
            else:
                ok, why = (
                    True,
                    (
                        f"{int(keepable)} keepable of {int(shown)} judgeable of {int(total)} lesions; inpainted target "
                        f"{erased:.0%} erased, judged by thresholds calibrated on other patients' lesions"
                    ),
                )
            add(direction, "removal", ok, why)
        floor = _get(summary, "real", direction, "healthy_with_added_rate")
        if not np.isnan(floor):
            pasted = {
                k: _get(summary, f"sanity-pasted-{k}", direction, "healthy_with_added_rate")
                for k in ("target", "source")
            }
            weak = [f"{k}'s contrast {v:.0%}" for k, v in pasted.items() if not v >= ac.min_sanity_rate]
            if floor > ac.max_floor_rate:
                ok, why = False, f"the detector finds a lesion on {floor:.0%} of healthy real slices (floor)"
            elif weak:
                ok, why = False, f"pasted tumors found only at {', '.join(weak)}"
            else:
                ok, why = (
                    True,
                    (
                        f"floor {floor:.0%}; pasted tumors found at {pasted['target']:.0%} (target's contrast) "
                        f"and {pasted['source']:.0%} (source's)"
                    ),
                )
            add(direction, "additions", ok, why)
        ceiling = _get(summary, "real", direction, "seg_found_rate")
        if not np.isnan(ceiling):
            floor = _get(summary, "sanity-healthy-fill", direction, "seg_found_rate")
            if ceiling < sc.min_ceiling_rate:
                ok, why = False, f"the segmenter finds only {ceiling:.0%} of the lesions on the real target (ceiling)"
            elif not floor <= sc.max_floor_rate:
                ok, why = False, f"the segmenter 'finds' {floor:.0%} of the lesions once healthy tissue replaces them"
            else:
                ok = True
                why = f"finds {ceiling:.0%} of the lesions on the real target, {floor:.0%} once healthy tissue "
                why += "replaces them"
            add(direction, "segmentation", ok, why)
    return pd.DataFrame(rows, columns=["direction", "aspect", "decidable", "reason"])


def tumor_per_subject(consistency: pd.DataFrame, lesions: pd.DataFrame) -> pd.DataFrame:
    """Per run, direction and patient: lesion outcome counts per stratum (keepable, not in the source, not
    judgeable), the segmenter's found lesions, and the healthy slices with an added lesion."""
    keys = ["run", "method", "direction", "subject"]
    out = consistency.groupby(keys, sort=False).size().rename("n_slices").to_frame()
    if len(lesions):
        cell = np.where(
            lesions["stratum"] == "not_judgeable", "not_judgeable", lesions["stratum"] + "_" + lesions["outcome"]
        )
        counts = lesions.assign(cell=cell).groupby([*keys, "cell"], sort=False).size().unstack(fill_value=0)
        columns = [f"{s}_{o}" for s in ("keepable", "not_in_source") for o in presence.OUTCOMES] + ["not_judgeable"]
        out = out.join(counts.reindex(columns=columns, fill_value=0).add_suffix("_lesions")).fillna(0)
        if "seg_found" in lesions:
            out["seg_found_lesions"] = lesions.groupby(keys, sort=False)["seg_found"].sum()
    if "added_lesions" in consistency:
        healthy = consistency[consistency["label"] == "healthy"]
        out["healthy_slices"] = healthy.groupby(keys, sort=False).size()
        out["healthy_with_added"] = (healthy["added_lesions"] > 0).groupby([healthy[k] for k in keys], sort=False).sum()
        out["added_lesions"] = consistency.groupby(keys, sort=False)["added_lesions"].sum()
    return out.fillna(0).reset_index()


def lead_directions(summary: pd.DataFrame, names: list[str]) -> list[str]:
    """Directions ordered by the share of reference lesions that are keepable (most first): removal is best judged
    where both sequences show the lesions."""
    if "keepable_lesions" not in summary:
        return names

    def shown(d: str) -> float:
        return _get(summary, "real", d, "keepable_lesions") / max(_get(summary, "real", d, "lesions"), 1)

    return sorted(names, key=lambda d: np.nan_to_num(shown(d)), reverse=True)


def _count_rate(row: pd.Series, name: str, count: str, total: str) -> str:
    """'12% (3/25) [4%, 30%]': rate, raw count over its total, CI."""
    if pd.isna(row.get(f"{name}_rate")):
        return "–"
    ci = (
        ""
        if pd.isna(row.get(f"{name}_rate_ci_low"))
        else (f" [{row[f'{name}_rate_ci_low']:.0%}, {row[f'{name}_rate_ci_high']:.0%}]")
    )
    return f"{row[f'{name}_rate']:.0%} ({int(row[count])}/{int(row[total])}){ci}"


def _run_name(row: pd.Series) -> str:
    return row["run"] if row["run"] == row["method"] else f"{row['run']} ({row['method']})"


def _validity_lines(validity: pd.DataFrame, aspect: str, directions: list[str]) -> list[str]:
    sel = validity[validity["aspect"] == aspect].set_index("direction")
    return [
        f"- {direction_label(d)}: **{'can decide' if sel.loc[d, 'decidable'] else 'cannot decide'}** - "
        f"{sel.loc[d, 'reason']}"
        for d in directions
        if d in sel.index
    ] + [""]


def _rows(summary: pd.DataFrame, directions: list[str], column: str):
    for d in directions:
        yield from (r for _, r in summary[(summary["direction"] == d) & summary[column].notna()].iterrows())


def _presence_markdown(summary: pd.DataFrame, directions: list[str], validity: pd.DataFrame) -> list[str]:
    lines = [
        "### Tumor presence per reference lesion (conspicuity, no detector)",
        "",
        "Each reference lesion's signed contrast-to-noise ratio (CNR) against a ring of healthy brain; present = "
        "|CNR| above a threshold calibrated on the real target with its tumors inpainted (`tumor_summary.csv`). "
        "**Keepable** lesions are those the real target *and the source* show (|CNR| of the source above its own "
        "inpainted-calibrated threshold and the target's): only there is \"erased\" a translator's doing, and "
        "`copy-source` is 0% erased by construction. Cells: rate (count/keepable) [CI over patients]. Read runs "
        "against `real` (the ceiling) and `sanity-inpainted` (expect ~100% erased; judged with thresholds "
        "calibrated on other patients' lesions).",
        "",
        "Can removal be judged here?",
        "",
        *_validity_lines(validity, "removal", directions),
        "| Direction | Run | Keepable / judgeable / all lesions | Erased ↓ | Present, real polarity ↑ | "
        "Present, opposite polarity | CNR error, real polarity ↓ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _rows(summary, directions, "keepable_lesions"):
        cnr = "–" if pd.isna(r.get("cnr_error_mean")) else f"{r['cnr_error_mean']:.2f}"
        rates = [
            _count_rate(r, f"keepable_{o}", f"keepable_{o}_lesions", "keepable_lesions") for o in presence.OUTCOMES
        ]
        lines.append(
            f"| {direction_label(r['direction'])} | {_run_name(r)} | {int(r['keepable_lesions'])} / "
            f"{int(r['judgeable_lesions'])} / {int(r['lesions'])} | " + " | ".join(rates) + f" | {cnr} |"
        )
    lines += [
        "",
        "**Not in the source**: lesions the real target shows and the source does not. A translation that shows one "
        "has recovered it (from context the source does not make conspicuous); one that does not is not to blame.",
        "",
        "| Direction | Run | Not in the source | Recovered, real polarity | Present, opposite polarity | Not shown |",
        "|---|---|---|---|---|---|",
    ]
    for r in _rows(summary, directions, "not_in_source_lesions"):
        if r["run"] in PSEUDO_RUNS[1:]:
            continue
        rates = [
            _count_rate(r, f"not_in_source_{o}", f"not_in_source_{o}_lesions", "not_in_source_lesions")
            for o in ("present_same", "present_opposite", "erased")
        ]
        lines.append(
            f"| {direction_label(r['direction'])} | {_run_name(r)} | {int(r['not_in_source_lesions'])} | "
            + " | ".join(rates)
            + " |"
        )
    return lines + [""]


def _segmentation_markdown(summary: pd.DataFrame, directions: list[str], validity: pd.DataFrame) -> list[str]:
    lines = [
        "### What a segmenter of the real sequence finds (second instrument, BraSyn-style)",
        "",
        "A BasicUNet trained on the real target training slices (one polarity) segments every translation. Lesions "
        "found: reference lesions at least 10% covered (all lesions; `real` is the ceiling, `sanity-healthy-fill` - "
        "the tumors replaced by the healthy tissue around them - the floor; biharmonic inpainting, "
        "`sanity-inpainted`, can leave bright blobs a segmenter rightly flags). Missed, keepable: the keepable "
        "lesions above that it does not find - a lesion kept with the source's polarity counts as missed here and "
        "as present for CNR. Dice over tumor slices; false lesions: healthy slices with a segmented lesion outside "
        "every tumor label. Disagreement: keepable lesions CNR calls kept with the real polarity but the segmenter "
        "misses, and the other way round.",
        "",
        "Can the segmenter judge here?",
        "",
        *_validity_lines(validity, "segmentation", directions),
        "| Direction | Run | Lesions found ↑ | Missed, keepable ↓ | Dice, tumor slices ↑ | Healthy slices with a false "
        "lesion ↓ | Instruments disagree |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _rows(summary, directions, "seg_found_rate"):
        dice = (
            "–"
            if pd.isna(r.get("seg_dice_mean"))
            else (
                f"{r['seg_dice_mean']:.3f}"
                + (
                    ""
                    if pd.isna(r.get("seg_dice_ci_low"))
                    else f" [{r['seg_dice_ci_low']:.3f}, {r['seg_dice_ci_high']:.3f}]"
                )
            )
        )
        disagree = "–"
        if not pd.isna(r.get("cnr_kept_seg_missed")) and r["keepable_lesions"] > 0:
            n = int(r["cnr_kept_seg_missed"] + r["cnr_not_kept_seg_found"])
            disagree = f"{n}/{int(r['keepable_lesions'])} ({int(r['cnr_kept_seg_missed'])} kept by CNR only)"
        lines.append(
            f"| {direction_label(r['direction'])} | {_run_name(r)} | "
            f"{_count_rate(r, 'seg_found', 'seg_found_lesions', 'lesions')} | "
            f"{_count_rate(r, 'seg_keepable_missed', 'seg_keepable_missed_lesions', 'keepable_lesions')} | {dice} | "
            f"{_count_rate(r, 'seg_healthy_with_false', 'seg_healthy_with_false', 'n_healthy_slices')} | {disagree} |"
        )
    return lines + [""]


def _additions_markdown(summary: pd.DataFrame, directions: list[str], validity: pd.DataFrame) -> list[str]:
    lines = [
        "### Tumor additions on healthy slices (detector of both polarities)",
        "",
        "A lesion found by a detector trained on the real target slices and on copies whose tumors are inverted "
        "in their own context (both polarities), outside every tumor label. Cells: share of healthy test slices with "
        "an added lesion (count/healthy slices) [CI over patients]. `real` is the false-addition floor; "
        "`sanity-pasted-target` and `sanity-pasted-source` (a real tumor pasted into healthy slices with the "
        "target's and with the source's contrast) must come out near 100%, or the detector cannot see additions of "
        "that kind.",
        "",
        "Can additions be judged here?",
        "",
        *_validity_lines(validity, "additions", directions),
        "| Direction | Run | Healthy slices with added ↓ | Added per slice ↓ | Detector Dice |",
        "|---|---|---|---|---|",
    ]
    for r in _rows(summary, directions, "healthy_with_added_rate"):
        dice = "–" if pd.isna(r.get("detector_dice_mean")) else f"{r['detector_dice_mean']:.3f}"
        lines.append(
            f"| {direction_label(r['direction'])} | {_run_name(r)} | "
            f"{_count_rate(r, 'healthy_with_added', 'healthy_with_added', 'n_healthy_slices')} "
            f"| {r['added_per_slice']:.2f} | {dice} |"
        )
    return lines + [""]


def consistency_markdown(summary: pd.DataFrame, directions: list[str], validity: pd.DataFrame) -> str:
    """The tumor tables: presence over keepable lesions (and those not in the source apart), the segmenter, then
    additions, each after what its ceiling and sanity rows say the instrument can decide."""
    lines = []
    if "keepable_lesions" in summary:
        lines += _presence_markdown(summary, directions, validity)
    if "seg_found_rate" in summary:
        lines += _segmentation_markdown(summary, directions, validity)
    if "healthy_with_added_rate" in summary:
        lines += _additions_markdown(summary, directions, validity)
    return "\n".join(lines) + "\n" if lines else ""
