"""``mrtrans prepare-brats``: BraTS volumes -> balanced healthy/tumor 2D slice sets.

The paper's protocol (Cohen et al. 2018, HarmonicGAN Sec. 4.1): axial slices, half healthy and half
tumor, unpaired for training and paired for testing, split by patient.

1. Each subject runs through the MONAI pipeline (:mod:`.transforms`) in a worker, resampled first when its
   voxel size differs from the set's (:func:`plan_spacing`); its eligible slices go to a scratch file, and a
   one-line reason is kept for any subject that fails (a broken input convention, a brain the field would cut).
2. The subjects that worked are split by patient, seeded: ``test``, then (optionally) ``val``, then ``train``
   into two disjoint halves; source training slices come from half A only, target training slices from half B
   only; paired training slices (optional, for paired methods) from both halves.
   Splitting after processing means a broken subject never unbalances the halves.
3. Slices are drawn, seeded, 50/50 tumor/healthy per set, and gathered into the output.

Output (written to a temporary folder, moved into place at the end)::

    OUT/train/<source>.npy, <source>_seg.npy    (N, S, S) float16 / uint8, patients of half A
    OUT/train/<target>.npy, <target>_seg.npy    patients of half B
    OUT/test/<source>.npy, <target>.npy          (M, S, S) float16, the same slices (paired)
    OUT/test/seg.npy, brain.npy                  (M, S, S) uint8 BraTS labels / brain mask
    OUT/val/...                                  the same, of the validation patients (validation_fraction > 0)
    OUT/train_paired/...                         the same, of the training patients (paired_train_slices > 0)
    OUT/manifest.csv, prepare.json, contact_sheet.png

Images are in [-1, 1] (or [0, 1]) with background at the low end; arrays are indexed
``[slice, x, y]`` in RAS voxel order (x: right-left axis, y: posterior-anterior axis).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import platform
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrtrans import __version__
from mrtrans.config import IntensityRange, PrepareConfig, to_dict
from mrtrans.data_prep.conventions import ras_spacing, spacing_differs
from mrtrans.data_prep.discovery import LAYOUTS, SEG, DiscoveryReport, Layout, Subject, discover_subjects
from mrtrans.data_prep.normalization import Normalization
from mrtrans.data_prep.transforms import BRAIN, subject_data, subject_pipeline
from mrtrans.errors import MrtransError
from mrtrans.io import MAX_VOXELS
from mrtrans.outputs import OutputKind, atomic_dir, check_output

TRAIN_A, TRAIN_B, TEST, VAL = "train_a", "train_b", "test", "val"
PAIRED_TRAIN = "train_paired"  # the key of the paired training set among the drawn sets
HEALTHY, TUMOR = "healthy", "tumor"


def intensity_bounds(kind: IntensityRange) -> tuple[float, float]:
    """(background/low, high) of the prepared intensity range."""
    return (-1.0, 1.0) if kind is IntensityRange.minus_one_one else (0.0, 1.0)


def split_patients(ids: list[str], test_fraction: float, seed: int, validation_fraction: float = 0.0) -> dict[str, str]:
    """Assign every patient to ``train_a``, ``train_b``, ``test`` or (``validation_fraction`` > 0) ``val``, seeded.

    The test patients are drawn first, then the validation ones from the rest, so adding validation patients
    leaves the test set as it was.

    Raises:
        MrtransError: too few patients (one per group is the minimum).
    """
    groups = 4 if validation_fraction > 0 else 3
    if len(ids) < groups:
        names = "test, validation, train half A, train half B" if groups == 4 else "test, train half A, train half B"
        raise MrtransError(f"need at least {groups} usable subjects ({names}), found {len(ids)}")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - (groups - 1))
    n_val = min(max(1, round(validation_fraction * len(ids))), len(ids) - n_test - 2) if groups == 4 else 0
    train = order[n_test + n_val :]
    n_a = (len(train) + 1) // 2
    roles = {sid: TEST for sid in order[:n_test]}
    roles |= {sid: VAL for sid in order[n_test : n_test + n_val]}
    roles |= {sid: TRAIN_A for sid in train[:n_a]}
    roles |= {sid: TRAIN_B for sid in train[n_a:]}
    return roles


@dataclass
class SubjectResult:
    """What a worker returns: per-slice stats of eligible slices and the scratch file, or a reason."""

    subject_id: str
    rows: list[dict] = field(default_factory=list)
    scratch: str | None = None
    input_hash: str = ""
    error: str | None = None


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        h.update(path.name.encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def _error_text(exc: BaseException) -> str:
    """The innermost message: MONAI wraps transform errors in RuntimeError('applying transform ...')."""
    while exc.__cause__ is not None and isinstance(exc, RuntimeError) and not isinstance(exc, MrtransError):
        exc = exc.__cause__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, MrtransError) else f"{type(exc).__name__}: {text}"


def seg_label_error(seg: np.ndarray, subject: Subject) -> str | None:
    """Why ``seg`` is not a label map of the subject's layout (non-integer or unknown values), or None.

    A seg of another convention (background -1, probabilities, labels 0.5) would be cast to uint8 into
    wrong labels - every pixel tumor, or tumor slices filed as healthy - so it is refused instead.
    """
    values = np.unique(np.asarray(seg))
    allowed = LAYOUTS[subject.layout].seg_labels
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        return (
            f"{subject.files[SEG]}: seg values are not integer labels (e.g. {', '.join(f'{v:g}' for v in bad[:5])}); "
            f"give the {subject.layout.value} label map ({'/'.join(map(str, allowed))})"
        )
    unknown = sorted(set(values.astype(np.int64).tolist()) - set(allowed))
    if unknown:
        return (
            f"{subject.files[SEG]}: seg holds labels {', '.join(map(str, unknown))}, not in the {subject.layout.value} "
            f"label set {'/'.join(map(str, allowed))}; convert the labels or check the file"
        )
    return None


def process_subject(
    subject: Subject, cfg: PrepareConfig, scratch_dir: str, pixdim: tuple[float, ...] | None = None
) -> SubjectResult:
    """Run one subject through the pipeline and keep its eligible slices (a worker's job).

    Keeps both modalities, the seg and the brain mask of every eligible slice; the patient's role
    is decided later. ``pixdim``: resample to it first (see :func:`plan_spacing`). Failures become
    ``result.error``; the run goes on.
    """
    import torch

    torch.set_num_threads(1)
    source, target = (m.value for m in cfg.modalities)
    result = SubjectResult(subject.subject_id)
    b_min, b_max = intensity_bounds(cfg.intensity_range)
    try:
        data = subject_data(subject, [source, target])
        result.input_hash = _hash_files([subject.files[k] for k in (source, target, SEG)])
        pipeline = subject_pipeline(
            subject,
            [source, target],
            cfg.image_size,
            cfg.lower_percentile,
            cfg.upper_percentile,
            b_min,
            b_max,
            pixdim=pixdim,
            max_extent_mismatch=cfg.max_extent_mismatch,
            check_stripped=not cfg.allow_unstripped,
            bias_field_correction=cfg.bias_field_correction,
        )
        out = pipeline(data)
    except (MrtransError, RuntimeError, OSError, ValueError, EOFError, IndexError) as exc:
        result.error = _error_text(exc)
        return result
    kept = int(out[BRAIN].sum())
    if kept < out["brain_voxels"]:  # the in-plane crop to image_size cut brain: never silently
        cut = 1 - kept / out["brain_voxels"]
        result.error = (
            f"brain extends beyond the {cfg.image_size}x{cfg.image_size} field ({cut:.1%} of its voxels would be "
            "cut); use a larger --image-size or a coarser --spacing"
        )
        return result

    raw = out[SEG][0].numpy()
    error = seg_label_error(raw, subject)
    if error:
        result.error = error
        return result
    seg = raw.astype(np.uint8)  # (S, S, Z): integer labels of the layout, checked above
    brain = out[BRAIN][0].numpy().astype(bool)
    tumor_px, brain_px = (seg > 0).sum(axis=(0, 1)), brain.sum(axis=(0, 1))  # recorded in the manifest
    is_tumor, is_healthy = slice_labels(seg, brain, cfg)
    z_keep = np.flatnonzero(is_tumor | is_healthy)
    arrays = {m: out[m][0].numpy()[:, :, z_keep].transpose(2, 0, 1).astype(np.float16) for m in (source, target)}
    arrays[SEG] = seg[:, :, z_keep].transpose(2, 0, 1)
    arrays[BRAIN] = brain[:, :, z_keep].transpose(2, 0, 1).astype(np.uint8)
    scratch = Path(scratch_dir) / f"{subject.subject_id}.npz"
    np.savez(scratch, **arrays)
    result.scratch = str(scratch)
    files = {m: str(subject.files[m]) for m in (source, target, SEG)}
    for row, z in enumerate(z_keep):
        result.rows.append(
            {
                "subject": subject.subject_id,
                "slice_index": int(z),
                "label": TUMOR if is_tumor[z] else HEALTHY,
                "tumor_pixels": int(tumor_px[z]),
                "brain_pixels": int(brain_px[z]),
                "scratch_row": row,
                "files": files,
            }
        )
    return result


def _header(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # unreadable header: the pipeline reports the file with its own message
        raise MrtransError(f"{path}: cannot read NIfTI header ({type(exc).__name__}: {exc})") from exc


def check_headers(subject: Subject, keys: list[str]) -> None:
    """What the headers alone show is unusable, before any voxel is read: not 3D (MSD's 4D image aside),
    complex values, or a size no MR volume has.

    Raises:
        MrtransError: naming the file.
    """

    for path in dict.fromkeys(subject.files[k] for k in keys):
        img = _header(path)
        shape = tuple(int(n) for n in img.shape)
        four_d = subject.layout is Layout.msd and path != subject.files[SEG]
        if len(shape) < 3 or (len(shape) > 3 and not four_d and shape[3:] != (1,) * (len(shape) - 3)):
            raise MrtransError(f"{path}: expected a 3D volume, got shape {shape}; give one 3D image per file")
        if np.issubdtype(img.get_data_dtype(), np.complexfloating):
            raise MrtransError(
                f"{path}: complex-valued image ({img.get_data_dtype()}); give a magnitude image (e.g. abs())"
            )
        if int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
            raise MrtransError(f"{path}: header claims {' x '.join(map(str, shape))} voxels; check the file's header")


def subject_spacing(subject: Subject, modality: str) -> tuple[float, float, float]:
    """The subject's voxel size (mm, RAS x, y, z) from ``modality``'s header, rounded to 0.001 mm."""

    img = _header(subject.files[modality])
    x, y, z = ras_spacing(img.affine, img.shape[:3])
    return round(x, 3), round(y, 3), round(z, 3)


def slice_labels(seg: np.ndarray, brain: np.ndarray, rules: PrepareConfig) -> tuple[np.ndarray, np.ndarray]:
    """The slice rules on an (X, Y, Z) volume: per axial slice, (tumor, healthy) flags.

    A tumor slice has at least ``min_tumor_pixels`` tumor pixels; a healthy slice none and a brain of at least
    ``min_brain_fraction`` of the slice area; others are not used. prepare-brats and evaluate-volumes share it.
    """
    tumor_px = (seg > 0).sum(axis=(0, 1))
    brain_px = brain.sum(axis=(0, 1))
    is_tumor = tumor_px >= rules.min_tumor_pixels
    return is_tumor, (tumor_px == 0) & (brain_px >= rules.min_brain_fraction * seg.shape[0] * seg.shape[1])


def plan_spacing(
    spacings: dict[str, tuple[float, float, float]], wanted: tuple[float, ...] | None
) -> tuple[tuple[float, float, float | None], dict[str, tuple[float, ...]], list[str]]:
    """The spacing of the prepared set and which subjects to resample to it.

    Args:
        spacings: subject -> its (x, y, z) voxel size in mm.
        wanted: ``--spacing``: (in-plane,) or (in-plane, through-plane); None: the data's own.

    Returns:
        ``(spacing, pixdim, notes)``: the set's (x, y, z) spacing (z None when kept per subject), the
        ``Spacingd`` pixdim of each subject to resample (others are used as they are), and lines for the user.
    """
    notes: list[str] = []
    if wanted is not None:
        target: tuple[float, float, float | None] = (wanted[0], wanted[0], wanted[1] if len(wanted) > 1 else None)
    else:
        counts = Counter(spacings.values())
        common = max(counts, key=lambda sp: (counts[sp], [-v for v in sp]))  # most common; ties: the finest
        target = common
        if len(counts) > 1:
            notes.append(
                f"subjects have {len(counts)} different voxel sizes; resampling those not at the most common, "
                f"{common[0]:g}x{common[1]:g}x{common[2]:g} mm (choose with --spacing)"
            )
    pixdim = {
        sid: tuple(-1.0 if w is None else w for w in target)
        for sid, sp in spacings.items()
        if spacing_differs(sp, target)
    }
    if wanted is not None and pixdim:
        notes.append(
            f"resampling {len(pixdim)} of {len(spacings)} subjects to {wanted[0]:g} mm in-plane"
            + (f", {wanted[1]:g} mm through-plane" if len(wanted) > 1 else "")
        )
    return target, pixdim, notes


def _draw(
    candidates: pd.DataFrame, n_tumor: int, n_healthy: int, rng: np.random.Generator, what: str
) -> tuple[pd.DataFrame, str | None]:
    """n_tumor tumor and n_healthy healthy rows, drawn without replacement; or the shortage as text."""
    parts, short = [], []
    for label, n in ((TUMOR, n_tumor), (HEALTHY, n_healthy)):
        pool = candidates[candidates["label"] == label]
        if len(pool) < n:
            short.append(f"{len(pool)} {label}")
            continue
        parts.append(pool.iloc[np.sort(rng.choice(len(pool), size=n, replace=False))])
    if short:
        return candidates.iloc[
            :0
        ], f"{what}: asked {n_tumor} tumor + {n_healthy} healthy, only {' and '.join(short)} available"
    return pd.concat(parts).sort_values(["subject", "slice_index"]), None


def select_slices(rows: pd.DataFrame, cfg: PrepareConfig) -> dict[str, pd.DataFrame]:
    """Draw the three sets: source training, target training (tumor share as configured), paired test (50/50).

    Each set is drawn from its own seeded stream, so the test set does not depend on the training
    sets' tumor fractions: prepared sets that differ only in those share their test slices.

    Raises:
        MrtransError: too few eligible slices; the message says how many could be made.
    """
    source, target = (m.value for m in cfg.modalities)
    wanted = {
        source: ((TRAIN_A,), cfg.train_slices, cfg.source_tumor_fraction),
        target: ((TRAIN_B,), cfg.train_slices, cfg.target_tumor_fraction),
        TEST: ((TEST,), cfg.test_slices, 0.5),
        VAL: ((VAL,), cfg.validation_slices if cfg.validation_fraction > 0 else 0, 0.5),
        PAIRED_TRAIN: ((TRAIN_A, TRAIN_B), cfg.paired_train_slices, 0.5),
    }
    what_is = {TEST: "paired test slices", VAL: "paired validation slices", PAIRED_TRAIN: "paired training slices"}
    chosen, problems = {}, []
    for stream, (name, (roles, n, fraction)) in enumerate(wanted.items()):
        if n == 0:  # validation and paired training slices are optional
            continue
        what = what_is.get(name, f"training slices of {name}")
        n_tumor = round(n * fraction)
        rng = np.random.default_rng([cfg.seed, stream])
        chosen[name], problem = _draw(rows[rows["role"].isin(roles)], n_tumor, n - n_tumor, rng, what)
        if problem:
            problems.append(problem)
    if problems:
        raise MrtransError(
            "too few eligible slices: "
            + "; ".join(problems)
            + ". Lower --train-slices/--test-slices, relax --min-tumor-pixels/--min-brain-fraction, or add subjects"
        )
    return chosen


def _gather(selected: pd.DataFrame, keys: list[str], scratch: dict[str, str]) -> dict[str, np.ndarray]:
    """Stack the selected slices from the scratch files, in the order of ``selected``."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for sid, group in selected.groupby("subject", sort=False):
        with np.load(scratch[sid]) as arrays:
            for key in keys:
                out[key].append(arrays[key][group["scratch_row"].to_numpy()])
    return {k: np.concatenate(v) for k, v in out.items()}


def _skipped_text(skipped: list[tuple[str, str]], shown: int = 5) -> str:
    """``skipped N subjects: a: why; b: why ...`` (call only when something was skipped)."""
    more = f"; ... and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return (
        f"skipped {len(skipped)} subject{'s' if len(skipped) > 1 else ''}: "
        + "; ".join(f"{s}: {w}" for s, w in skipped[:shown])
        + more
    )


@dataclass
class PrepareSummary:
    out: Path
    counts: dict[str, int]
    skipped: list[tuple[str, str]]
    report: DiscoveryReport
    notes: list[str] = field(default_factory=list)  # e.g. which subjects were resampled


def _usable_subjects(
    report: DiscoveryReport, source: str, target: str
) -> tuple[list[Subject], list[tuple[str, str]], dict[str, tuple[float, float, float]]]:
    """The subjects with both sequences and consistent headers, the skipped ones with why, and their spacings."""
    skipped = list(report.skipped)
    usable = []
    for subject in report.subjects:
        missing = [m for m in (source, target) if m not in subject.files]
        if missing:
            skipped.append((subject.subject_id, f"missing modality {', '.join(missing)}"))
        else:
            usable.append(subject)
    spacings = {}
    for subject in list(usable):
        try:
            check_headers(subject, [source, target, SEG])
            spacings[subject.subject_id] = subject_spacing(subject, source)
        except MrtransError as exc:
            skipped.append((subject.subject_id, str(exc)))
            usable.remove(subject)
    return usable, skipped, spacings


def _process_all(jobs: list[tuple], workers: int, progress: Callable[[int], None] | None) -> list[SubjectResult]:
    """:func:`process_subject` over ``jobs``, in this process (``workers`` 1) or spawned ones; ``progress(1)`` each."""
    results: list[SubjectResult] = []
    with contextlib.ExitStack() as stack:
        if workers <= 1 or not jobs:  # no job: no pool to start
            done = itertools.starmap(process_subject, jobs)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
            done = pool.map(process_subject, *zip(*jobs))
        for result in done:
            results.append(result)
            if progress:
                progress(1)
    return results


MANIFEST_COLUMNS = [
    "subject", "split", "domain", "slice_index", "label", "tumor_pixels", "brain_pixels", "array_index", "source_files"
]  # fmt: skip


def _write_arrays(
    tmp: Path, chosen: dict[str, pd.DataFrame], scratch: dict[str, str], source: str, target: str
) -> pd.DataFrame:
    """The chosen slices as train/, train_paired/, test/ and val/ arrays; returns the manifest (manifest.csv)."""
    (tmp / "train").mkdir()
    (tmp / "test").mkdir()
    manifest = []
    for modality in (source, target):
        arrays = _gather(chosen[modality], [modality, SEG], scratch)
        np.save(tmp / "train" / f"{modality}.npy", arrays[modality])
        np.save(tmp / "train" / f"{modality}_seg.npy", arrays[SEG])
        files = chosen[modality]["files"].map(lambda f, m=modality: f"{f[m]};{f[SEG]}")
        manifest.append(chosen[modality].assign(split="train", domain=modality, source_files=files))
    for name, split in ((TEST, "test"), (VAL, "val"), (PAIRED_TRAIN, "train")):
        if name not in chosen:
            continue
        folder = tmp / ("train_paired" if name == PAIRED_TRAIN else split)
        folder.mkdir(exist_ok=True)
        for key, array in _gather(chosen[name], [source, target, SEG, "brain"], scratch).items():
            np.save(folder / f"{key}.npy", array)
        files = chosen[name]["files"].map(lambda f: ";".join(f[k] for k in (source, target, SEG)))
        manifest.append(chosen[name].assign(split=split, domain="paired", source_files=files))
    manifest_df = pd.concat(manifest)
    manifest_df["array_index"] = manifest_df.groupby(["split", "domain"]).cumcount()
    manifest_df[MANIFEST_COLUMNS].to_csv(tmp / "manifest.csv", index=False)
    return manifest_df


def _normalization_record(cfg: PrepareConfig, spacing: tuple) -> dict[str, Any]:
    """prepare.json's ``normalization``: how the arrays' values and grid were made (read by train and translate)."""
    return Normalization(
        lower_percentile=cfg.lower_percentile,
        upper_percentile=cfg.upper_percentile,
        range=intensity_bounds(cfg.intensity_range),
        image_size=cfg.image_size,
        spacing=tuple(spacing),  # mm, RAS x, y, z (z None: each subject's own)
        bias_field="n4" if cfg.bias_field_correction else None,
    ).to_record()


def _choose(good: list[SubjectResult], cfg: PrepareConfig, skipped: list[tuple[str, str]], root: str | Path):
    """Split the processed subjects by patient and draw the slices (:func:`select_slices`); (roles, chosen)."""
    if len(good) < 3:
        raise MrtransError(
            f"{root}: {len(good)} usable subjects, need at least 3 (test, train half A, train half B)"
            + (f"; {_skipped_text(skipped)}" if skipped else "")
        )
    roles = split_patients([r.subject_id for r in good], cfg.test_fraction, cfg.seed, cfg.validation_fraction)
    rows = pd.DataFrame([row for r in good for row in r.rows])
    rows["role"] = rows["subject"].map(roles)
    try:
        return roles, select_slices(rows, cfg)
    except MrtransError as exc:
        raise MrtransError(
            f"{exc} ({len(good)} subjects used" + (f"; {_skipped_text(skipped)})" if skipped else ")")
        ) from None


def prepare_brats(
    root: str | Path,
    out: str | Path,
    cfg: PrepareConfig,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[DiscoveryReport, int], None] | None = None,
) -> PrepareSummary:
    """Discover, process, select and write a prepared slice set (see module docstring).

    Args:
        root: dataset root in any supported layout.
        out: output folder; appears only when complete.
        cfg: the protocol.
        workers: processes for the per-subject pipeline (1: in this process).
        overwrite: replace an existing ``out``.
        progress: called with 1 after each subject.
        on_start: called with the discovery report and the number of subjects to process.

    Raises:
        MrtransError: nothing found, fewer than 3 usable subjects, or too few slices.
    """
    if cfg.test_slices % 2:
        raise MrtransError(f"test_slices ({cfg.test_slices}) must be even (half tumor, half healthy)")
    source, target = (m.value for m in cfg.modalities)
    if source == target:
        raise MrtransError(f"modalities must differ, got {source} twice")
    check_output(out, OutputKind.prepared, overwrite, inputs=[root])  # before any work
    report = discover_subjects(root)
    usable, skipped, spacings = _usable_subjects(report, source, target)
    spacing, pixdims, notes = plan_spacing(spacings, cfg.spacing) if spacings else ((1.0, 1.0, 1.0), {}, [])
    if on_start:
        on_start(report, len(usable))

    out = Path(out)
    with atomic_dir(out, OutputKind.prepared, overwrite=overwrite, inputs=[root]) as tmp:
        scratch_dir = tmp / "_scratch"
        scratch_dir.mkdir()
        jobs = [(s, cfg, str(scratch_dir), pixdims.get(s.subject_id)) for s in usable]
        results = _process_all(jobs, workers, progress)
        skipped += [(r.subject_id, r.error) for r in results if r.error]
        good = [r for r in results if not r.error]
        roles, chosen = _choose(good, cfg, skipped, root)
        manifest_df = _write_arrays(tmp, chosen, {r.subject_id: r.scratch for r in good}, source, target)
        counts = {
            f"{split}_{domain}_{label}": int(n)
            for (split, domain, label), n in manifest_df.groupby(["split", "domain", "label"]).size().items()
        }
        meta = {
            "mrtrans_version": __version__,
            "python": platform.python_version(),
            "root": str(Path(root).resolve()),
            "config": to_dict(cfg),
            "normalization": _normalization_record(cfg, spacing),
            "modalities": {"source": source, "target": target},
            # seg label conventions of the used subjects (which labels are the tumor core)
            "layouts": sorted({s.layout.value for s in usable if s.subject_id in roles}),
            "counts": counts,
            "subjects": {
                "found": len(report.subjects),
                "used": sorted(r.subject_id for r in good),
                "roles": roles,
                "skipped": [{"subject": s, "reason": w} for s, w in skipped],
                "resampled": sorted(sid for sid in pixdims if sid in roles),
            },
            "input_sha256": hashlib.sha256("".join(sorted(r.input_hash for r in good)).encode()).hexdigest(),
        }
        (tmp / "prepare.json").write_text(json.dumps(meta, indent=2))
        from mrtrans.data_prep.contact_sheet import write_contact_sheet  # matplotlib: only for the sheet

        b_min, b_max = intensity_bounds(cfg.intensity_range)
        write_contact_sheet(tmp, manifest_df, source, target, b_min, b_max)
        for path in scratch_dir.iterdir():
            path.unlink()
        scratch_dir.rmdir()
    return PrepareSummary(out, counts, skipped, report, notes)
