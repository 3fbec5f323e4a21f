"""``mrtrans evaluate``: score runs on the paired test slices, or translated volumes against references.

Slice mode: each run's generators translate the prepared paired test slices in both directions;
every translation is scored with both protocols (:mod:`.metrics`) per region, plus tumor-region
consistency (tumor contrast and the hallucination audit, :mod:`.audit`). Volume mode scores
``mrtrans translate`` outputs against reference volumes and their seg, slice by slice.

Everything lands in the report folder at once (temporary folder, moved into place at the end).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nibabel import orientations

from mrtrans.config import EvalConfig
from mrtrans.data.slices import Direction, PreparedSlices, to_tensor
from mrtrans.data_prep.discovery import subject_of
from mrtrans.errors import MrtransError
from mrtrans.evaluation import audit
from mrtrans.evaluation.metrics import brain_metrics, brain_normalize, paper_metrics, to_paper_range, tumor_contrast
from mrtrans.evaluation.tables import write_tables
from mrtrans.inference.translate import forward_slices, ras_orientations
from mrtrans.io import atomic_dir, load_nifti, read_volume
from mrtrans.training.checkpoint import load_checkpoint
from mrtrans.training.loop import load_generators, resolve_device

METRICS = ["mae", "mse", "psnr", "ssim"]


@dataclass
class Scored:
    """Per-slice scores of one (run, direction), and what the figures need."""

    per_slice: pd.DataFrame
    consistency: pd.DataFrame
    source: np.ndarray
    pred: np.ndarray
    real: np.ndarray
    seg: np.ndarray


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
) -> Scored:
    """Score translations ``pred`` against ``real`` (both (N, H, W) in ``value_range``).

    Args:
        slices: one row per slice with ``subject``, ``slice_index``, ``label`` (healthy/tumor).
    """
    if not (pred.shape == real.shape == brain.shape == seg.shape) or len(slices) != len(pred):
        raise MrtransError(
            f"shapes differ: translation {pred.shape}, reference {real.shape}, brain {brain.shape}, seg {seg.shape}, "
            f"{len(slices)} slice records"
        )
    if len(pred) == 0:
        raise MrtransError("empty test set: no slices to score")
    tumor = seg > 0
    pred255, real255 = to_paper_range(pred, *value_range), to_paper_range(real, *value_range)
    frames = []
    for protocol, scores in (("paper", paper_metrics(pred255, real255, brain, tumor)),
                             ("brain", brain_metrics(pred, real, brain, tumor))):  # fmt: skip
        for region, values in scores.items():
            df = _slice_frame(run, method, direction, slices)
            df.insert(3, "protocol", protocol)
            df.insert(4, "region", region)
            for metric in METRICS:
                df[metric] = values[metric]
            frames.append(df.dropna(subset=["mae"]))
    per_slice = pd.concat(frames, ignore_index=True)

    consistency = _slice_frame(run, method, direction, slices)
    consistency["tumor_pixels"] = tumor.sum(axis=(1, 2))
    consistency["contrast_real"] = tumor_contrast(real255, brain, tumor)
    consistency["contrast_pred"] = tumor_contrast(pred255, brain, tumor)
    consistency["contrast_error"] = consistency["contrast_pred"] - consistency["contrast_real"]
    return Scored(per_slice, consistency, source, pred, real, seg)


def _slice_frame(run: str, method: str, direction: Direction, slices: pd.DataFrame) -> pd.DataFrame:
    """One row per slice: run, method, direction, subject, slice_index, label."""
    frame = slices[["subject", "slice_index", "label"]].copy()
    frame.insert(0, "direction", direction.name)
    frame.insert(0, "method", method)
    frame.insert(0, "run", run)
    return frame


def _run_label(path: Path) -> str:
    path = Path(path)
    return path.parent.parent.name if path.name == "last.pt" and path.parent.name == "checkpoints" else path.name


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mrtrans" / "audit"


def evaluate_runs(
    runs: list[Path],
    data_dir: Path,
    out: Path,
    cfg: EvalConfig,
    cache_dir: Path | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Translate the paired test slices with every run, both directions, and write the report.

    Raises:
        MrtransError: missing test arrays or seg, an empty test set, a run for other modalities,
            duplicate run names.
    """
    data = PreparedSlices(data_dir)
    source_mod, target_mod = data.modalities
    arrays = {k: data.test(k) for k in (source_mod, target_mod, "seg", "brain")}
    manifest = data.manifest()
    slices = manifest[manifest["split"] == "test"].sort_values("array_index").reset_index(drop=True)
    if len(slices) == 0 or len(arrays["seg"]) == 0:
        raise MrtransError(f"{data.folder}: empty test set; prepare with --test-slices > 0")
    value_range = tuple(data.normalization["range"])
    device = resolve_device(cfg.device)
    labels = [_run_label(r) for r in runs]
    if len(set(labels)) != len(labels):
        raise MrtransError(f"two runs share a name ({', '.join(labels)}); give each run folder its own name")

    checkpoints = []
    for run in runs:
        ckpt = load_checkpoint(run, map_location=device)
        pair = {ckpt["direction"]["source"], ckpt["direction"]["target"]} if "direction" in ckpt else set()
        if pair != {source_mod, target_mod}:
            raise MrtransError(f"{run}: model translates {'/'.join(sorted(pair)) or '?'}, the test set is {source_mod}/{target_mod}")
        checkpoints.append(ckpt)

    directions = [Direction(source_mod, target_mod), Direction(target_mod, source_mod)]
    scored: list[tuple[str, Scored]] = []
    for label, ckpt in zip(labels, checkpoints):
        gen_s2t, gen_t2s = load_generators(ckpt, device)
        trained = Direction(ckpt["direction"]["source"], ckpt["direction"]["target"])
        for direction in directions:
            gen = gen_s2t if direction == trained else gen_t2s
            log(f"translating {len(slices)} test slices: {label} {direction.name}")
            pred = forward_slices(gen, to_tensor(arrays[direction.source]), device, cfg.batch_size)[:, 0].numpy()
            real = np.asarray(arrays[direction.target], np.float32)
            result = score_slices(label, ckpt["kind"], direction, np.asarray(arrays[direction.source], np.float32),
                                  pred, real, arrays["brain"], np.asarray(arrays["seg"]), slices, value_range)  # fmt: skip
            scored.append((label, result))

    if cfg.audit.enabled:
        min_px = cfg.audit.min_detected_pixels or int(data.meta["config"]["min_tumor_pixels"])
        cache = cache_dir or default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        is_tumor = (slices["label"] == "tumor").to_numpy()
        gt = np.asarray(arrays["seg"]) > 0
        for direction in directions:
            key = audit.detector_key(cfg.audit, data.meta["input_sha256"], direction.target, data.image_size)
            log(f"tumor detector for {direction.target} (cache {cache / f'detector_{key}.pt'})")
            net = audit.cached_detector(data.train(direction.target), data.train_seg(direction.target), cfg.audit, key, cache, device)
            real_det = audit.detect(net, arrays[direction.target], cfg.audit.threshold, device, cfg.batch_size)
            ceiling = audit.audit_slices(real_det, gt, is_tumor, min_px)
            for _, result in scored:
                if result.consistency["direction"].iloc[0] != direction.name:
                    continue
                det = audit.detect(net, result.pred, cfg.audit.threshold, device, cfg.batch_size)
                for key_, values in audit.audit_slices(det, gt, is_tumor, min_px).items():
                    result.consistency[key_] = values
            real_rows = scored_ceiling(direction, slices, arrays, ceiling, value_range)
            scored.append(("real", real_rows))

    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_tables(tmp, scored, directions, cfg)
    return out


