"""``mrtrans evaluate``: score runs on the paired test slices, or translated volumes against references.

Slice mode: each run's generators translate the prepared paired test slices in both directions;
every translation is scored with the three protocols (:mod:`.metrics`) per region, plus tumor-region
consistency (tumor contrast and the per-lesion hallucination audit, :mod:`.audit`). Every report
also scores the trivial baseline ``copy-source`` (the source slice as the prediction) with the same
code, and the audit's ceiling (``real``) and sanity rows. Volume mode scores ``mrtrans translate``
outputs against reference volumes and their seg, on the slices prepare-brats' rules keep, and adds
through-plane measures that no axial-slice metric sees.

Everything lands in the report folder at once (temporary folder, moved into place at the end).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nibabel import orientations

from mrtrans.checkpoint import (
    load_checkpoint,
    model_record,
    resolve_checkpoint,
    selected_step,
    selection_text,
)
from mrtrans.config import PROTOCOLS, AuditConfig, EvalConfig, Precision, PrepareConfig
from mrtrans.data_prep.discovery import subject_of
from mrtrans.data_prep.prepare import slice_labels
from mrtrans.data_prep.slices import PreparedSlices, to_tensor
from mrtrans.devices import resolve_device
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.evaluation import audit, presence, segmentation
from mrtrans.evaluation.metrics import (
    METRICS,
    brain_metrics,
    brain_normalize,
    brain_shared_metrics,
    paper_metrics,
    through_plane_metrics,
    to_paper_range,
)
from mrtrans.evaluation.scored import Scored, slice_frame
from mrtrans.evaluation.tables import write_tables
from mrtrans.inference.translate import forward_slices, ras_orientations
from mrtrans.io import load_nifti, read_volume
from mrtrans.models import load_generator
from mrtrans.outputs import OutputKind, atomic_dir, check_output

logger = logging.getLogger(__name__)

COPY_SOURCE = "copy-source"


def score_slices(
    run: str,
    method: str,
    direction: Direction,
    source: np.ndarray,
    pred: np.ndarray,
    real: np.ndarray,
    brain: np.ndarray,
    seg: np.ndarray,
    slices: pd.DataFrame,
    value_range: tuple[float, float],
    protocols: tuple[str, ...] = PROTOCOLS,
) -> Scored:
    """Score translations ``pred`` against ``real`` (both (N, H, W) in ``value_range``).

    Args:
        slices: one row per slice with ``subject``, ``slice_index``, ``label`` (healthy/tumor).
        protocols: which of :data:`PROTOCOLS` to compute (``brain_shared`` always).
    """
    if not (pred.shape == real.shape == brain.shape == seg.shape) or len(slices) != len(pred):
        raise MrtransError(
            f"shapes differ: translation {pred.shape}, reference {real.shape}, brain {brain.shape}, seg {seg.shape}, "
            f"{len(slices)} slice records"
        )
    if len(pred) == 0:
        raise MrtransError("empty test set: no slices to score")
    tumor = seg > 0
    compute = {
        "brain_shared": lambda: brain_shared_metrics(pred, real, brain, tumor, value_range),
        "brain": lambda: brain_metrics(pred, real, brain, tumor),
        "paper": lambda: paper_metrics(
            to_paper_range(pred, *value_range), to_paper_range(real, *value_range), brain, tumor
        ),
    }
    frames = []
    for protocol, scores in ((p, compute[p]()) for p in PROTOCOLS if p in protocols or p == "brain_shared"):
        for region, values in scores.items():
            df = slice_frame(run, method, direction, slices)
            df.insert(3, "protocol", protocol)
            df.insert(4, "region", region)
            for metric in METRICS:
                df[metric] = values[metric]
            frames.append(df.dropna(subset=["mae"]))
    per_slice = pd.concat(frames, ignore_index=True)

    consistency = slice_frame(run, method, direction, slices)
    consistency["tumor_pixels"] = tumor.sum(axis=(1, 2))
    return Scored(per_slice, consistency, source, pred, real, seg)


# How a run trained on paired slices (pix2pix) is named in every table: a bound, not one of the unpaired methods.
PAIRED_LABEL = "paired, upper bound"


def _run_label(path: Path) -> str:
    path = Path(path)
    in_run = path.name in ("last.pt", "best.pt") and path.parent.name == "checkpoints"
    return path.parent.parent.name if in_run else path.name


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mrtrans" / "audit"


def _run_data(run: Path) -> str | None:
    """The training data a run folder records in run.json (None for a bare checkpoint file)."""
    folder = Path(run).parent.parent if Path(run).is_file() else Path(run)
    info = folder / "run.json"
    try:
        return json.loads(info.read_text()).get("data") if info.is_file() else None
    except (OSError, ValueError):
        return None


def _trained_on(run: Path, ckpt: dict, slices: pd.DataFrame) -> list[str]:
    """The test patients of ``slices`` that ``run`` trained on: from the checkpoint's record of its training
    patients, or for checkpoints of mrtrans < 0.5 from the manifest of the prepared set its run.json names (when it
    is still there); an empty list when neither says."""
    trained = (ckpt.get("data") or {}).get("train_subjects")
    if trained is None:
        folder = _run_data(run)
        try:
            trained = PreparedSlices(folder).subjects("train") if folder else []
        except (MrtransError, OSError):
            trained = []
    return sorted(set(map(str, trained)) & set(slices["subject"].astype(str)))


def seed_groups(labels: list[str], checkpoints: list[dict], data: list[str | None] | None = None) -> dict[str, str]:
    """Run label -> group name; runs on the same data whose configs differ only in the seed (and
    logging or device settings) form a group."""
    keys = []
    for ckpt, source in zip(checkpoints, data or [None] * len(checkpoints)):
        cfg = copy.deepcopy(ckpt.get("config", {}))
        for key in ("seed", "log_every", "sample_every", "checkpoint_every", "device", "max_steps"):
            cfg.get("run", {}).pop(key, None)
        keys.append(json.dumps([ckpt.get("kind"), ckpt.get("direction"), source, cfg], sort_keys=True))
    groups: dict[str, str] = {}
    first: dict[str, str] = {}
    for label, ckpt, key in zip(labels, checkpoints, keys):
        first.setdefault(key, label)
        groups[label] = f"{ckpt.get('kind', 'model')} [{first[key]}]"
    return groups


def _scoring_checkpoint(
    run: Path, checkpoint: str, modalities: tuple[str, str]
) -> tuple[dict[str, Any], str, int | None]:
    """(what scoring needs of the run's checkpoint, how it was chosen, its step); refuses other modalities.

    A training checkpoint's optimisers, pools and discriminators are most of its size: only the translators'
    weights and the records are kept."""
    path = resolve_checkpoint(run, checkpoint)
    ckpt = load_checkpoint(path, map_location="cpu")
    record = model_record(ckpt, run)
    slim = {k: ckpt[k] for k in ("direction", "config", "normalization")} | {
        "data": record.data,
        "kind": record.kind + (f" ({PAIRED_LABEL})" if record.paired_training else ""),
        "paired_training": record.paired_training,
        "translators": record.translators,
        "models": {k: ckpt["models"][k] for k in record.translators.values()},
    }
    pair = {record.direction.source, record.direction.target}
    if pair != set(modalities):
        raise MrtransError(f"{run}: model translates {'/'.join(sorted(pair))}, the test set is {'/'.join(modalities)}")
    return slim, selection_text(ckpt, path), selected_step(ckpt)


def _refuse_training_patients(overlaps: list[list[str]], runs: list[Path], folder: Path) -> None:
    """Stop when a run trained on test patients of ``folder`` (``overlaps``: per run, the shared patients)."""
    for overlap, run in zip(overlaps, runs):
        if overlap:
            raise MrtransError(
                f"{run}: trained on {len(overlap)} of the test patients of {folder} "
                f"({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''}); evaluate on a set whose test "
                "patients the run never saw (the set it was trained on, or one prepared with its --seed), or "
                "pass --allow-training-patients (every table then says so)"
            )


def _translations(runs, labels, checkpoints, directions, arrays, cfg: EvalConfig, device):
    """Yield (label, checkpoint, direction, translated test slices) for every direction each run translates;
    refuses a translation with NaN or Inf (a diverged run)."""
    from tqdm import tqdm

    bf16 = cfg.precision is Precision.bf16
    inputs = {d.name: to_tensor(arrays[d.source]) for d in directions}  # once, not per run
    runs_bar = tqdm(list(zip(runs, labels, checkpoints)), desc="evaluate", unit="run", disable=None)  # off unless a tty
    for run, label, ckpt in runs_bar:
        for direction in directions:
            if direction.name not in ckpt["translators"]:  # a one-direction model (pix2pix, CUT): that direction only
                logger.info(f"{label}: translates {', '.join(ckpt['translators'])} only; no {direction.name} rows")
                continue
            gen = load_generator(ckpt, direction, device, source=run)
            logger.info(f"translating {len(arrays['seg'])} test slices: {label} {direction.name}")
            pred = forward_slices(gen, inputs[direction.name], device, cfg.batch_size, bf16=bf16)[:, 0].numpy()
            if not np.isfinite(pred).all():
                raise MrtransError(
                    f"{run}: the model's {direction.name} output contains NaN or Inf; "
                    f"its training diverged (see losses.csv) - retrain it"
                )
            yield label, ckpt, direction, pred


def _run_labels(runs: list[Path], reference: str | None) -> list[str]:
    """The runs' labels (their folder names): unique, not a baseline's name, and holding ``reference`` if given."""
    labels = [_run_label(r) for r in runs]
    if len(set(labels)) != len(labels) or {COPY_SOURCE, "real"} & set(labels):
        raise MrtransError(
            f"run names must be unique and not 'copy-source' or 'real' ({', '.join(labels)}); rename the run folders"
        )
    if reference is not None and reference not in labels:
        raise MrtransError(f"--reference {reference}: not one of the runs ({', '.join(labels)})")
    return labels


def evaluate_runs(
    runs: list[Path],
    data_dir: Path,
    out: Path,
    cfg: EvalConfig,
    cache_dir: Path | None = None,
    overwrite: bool = False,
    reference: str | None = None,
    checkpoint: str = "last",
    allow_training_patients: bool = False,
) -> Path:
    """Translate the paired test slices with every run, in both directions (each direction a run translates), and
    write the report.

    Args:
        reference: label (folder name) of the run every other run is compared with; default the
            first CycleGAN run, else the first run.
        allow_training_patients: score a run on test patients it trained on (refused otherwise); every table of
            the report then says so (``trained_on_test_patients``).

    Raises:
        MrtransError: missing test arrays or seg, an empty test set, a run for other modalities,
            duplicate run names, an unknown reference, a detector training set without tumor, a run trained on
            test patients (unless allowed).
    """
    check_output(out, OutputKind.report, overwrite, inputs=[*runs, data_dir])  # before any work
    data = PreparedSlices(data_dir)
    source_mod, target_mod = data.modalities
    arrays = {k: data.test(k) for k in (source_mod, target_mod, "seg", "brain")}
    manifest = data.manifest()
    slices = manifest[manifest["split"] == "test"].sort_values("array_index").reset_index(drop=True)
    if len(slices) == 0 or len(arrays["seg"]) == 0:
        raise MrtransError(f"{data.folder}: empty test set; prepare with --test-slices > 0")
    value_range = data.normalization.range
    device = resolve_device(cfg.device)
    labels = _run_labels(runs, reference)

    records = [_scoring_checkpoint(r, checkpoint, (source_mod, target_mod)) for r in runs]
    checkpoints, chosen, steps = ([r[i] for r in records] for i in range(3))
    seen = {lab: _trained_on(run, c, slices) for lab, run, c in zip(labels, runs, checkpoints)}
    if not allow_training_patients:
        _refuse_training_patients(list(seen.values()), runs, data.folder)
    if reference is None and labels:
        unpaired = [lab for lab, c in zip(labels, checkpoints) if not c["paired_training"]] or labels
        reference = next((lab for lab, c in zip(labels, checkpoints) if c.get("kind") == "cyclegan"), unpaired[0])

    directions = [Direction(source_mod, target_mod), Direction(target_mod, source_mod)]
    brain, seg = np.asarray(arrays["brain"]), np.asarray(arrays["seg"])
    images = {m: np.asarray(arrays[m], np.float32) for m in (source_mod, target_mod)}  # once, not per run

    def score(label: str, method: str, direction: Direction, pred: np.ndarray) -> tuple[str, Scored]:
        src, real = images[direction.source], images[direction.target]
        return label, score_slices(
            label, method, direction, src, pred, real, brain, seg, slices, value_range, cfg.protocols
        )

    # the trivial baseline first: no model at all
    scored = [score(COPY_SOURCE, COPY_SOURCE, d, images[d.source]) for d in directions]
    for label, ckpt, direction, pred in _translations(runs, labels, checkpoints, directions, arrays, cfg, device):
        scored.append(score(label, ckpt["kind"], direction, pred))

    min_px = cfg.audit.min_lesion_pixels or max(1, int(data.meta["config"]["min_tumor_pixels"]) // 2)
    cache = cache_dir or default_cache_dir()
    for direction in directions:
        scored += _tumor_direction(direction, data, arrays, slices, scored, cfg, min_px, cache, device)

    with atomic_dir(out, OutputKind.report, overwrite=overwrite, inputs=[*runs, data_dir]) as tmp:
        groups = seed_groups(labels, checkpoints, [_run_data(r) for r in runs])
        stamp = {lab: bool(overlap) for lab, overlap in seen.items()} if any(seen.values()) else None
        write_tables(tmp, scored, directions, cfg, groups=groups, reference=reference, trained_on_test=stamp)
        # which checkpoint each run's rows come from, and by what rule (last step, or best.pt's validation rule)
        pd.DataFrame({"run": labels, "checkpoint": chosen, "step": steps}).to_csv(tmp / "checkpoints.csv", index=False)
        with (tmp / "report.md").open("a") as f:
            f.write("\n## Checkpoints\n\n" + "".join(f"- {lab}: {c}\n" for lab, c in zip(labels, chosen)))
    return out


@dataclass
class _PresenceJudge:
    """What judging presence in one direction needs: the reference lesions, their real target's and source's CNR,
    the thresholds (target, source, and the cross-fitted ones of the sanity row) (:mod:`.presence`)."""

    direction: Direction
    rings: presence.LesionRings
    frame: pd.DataFrame  # the slice of each lesion (subject, slice_index, label)
    cnr: partial
    cnr_real: np.ndarray
    cnr_source: np.ndarray
    threshold: float
    source_threshold: float
    held_out: np.ndarray  # (L,) per lesion, calibrated on other patients' lesions

    @property
    def in_source(self) -> np.ndarray:
        return presence.shown_in_source(self.cnr_source, self.source_threshold, self.threshold)

    def table(self, name: str, method: str, cnr_pred: np.ndarray, judged_at: np.ndarray | None = None) -> pd.DataFrame:
        """One row per reference lesion of ``name``'s translation (the same lesions, in the same order, for every
        run); ``judged_at``: per-lesion thresholds for the translation (default the calibrated one)."""
        at = self.threshold if judged_at is None else judged_at
        judgeable, outcome = presence.lesion_outcomes(cnr_pred, self.cnr_real, at, real_threshold=self.threshold)
        df = slice_frame(name, method, self.direction, self.frame)
        df.insert(6, "lesion", np.arange(len(self.rings)))
        df["lesion_pixels"] = self.rings.pixels
        df["cnr_real"], df["cnr_source"], df["cnr_pred"] = self.cnr_real, self.cnr_source, cnr_pred
        df["threshold"], df["source_threshold"], df["judged_at"] = self.threshold, self.source_threshold, at
        df["judgeable"], df["in_source"] = judgeable, self.in_source
        df["stratum"], df["outcome"] = presence.lesion_strata(judgeable, self.in_source), outcome
        df["cnr_error"] = np.where(outcome == "present_same", np.abs(cnr_pred - self.cnr_real), np.nan)
        return df


def _presence_judge(
    direction: Direction, data: PreparedSlices, arrays: dict, slices: pd.DataFrame, labels, cfg: EvalConfig, min_px
) -> tuple[_PresenceJudge, np.ndarray]:
    """The lesions of ``direction.target``'s region, their CNR on the real target and source, and the thresholds
    calibrated on both with their tumors inpainted; also the inpainted target (the removal sanity row)."""
    seg, brain = np.asarray(arrays["seg"]), np.asarray(arrays["brain"])
    real = np.asarray(arrays[direction.target], np.float32)
    source = np.asarray(arrays[direction.source], np.float32)
    pc = cfg.presence
    rings = presence.lesion_rings(audit.region_mask(seg, labels), seg > 0, brain, min_px, pc.ring_width)
    cnr = partial(presence.signed_cnr, rings=rings, noise_floor=pc.noise_floor, min_ring_pixels=pc.min_ring_pixels)
    inpainted = audit.inpaint_tumors(real, seg, brain)
    cnr_inpainted = cnr(inpainted)
    frame = slices.iloc[rings.slice_index].reset_index(drop=True)
    try:
        thresholds = [
            presence.calibrate_threshold(values, pc.false_present_rate) if len(rings) else np.nan
            for values in (cnr_inpainted, cnr(audit.inpaint_tumors(source, seg, brain)))
        ]
    except ValueError as exc:
        raise MrtransError(
            f"{data.folder}: {direction.target} test slices: {exc}; prepare with more tumor slices"
        ) from None
    held_out = presence.cross_fitted_thresholds(cnr_inpainted, frame["subject"].to_numpy(), pc.false_present_rate)
    judge = _PresenceJudge(direction, rings, frame, cnr, cnr(real), cnr(source), *thresholds, held_out)
    return judge, inpainted


def _reference_rows(
    direction: Direction,
    judge: _PresenceJudge,
    arrays: dict,
    slices: pd.DataFrame,
    real: np.ndarray,
    inpainted: np.ndarray,
    reference: np.ndarray,
    with_pasted: bool,
) -> list[tuple[str, str, np.ndarray, pd.DataFrame | None]]:
    """The ceiling and sanity pseudo-runs of one direction (:func:`_tumor_direction`): (name, what, images, lesion
    table); the pasted-tumor rows only when ``with_pasted`` (the detector of additions is on) and there are donors."""
    seg, brain = np.asarray(arrays["seg"]), np.asarray(arrays["brain"])
    filled = audit.fill_healthy(real, seg, brain)
    inpainted_what = "real target, tumors inpainted (expect ~100% erased)"
    filled_what = "real target, tumors replaced by the healthy tissue around them (expect ~100% erased, ~0% found)"
    rows = [
        ("real", "real target (ceiling)", real, judge.table("real", "real target (ceiling)", judge.cnr_real)),
        (
            "sanity-inpainted",
            inpainted_what,
            inpainted,
            judge.table("sanity-inpainted", inpainted_what, judge.cnr(inpainted), judged_at=judge.held_out),
        ),
        (
            "sanity-healthy-fill",
            filled_what,
            filled,
            judge.table("sanity-healthy-fill", filled_what, judge.cnr(filled)),
        ),
    ]
    is_tumor = (slices["label"] == "tumor").to_numpy()
    donors = np.flatnonzero(reference.any(axis=(1, 2)))
    if with_pasted and len(donors) and (~is_tumor).any():
        source = np.asarray(arrays[direction.source], np.float32)
        for name, donor, what in (("target", real, "the target's"), ("source", source, "the source's")):
            pasted, _ = audit.paste_tumors(real, seg, brain, ~is_tumor, donors, donor_images=donor)
            method = f"healthy real slices, a real tumor pasted in with {what} contrast (expect ~100% added)"
            rows.append((f"sanity-pasted-{name}", method, pasted, None))
    return rows


def _instrument_columns(
    results: list[Scored],
    direction: Direction,
    data: PreparedSlices,
    labels: Any,
    judge: _PresenceJudge,
    reference: np.ndarray,
    any_tumor: np.ndarray,
    cfg: EvalConfig,
    min_px: int,
    cache: Path,
    device: Any,
) -> None:
    """Add the detector's additions (``cfg.audit.enabled``) and the segmenter's Dice, false lesions and found
    lesions (``cfg.segmentation.enabled``) to every result of one direction."""
    if cfg.audit.enabled:
        net = _trained_detector(direction, data, labels, cfg.audit, cache, device)
        for result in results:
            detected = audit.detect(net, result.pred, cfg.audit.threshold, device, cfg.batch_size)
            for column, values in audit.audit_lesions(detected, reference, any_tumor, min_px).items():
                result.consistency[column] = values
    if not cfg.segmentation.enabled:
        return
    settings = segmentation.segmenter_settings(cfg.segmentation)
    net = _trained_detector(direction, data, labels, settings, cache, device, what="segmenter")
    for result in results:
        masks = audit.detect(net, result.pred, settings.threshold, device, cfg.batch_size)
        found = audit.audit_lesions(masks, reference, any_tumor, min_px)
        result.consistency["seg_dice"], result.consistency["seg_false_lesions"] = found["dice"], found["added_lesions"]
        if result.lesions is not None:
            result.lesions["seg_found"] = segmentation.lesions_found(masks, judge.rings, cfg.segmentation.min_overlap)


def _tumor_direction(
    direction: Direction,
    data: PreparedSlices,
    arrays: dict,
    slices: pd.DataFrame,
    scored: list,
    cfg: EvalConfig,
    min_px: int,
    cache: Path,
    device,
) -> list:
    """Tumor consistency of every translation into ``direction.target``: per-lesion presence (always), the
    detector's additions (with ``cfg.audit.enabled``) and the segmenter's findings (``cfg.segmentation.enabled``);
    return the ceiling and sanity rows.

    Pseudo-runs: ``real`` (the real target: the ceiling of presence and segmentation, the floor of additions),
    ``sanity-inpainted`` (its tumors inpainted, as the presence threshold is calibrated: expect ~100% erased,
    judged with cross-fitted thresholds), ``sanity-healthy-fill`` (its tumors replaced by the surrounding healthy
    tissue, :func:`.audit.fill_healthy`: the segmenter's floor, expect ~0% found), ``sanity-pasted-target`` and
    ``sanity-pasted-source`` (healthy real slices with a real tumor pasted in with the target's and with the
    source's contrast: expect ~100% of them with an added lesion).
    """
    try:
        labels = audit.region_labels(direction.target, cfg.audit.region.value, data.meta.get("layouts"))
    except ValueError as exc:
        raise MrtransError(f"{data.folder}: {exc}; set audit.region: whole") from None
    seg = np.asarray(arrays["seg"])
    reference, any_tumor = audit.region_mask(seg, labels), seg > 0
    real = np.asarray(arrays[direction.target], np.float32)
    judge, inpainted = _presence_judge(direction, data, arrays, slices, labels, cfg, min_px)

    mine = [result for _, result in scored if result.consistency["direction"].iloc[0] == direction.name]
    for result in mine:
        result.lesions = judge.table(
            result.consistency["run"].iloc[0], result.consistency["method"].iloc[0], judge.cnr(result.pred)
        )
    rows = _reference_rows(direction, judge, arrays, slices, real, inpainted, reference, cfg.audit.enabled)
    out = []
    for name, method, images, lesion_table in rows:
        consistency = slice_frame(name, method, direction, slices)
        consistency["tumor_pixels"] = any_tumor.sum(axis=(1, 2))
        out.append((name, Scored(pd.DataFrame(columns=["run"]), consistency, real, images, real, seg, lesion_table)))

    everything = mine + [s for _, s in out]
    _instrument_columns(everything, direction, data, labels, judge, reference, any_tumor, cfg, min_px, cache, device)
    return out


def _trained_detector(
    direction: Direction,
    data: PreparedSlices,
    labels,
    settings: AuditConfig,
    cache: Path,
    device,
    what: str = "tumor detector",
):
    """A BasicUNet of ``direction.target``'s tumor region trained on the real training slices (cached): the
    additions detector (both polarities) or, with ``settings.both_polarities`` off, the segmenter."""
    train_masks = audit.region_mask(data.train_seg(direction.target), labels)
    has = train_masks.any(axis=(1, 2))
    if has.all() or not has.any():
        raise MrtransError(
            f"{data.folder}: the {direction.target} training slices are {'all' if has.all() else 'without'} tumor, so "
            f"no {what} can be trained for the audit; evaluate against a set prepared with --target-tumor-fraction "
            f"0.5 (same --seed: same test slices), or pass --no-audit"
        )
    identity = {"input_sha256": data.meta.get("input_sha256"), "prepare": data.meta.get("config")}
    key = audit.detector_key(settings, identity, f"{direction.target}:{labels}", data.image_size, device.type)
    logger.info(f"{what} for {direction.target} (cache {cache / f'detector_{key}.pt'})")
    cache.mkdir(parents=True, exist_ok=True)
    return audit.cached_detector(
        data.train(direction.target),
        train_masks.astype(np.uint8),
        settings,
        key,
        cache,
        device,
        tumor=np.asarray(data.train_seg(direction.target)) > 0,
    )


def _to_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(orientations.apply_orientation(data, ras_orientations(affine)[0]))


RANGE_TOLERANCE = 0.01  # translate writes [0, 1]; resampling by other tools may overshoot a little


def keep_slices(seg: np.ndarray, brain: np.ndarray, rules: PrepareConfig) -> tuple[np.ndarray, np.ndarray]:
    """prepare-brats' slice rules (:func:`~mrtrans.data_prep.prepare.slice_labels`) on a (X, Y, Z) volume:
    (kept axial slice indices, tumor flags)."""

    is_tumor, healthy = slice_labels(seg, brain, rules)
    keep = np.flatnonzero(is_tumor | healthy)
    return keep, is_tumor[keep]


def _subject_for(path: Path, known: set[str]) -> str:
    """The subject a file belongs to: its BraTS ID, or the longest known ID its name starts with
    (``BraTS20_001_t1_from_flair.nii.gz`` -> ``BraTS20_001``)."""
    sid = subject_of(path)
    if sid in known:
        return sid
    name = Path(path).name
    matches = [k for k in known if name.startswith((k + "_", k + "-", k + "."))]
    return max(matches, key=len) if matches else sid


def _pair_by_subject(preds: list[Path], refs: list[Path], segs: list[Path]) -> list[tuple[str, Path, Path, Path]]:
    """(subject, pred, ref, seg) triples matched by subject ID; a mismatch names the files."""
    if not (len(preds) == len(refs) == len(segs)) or not preds:
        raise MrtransError(
            f"give as many --pred as --ref and --seg volumes (got {len(preds)}, {len(refs)}, {len(segs)})"
        )
    ref_ids = {subject_of(p): p for p in refs}
    if len(ref_ids) != len(refs):
        raise MrtransError(f"two --ref volumes have the same subject ID ({', '.join(map(str, refs))})")
    found: dict[str, dict[str, Path]] = {}
    for kind, paths in (("pred", preds), ("seg", segs)):
        seen: dict[str, Path] = {}
        for path in paths:
            sid = _subject_for(path, set(ref_ids))
            if sid not in ref_ids:
                raise MrtransError(
                    f"{path}: no --ref volume of subject {sid}; name each --{kind} after its subject "
                    f"(<ID>_..., as `mrtrans translate` does for folders) and give its reference"
                )
            if sid in seen:
                raise MrtransError(f"{path}: subject {sid} given twice as --{kind} (also {seen[sid]})")
            seen[sid] = path
        found[kind] = seen  # as many as refs, no repeats, all known: one per subject
    return [(sid, found["pred"][sid], ref_ids[sid], found["seg"][sid]) for sid in sorted(ref_ids)]


def _read_triple(pred_path: Path, ref_path: Path, seg_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """(prediction, reference, seg, the reference's image) of one subject; refuses another grid than the
    reference's or a prediction outside [0, 1]."""
    pred, pred_img = read_volume(pred_path)
    ref, ref_img = read_volume(ref_path)
    seg_img = load_nifti(seg_path)  # not read_volume: a seg without tumor is all zeros, and valid
    seg = np.asanyarray(seg_img.dataobj)
    for path, img, arr in ((pred_path, pred_img, pred), (seg_path, seg_img, seg)):
        if arr.shape != ref.shape or not np.allclose(img.affine, ref_img.affine, atol=1e-3):
            raise MrtransError(f"{path}: grid {arr.shape} does not match the reference {ref_path} {ref.shape}")
    lo, hi = float(np.min(pred)), float(np.max(pred))
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MrtransError(
            f"{pred_path}: values span [{lo:.4g}, {hi:.4g}], not [0, 1]; score `mrtrans translate` "
            f"outputs (they are in [0, 1]), or rescale the prediction first"
        )
    return pred, ref, seg, ref_img


def evaluate_volumes(
    preds: list[Path],
    refs: list[Path],
    segs: list[Path],
    out: Path,
    direction: Direction,
    name: str = "translate",
    cfg: EvalConfig | None = None,
    rules: PrepareConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Score translated volumes (``mrtrans translate`` outputs, [0, 1]) against reference volumes.

    Triples are paired by subject ID. Axial slices are kept by prepare-brats' rules (``rules``,
    default the paper protocol); the reference is normalised as prepare-brats does (brain 0.5-99.5
    percentiles to [0, 1], background 0). The tables say ``mode: volumes`` so they are never mixed
    with slice-mode tables. ``through_plane.csv`` adds what axial slices cannot show: the error of
    slice-to-slice differences and SSIM on coronal and sagittal planes. No hallucination audit here.

    Raises:
        MrtransError: counts or subjects differ, a grid differs, or a prediction is not in [0, 1].
    """
    cfg = cfg or EvalConfig()
    rules = rules or PrepareConfig()
    check_output(out, OutputKind.report, overwrite, inputs=[*preds, *refs, *segs])  # before any work
    parts, planes, volumes = [], [], []
    for subject, pred_path, ref_path, seg_path in _pair_by_subject(preds, refs, segs):
        pred, ref, seg, ref_img = _read_triple(pred_path, ref_path, seg_path)
        pred, ref, seg = (_to_ras(a, ref_img.affine) for a in (pred, ref, seg))
        brain = ref != 0
        # The reference as prepare-brats would normalise it: whole-volume brain percentiles -> [0, 1].
        ref_norm = brain_normalize(ref.reshape(1, -1, 1), brain.reshape(1, -1, 1))[0].reshape(ref.shape)
        pred01 = np.where(brain, np.clip(pred, 0, 1), 0.0)
        planes.append({"subject": subject, **through_plane_metrics(pred01, ref_norm, brain)})
        volumes.append((subject, pred01, ref_norm, seg))
        keep, is_tumor = keep_slices(seg, brain, rules)
        if len(keep) == 0:
            continue
        stack = [a[:, :, keep].transpose(2, 0, 1) for a in (pred01, ref_norm, seg, brain, ref)]
        frame = pd.DataFrame({"subject": subject, "slice_index": keep, "label": np.where(is_tumor, "tumor", "healthy")})
        parts.append(
            score_slices(
                name,
                name,
                direction,
                stack[4],
                stack[0] * 2 - 1,
                stack[1] * 2 - 1,
                stack[3],
                stack[2].astype(np.uint8),
                frame,
                (-1.0, 1.0),
            )
        )
    if not parts:
        raise MrtransError(
            "no slice of any volume passes the slice rules (tumor or enough brain); check --seg and the volumes"
        )
    merged = Scored(
        pd.concat([p.per_slice for p in parts], ignore_index=True),
        pd.concat([p.consistency for p in parts], ignore_index=True),
        parts[0].source,
        parts[0].pred,
        parts[0].real,
        parts[0].seg,
    )
    with atomic_dir(out, OutputKind.report, overwrite=overwrite, inputs=[*preds, *refs, *segs]) as tmp:
        write_tables(tmp, [(name, merged)], [direction], cfg, figures=False, mode="volumes")
        through = pd.DataFrame(planes)
        through.insert(0, "run", name)
        through.to_csv(tmp / "through_plane.csv", index=False)
        from mrtrans.evaluation.figures import write_volume_figures  # matplotlib: only when figures are written

        write_volume_figures(tmp / "figures", name, volumes)
    return out