def scored_ceiling(direction: Direction, slices: pd.DataFrame, arrays: dict, ceiling: dict, value_range: tuple) -> Scored:
    """The detector on the real target slices: the audit's ceiling, as a pseudo-run named ``real``."""
    real = np.asarray(arrays[direction.target], np.float32)
    seg = np.asarray(arrays["seg"])
    consistency = _slice_frame("real", "real target (ceiling)", direction, slices)
    consistency["tumor_pixels"] = (seg > 0).sum(axis=(1, 2))
    contrast = tumor_contrast(to_paper_range(real, *value_range), arrays["brain"], seg > 0)
    consistency["contrast_real"] = contrast
    consistency["contrast_pred"] = contrast
    consistency["contrast_error"] = 0.0 * contrast
    for key, values in ceiling.items():
        consistency[key] = values
    return Scored(pd.DataFrame(columns=["run"]), consistency, real, real, real, seg)


def _to_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(orientations.apply_orientation(data, ras_orientations(affine)[0]))


def evaluate_volumes(
    preds: list[Path],
    refs: list[Path],
    segs: list[Path],
    out: Path,
    direction: Direction,
    name: str = "translate",
    cfg: EvalConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Score translated volumes (``mrtrans translate`` outputs, [0, 1]) against reference volumes.

    Each triple (pred, ref, seg) is one subject; metrics are per axial slice containing brain
    (reference non-zero). For the ``paper`` protocol the reference is normalised like prepare-brats
    (brain 0.5-99.5 percentiles to [0, 1], background 0) and both are mapped to 0-255; the
    ``brain`` protocol normalises each slice itself. No hallucination audit in this mode.

    Raises:
        MrtransError: counts differ, or a triple's grids differ.
    """
    cfg = cfg or EvalConfig()
    if not (len(preds) == len(refs) == len(segs)) or not preds:
        raise MrtransError(f"give as many --pred as --ref and --seg volumes (got {len(preds)}, {len(refs)}, {len(segs)})")
    parts = []
    for pred_path, ref_path, seg_path in zip(preds, refs, segs):
        pred, pred_img = read_volume(pred_path)
        ref, ref_img = read_volume(ref_path)
        seg_img = load_nifti(seg_path)  # not read_volume: a seg without tumor is all zeros, and valid
        seg = np.asanyarray(seg_img.dataobj)
        for path, img, arr in ((pred_path, pred_img, pred), (seg_path, seg_img, seg)):
            if arr.shape != ref.shape or not np.allclose(img.affine, ref_img.affine, atol=1e-3):
                raise MrtransError(f"{path}: grid {arr.shape} does not match the reference {ref_path} {ref.shape}")
        pred, ref, seg = (_to_ras(a, ref_img.affine) for a in (pred, ref, seg))
        brain = ref != 0
        keep = brain.any(axis=(0, 1))
        stack = [a[:, :, keep].transpose(2, 0, 1) for a in (pred, ref, seg, brain)]
        # The reference as prepare-brats would normalise it: whole-volume brain percentiles -> [0, 1].
        ref_norm = brain_normalize(ref.reshape(1, -1, 1), brain.reshape(1, -1, 1))[0].reshape(ref.shape)
        ref_norm = ref_norm[:, :, keep].transpose(2, 0, 1)
        subject = subject_of(ref_path)
        slices = pd.DataFrame({"subject": subject, "slice_index": np.flatnonzero(keep),
                               "label": np.where((stack[2] > 0).any(axis=(1, 2)), "tumor", "healthy")})  # fmt: skip
        parts.append(score_slices(name, name, direction, stack[1], stack[0] * 2 - 1, ref_norm * 2 - 1,
                                  stack[3], stack[2].astype(np.uint8), slices, (-1.0, 1.0)))  # fmt: skip
    merged = Scored(
        pd.concat([p.per_slice for p in parts], ignore_index=True),
        pd.concat([p.consistency for p in parts], ignore_index=True),
        parts[0].source, parts[0].pred, parts[0].real, parts[0].seg,
    )
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_tables(tmp, [(name, merged)], [direction], cfg, figures=False)
    return out
