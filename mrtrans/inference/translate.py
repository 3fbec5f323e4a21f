"""``mrtrans translate``: a whole NIfTI volume through a trained generator, geometry kept.

For each volume: reorient to RAS (a lossless permutation/flip of voxels, as prepare-brats did), take
the brain mask (non-zero voxels, or ``--mask``), normalise with the checkpoint's own recipe
(brain percentiles -> the training range, background at the low end), centre-pad/crop in-plane to
the training size (MONAI ``ResizeWithPadOrCrop``, inverted afterwards), translate the axial slices
that contain brain in batches, undo crop/pad and reorientation, and zero everything outside the brain.

Output: float32 in [0, 1], the generator's [-1, 1] range mapped linearly (0 also outside the brain),
on the input's exact grid: shape, affine, qform/sform and codes, pixdim and units of the input
header, with a ``descrip`` saying it is derived. The values are the normalised intensities of the
target sequence (as in training: brain 0.5th-99.5th percentiles -> 0..1), not scanner units.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ResizeWithPadOrCrop
from nibabel import orientations

from mrtrans import __version__
from mrtrans.checkpoint import (
    is_translation_checkpoint,
    load_checkpoint,
    model_record,
    resolve_checkpoint,
    selection_text,
)
from mrtrans.config import Precision, TranslatorConfig, takes
from mrtrans.data_prep.conventions import WHAT_TO_DO, convention_problem, ras_spacing, spacing_differs
from mrtrans.data_prep.normalization import Normalization
from mrtrans.data_prep.transforms import BrainPercentileScale, n4_correct, resample_brain
from mrtrans.devices import resolve_device
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError, describe_os_error
from mrtrans.inference.naming import (
    Job,
    check_distinct_outputs,
    read_sidecar,
    sidecar,
    sidecar_path,
    stale_reason,
    written_by_translate_sidecar,
)
from mrtrans.io import (
    atomic_path,
    dicom_series,
    image_like,
    nifti_suffix,
    read_dicom_series,
    read_volume,
    remove_partial_files,
    sha256_file,
    write_nifti,
)
from mrtrans.models import load_generator
from mrtrans.outputs import TRANSLATION_DESCRIPTION_PREFIX, output_lock, written_by_translate

logger = logging.getLogger(__name__)


@dataclass
class Translator:
    """A generator ready to translate volumes, with the preprocessing its checkpoint records."""

    generator: torch.nn.Module
    direction: Direction
    kind: str
    normalization: Normalization
    device: torch.device
    batch_size: int = 16
    precision: Precision = Precision.fp32  # bf16 autocast applies on CUDA only
    check_conventions: bool = True  # False: --allow-unstripped
    chosen: str = ""  # which checkpoint file and by what rule (checkpoint.selection_text)
    checkpoint_file: str = ""  # the file the generator was loaded from (sidecars name it and its sha256)

    @functools.cached_property
    def checkpoint_sha256(self) -> str:
        return sha256_file(self.checkpoint_file) if self.checkpoint_file else ""

    @property
    def bounds(self) -> tuple[float, float]:
        return self.normalization.range

    @property
    def spacing(self) -> tuple[float, float] | None:
        """In-plane voxel size (mm, RAS x and y) the model was trained at; None for models of mrtrans < 0.2."""
        return self.normalization.in_plane_spacing

    def description(self, source_name: str) -> str:
        """The NIfTI ``descrip``: it is synthetic, which model made it, from what (cut to the field's 80 bytes)."""
        d = self.direction
        return f"{TRANSLATION_DESCRIPTION_PREFIX}synthetic {d.target} ({d.name} {self.kind}) from {source_name}"[:80]

    def sidecar(self, source: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON sidecar written beside every translation (:func:`mrtrans.inference.naming.sidecar`)."""

        model = {"path": self.checkpoint_file, "sha256": self.checkpoint_sha256, "chosen": self.chosen}
        return sidecar(
            source,
            extra or {},
            self.direction,
            self.kind,
            model,
            self.normalization.to_record(),
            __version__,
            skull_stripped=self.check_conventions,  # False: --allow-unstripped, the source may hold a head
        )

    def __call__(self, image: Any, affine: Any = None, mask: Any = None) -> Any:
        """Translate one volume and return the same kind of thing on the input's grid.

        Args:
            image: a NIfTI path or DICOM series folder (-> ``nibabel.Nifti1Image``), a ``nibabel`` image (-> image with
                the input's header), a MONAI ``MetaTensor`` (-> MetaTensor with the input's metadata), a
                numpy array or torch tensor (-> the same, float32; ``affine`` required). Arrays are
                (X, Y, Z) or channel-first (1, X, Y, Z); the output has the input's layout.
            affine: 4x4 voxel-to-world (RAS) affine of an array input; taken from the image otherwise.
            mask: brain mask on the input's grid (same kinds); default: the non-zero voxels.

        Returns:
            Normalised target-sequence intensities in [0, 1], zero outside the brain.

        Raises:
            MrtransError: an input it cannot use, with what to do.
        """
        if isinstance(image, (str, Path)):
            data, img = read_input(Path(image))
            return image_like(
                self._array(data, img.affine, mask, image),
                img,
                dtype=np.float32,
                description=self.description(Path(image).name),
            )
        if isinstance(image, nib.spatialimages.SpatialImage):
            data = _as_numpy(image).astype(np.float32)
            return image_like(
                self._array(data, image.affine, mask, "image"),
                image,
                dtype=np.float32,
                description=self.description("an in-memory image"),
            )
        if isinstance(image, MetaTensor):
            out = self._array(_as_numpy(image), image.affine if affine is None else affine, mask, "MetaTensor")
            return MetaTensor(torch.from_numpy(out).to(image.device), meta=dict(image.meta))
        if isinstance(image, torch.Tensor):
            return torch.from_numpy(self._array(_as_numpy(image), affine, mask, "tensor")).to(image.device)
        if isinstance(image, np.ndarray):
            return self._array(image, affine, mask, "array")
        raise MrtransError(
            f"cannot translate a {type(image).__name__}: pass a NIfTI path, a nibabel image, "
            "a MetaTensor, or a numpy array / torch tensor with its affine"
        )

    def _array(self, data: np.ndarray, affine: Any, mask: Any, what: Any) -> np.ndarray:
        """``data`` as (X, Y, Z) or (1, X, Y, Z) -> its translation in the same layout."""
        if affine is None:
            raise MrtransError(
                f"{what}: an array needs its 4x4 affine (voxel -> world, RAS): translator(array, affine)"
            )
        affine = check_affine(affine, what)
        channel = data.ndim == 4 and data.shape[0] == 1
        volume = data[0] if channel else data
        if volume.ndim != 3:
            raise MrtransError(f"{what}: expected a 3D volume (X, Y, Z) or (1, X, Y, Z), got shape {tuple(data.shape)}")
        volume = volume.astype(np.float32, copy=False)
        if not np.isfinite(volume).all():
            raise MrtransError(f"{what}: contains NaN or Inf values; replace them (e.g. by 0) first")
        brain = None
        if mask is not None:
            brain = _as_numpy(mask)
            brain = brain[0] if brain.ndim == 4 and brain.shape[0] == 1 else brain
            if brain.shape != volume.shape:
                raise MrtransError(f"{what}: mask shape {brain.shape} differs from the volume's {volume.shape}")
        if not np.any(volume if brain is None else brain):
            raise MrtransError(f"{what}: no brain (all zeros)")
        out = translate_array(volume, affine, self, brain, check=self.check_conventions)
        return out[None] if channel else out


def check_affine(affine: Any, what: Any) -> np.ndarray:
    """A usable voxel-to-world affine as float64 (4, 4): numeric, finite, invertible, bottom row (0, 0, 0, 1).

    Raises:
        MrtransError: saying which of these fails.
    """
    try:
        matrix = _as_numpy(affine).astype(np.float64)
    except (TypeError, ValueError):
        raise MrtransError(f"{what}: affine is not a numeric 4x4 matrix ({type(affine).__name__})") from None
    if matrix.shape != (4, 4):
        raise MrtransError(f"{what}: affine has shape {matrix.shape}, expected (4, 4)")
    if not np.isfinite(matrix).all():
        raise MrtransError(f"{what}: affine contains NaN or Inf")
    if not np.allclose(matrix[3], (0, 0, 0, 1)):
        raise MrtransError(f"{what}: affine's bottom row is {matrix[3].tolist()}, not [0, 0, 0, 1]")
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise MrtransError(
            f"{what}: affine is singular (zero voxel size or collinear axes); pass the image's real affine"
        )
    return matrix


def _as_numpy(value: Any) -> np.ndarray:
    """A tensor (any device), a nibabel image's data or an array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, nib.spatialimages.SpatialImage):
        return np.asanyarray(value.dataobj)
    return np.asarray(value)


@takes(TranslatorConfig)
def load_translator(model: str | Path | Translator, config: TranslatorConfig = TranslatorConfig()) -> Translator:
    """Load a run folder or checkpoint and pick the generator for ``direction``; a :class:`Translator` is used
    as it is (the one rule for every function that takes either).

    A FLAIR->T1 model asked for T1->FLAIR uses its other generator when it has one (the cycle methods and UNIT
    train both; pix2pix and CUT one: the checkpoint's ``translators`` say which). ``precision``
    ``bf16`` runs the generator under bf16 autocast on CUDA (no effect on the CPU); fp32 by default.
    ``batch_size`` (axial slices per forward pass) defaults by device (:func:`default_batch_size`).
    ``allow_unstripped`` translates volumes that fail the input-convention checks (background 0,
    skull-stripped) anyway. ``checkpoint`` picks a run folder's ``last``, ``best`` (validation) or ``step-N``
    checkpoint.

    Raises:
        MrtransError: not a translation checkpoint, or a direction the model does not translate.
    """
    if isinstance(model, Translator):
        return model

    path = resolve_checkpoint(model, config.checkpoint)
    ckpt = load_checkpoint(path)
    if not is_translation_checkpoint(ckpt):
        raise MrtransError(
            f"{model}: not a translation model checkpoint (kind {ckpt.get('kind')!r}); pass a run of `mrtrans train`"
        )
    record = model_record(ckpt, model)
    wanted = Direction.parse(config.direction) if config.direction else record.direction
    dev = resolve_device(config.device)
    generator = load_generator(ckpt, wanted, dev, source=model)
    batch_size = default_batch_size(dev) if config.batch_size is None else config.batch_size
    chosen = selection_text(ckpt, path)
    logger.info(f"model {model}: {chosen}, {wanted.name}")
    return Translator(
        generator,
        wanted,
        record.kind,
        record.normalization,
        dev,
        batch_size,
        config.precision,
        not config.allow_unstripped,
        chosen,
        str(Path(path).resolve()),
    )


def default_batch_size(device: torch.device) -> int:
    """Slices per forward pass: 1 on the CPU (faster per slice than 16: benchmarks/bench_translate.py), 16 on CUDA."""
    return 16 if device.type == "cuda" else 1


def ras_orientations(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orientation transforms (to RAS, back to the input) for nibabel's apply_orientation."""
    current = orientations.io_orientation(affine)
    ras = orientations.axcodes2ornt(("R", "A", "S"))
    return orientations.ornt_transform(current, ras), orientations.ornt_transform(ras, current)


@torch.no_grad()
def forward_slices(
    generator: torch.nn.Module, slices: torch.Tensor, device: torch.device, batch_size: int, bf16: bool = False
) -> torch.Tensor:
    """(N, 1, S, S) model-range slices -> (N, 1, S, S) float32 translations on the CPU, in batches
    (bf16 autocast on CUDA when ``bf16``; CPU always fp32)."""
    amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
    out = torch.empty_like(slices, dtype=torch.float32)
    for start in range(0, len(slices), batch_size):
        with amp:
            out[start : start + batch_size] = generator(slices[start : start + batch_size].to(device)).float().cpu()
    return out


# The lowest value a translation has inside the brain (outputs are in [0, 1], background exactly 0): 1/1024, far
# below any intensity difference the metrics see, above the background for tools that find the brain by > 0.
BRAIN_FLOOR = 1.0 / 1024


@torch.no_grad()
def translate_array(
    data: np.ndarray, affine: np.ndarray, translator: Translator, brain: np.ndarray | None = None, check: bool = True
) -> np.ndarray:
    """Translate one volume given as an array on its own grid.

    Steps: reorient to RAS; check the input conventions (background 0, skull-stripped; skipped with a
    ``brain`` mask or ``check=False``); resample in-plane to the model's spacing when it records one and
    the input's differs by more than 1% (:func:`~mrtrans.data_prep.transforms.resample_brain`); N4 when
    the model's training data had it; normalise, fit the field, translate the axial slices with brain;
    undo the fit, resample back onto the input's grid, reorient back.

    Args:
        data: (X, Y, Z) intensities in the file's voxel order.
        affine: the voxel-to-world affine (orientation and voxel size are used).
        translator: from :func:`load_translator`.
        brain: optional (X, Y, Z) mask; default: non-zero voxels.
        check: refuse inputs that break the conventions (``--allow-unstripped`` turns this off).

    Returns:
        (X, Y, Z) float32 in [0, 1], zero outside the brain and at least :data:`BRAIN_FLOOR` inside it (the
        generator's -1 would otherwise become 0, which tools that mask by > 0 read as background).

    Raises:
        MrtransError: a broken convention, a brain larger than the model's field, or a NaN output.
    """
    to_ras, from_ras = ras_orientations(affine)
    user_mask = brain is not None
    brain = (data != 0) if brain is None else brain.astype(bool)
    vol = np.ascontiguousarray(orientations.apply_orientation(data, to_ras), dtype=np.float32)
    mask = np.ascontiguousarray(orientations.apply_orientation(brain, to_ras))
    if check:
        problem = convention_problem(vol, mask if user_mask else None)
        if problem:
            raise MrtransError(f"{problem}; {WHAT_TO_DO}")
    ras_affine = affine @ orientations.inv_ornt_aff(to_ras, data.shape)
    model_spacing = translator.spacing
    have = ras_spacing(affine, data.shape)[:2]
    resample = model_spacing is not None and spacing_differs(have, model_spacing)
    if resample:
        work_vol, work_mask, work_affine = resample_brain(vol, mask, ras_affine, pixdim=(*model_spacing, -1))
        if not work_mask.any():
            raise MrtransError(f"no brain left after resampling to the model's {model_spacing} mm spacing")
    else:
        work_vol, work_mask = vol, mask
    if translator.normalization.bias_field == "n4":  # as prepare-brats did for the training data
        at = (*model_spacing, ras_spacing(affine, data.shape)[2]) if resample else ras_spacing(affine, data.shape)
        work_vol = n4_correct(work_vol, work_mask.astype(np.uint8), at)
    out = _translate_ras(work_vol, work_mask, translator, have if resample else None)
    if resample:  # back onto the input's grid, the brain's edge kept as bright as inside (normalised convolution)
        out, _, _ = resample_brain(
            out, work_mask, work_affine, dst_affine=ras_affine, spatial_shape=vol.shape, min_weight=1e-3
        )
        out = np.clip(out, 0.0, 1.0, out=out)
    np.maximum(out, BRAIN_FLOOR, out=out, where=mask)  # the brain stays > 0 for tools that mask by > 0
    out[~mask] = 0.0
    return np.ascontiguousarray(orientations.apply_orientation(out, from_ras), dtype=np.float32)


def _translate_ras(
    vol: np.ndarray, mask: np.ndarray, translator: Translator, resampled_from: tuple[float, ...] | None
) -> np.ndarray:
    """(X, Y, Z) RAS volume at the model's spacing -> its translation in [0, 1], zero outside ``mask``."""
    norm = translator.normalization
    b_min, b_max = translator.bounds
    scaled = BrainPercentileScale(norm.lower_percentile, norm.upper_percentile, b_min, b_max)(
        torch.from_numpy(vol[None]), torch.from_numpy(mask[None])
    )
    size = norm.image_size
    fit = ResizeWithPadOrCrop(spatial_size=(size, size, -1), mode="constant", value=b_min)
    fitted = fit(MetaTensor(scaled))  # (1, S, S, Z), records the pad/crop for the inverse
    mask_fit = ResizeWithPadOrCrop(spatial_size=(size, size, -1), mode="constant", value=0)(
        MetaTensor(torch.from_numpy(mask[None]).float())
    )
    if int(mask_fit.sum()) != int(mask.sum()):
        at = (
            f"{translator.spacing[0]:g}x{translator.spacing[1]:g} mm"
            if translator.spacing
            else "the training resolution"
        )
        extent = f" (after resampling from {resampled_from[0]:g}x{resampled_from[1]:g} mm)" if resampled_from else ""
        raise MrtransError(
            f"brain extends beyond the {size}x{size} in-plane field the model was trained on at {at}{extent}; "
            "crop the volume around the brain, or use a model prepared with a coarser --spacing or a larger "
            "--image-size"
        )
    slices = fitted.as_tensor()[0].permute(2, 0, 1).unsqueeze(1)  # (Z, 1, S, S)
    has_brain = mask_fit.as_tensor()[0].sum(dim=(0, 1)) > 0
    out = torch.full_like(slices, b_min)
    bf16 = translator.precision is Precision.bf16
    out[has_brain] = forward_slices(
        translator.generator, slices[has_brain], translator.device, translator.batch_size, bf16=bf16
    )
    if not torch.isfinite(out).all():
        raise MrtransError(
            "the model's output contains NaN or Inf: its training diverged (see the run's losses.csv); retrain it"
        )
    result = MetaTensor(out[:, 0].permute(1, 2, 0).unsqueeze(0), applied_operations=fitted.applied_operations)
    restored = fit.inverse(result).as_tensor()[0].numpy()  # (X', Y', Z) in RAS
    restored = (restored - b_min) / (b_max - b_min)
    restored = np.clip(restored, 0.0, 1.0, out=restored)
    restored[~mask] = 0.0
    return restored


def expand_inputs(text: str | Path) -> list[Path]:
    """One file, every NIfTI in a folder, a DICOM series folder, or a glob pattern -> sorted input paths."""
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and nifti_suffix(p))
        if not files and dicom_series(path):
            files = [path]  # the folder is one DICOM series (read_input says if it holds several)
    elif path.exists():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(text)) if Path(p).is_file())
    if not files:
        raise MrtransError(
            f"{text}: no input found (give a NIfTI file, a folder of them, a DICOM series folder, or a quoted glob)"
        )
    return files


def cohort_part(files: list[Path], num_parts: int = 1, part_id: int = 0) -> list[Path]:
    """Part ``part_id`` of ``num_parts`` (nnU-Net's convention): every ``num_parts``-th file of the sorted
    list from ``part_id`` on, so parts never overlap and together cover every file.

    Raises:
        MrtransError: ``part_id`` outside 0..num_parts-1.
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise MrtransError(
            f"--part-id {part_id} --num-parts {num_parts}: need num_parts >= 1 and 0 <= part_id < num_parts"
        )
    check_output_names(files)  # on the whole cohort: two parts must not write one name either
    return sorted(files)[part_id::num_parts]


def output_name(path: Path) -> str:
    """The file name an input's translation gets in an output folder (a DICOM folder -> NAME.nii.gz)."""
    return path.name if nifti_suffix(path) else f"{path.name}.nii.gz"


def check_output_names(inputs: list[Path]) -> None:
    """Refuse inputs whose translations would get the same name in one output folder, before any work.

    Raises:
        MrtransError: naming both inputs.
    """
    seen: dict[str, Path] = {}
    for path in inputs:
        name = output_name(path)
        if name in seen and seen[name].resolve() != path.resolve():
            raise MrtransError(
                f"{seen[name]} and {path}: both would be written as {name} in the output folder; give "
                f"the inputs distinct file names (e.g. with the subject ID) or translate each folder "
                f"into its own --out"
            )
        seen[name] = path


def output_paths(inputs: list[Path], output: Path) -> list[Path]:
    """Where each input's translation goes: OUTPUT itself for one input file, else OUTPUT/<input name>."""
    if len(inputs) == 1 and not output.is_dir() and nifti_suffix(output):
        return [output]
    if output.exists() and not output.is_dir():
        raise MrtransError(
            f"{output}: is a file; {'several inputs need' if len(inputs) > 1 else 'this input needs'} an "
            f"output folder here, or give an output name ending in .nii.gz"
        )
    check_output_names(inputs)
    return [output / output_name(p) for p in inputs]


def read_input(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A NIfTI file or a DICOM series folder as (data, image with its geometry)."""
    return read_dicom_series(path) if path.is_dir() else read_volume(path)


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # outputs of an earlier translate, as this one would write them
    # outputs of an earlier translate that this one wrote again, and why (another source, model, direction...)
    replaced: list[tuple[Path, str]] = field(default_factory=list)


def translate_files(
    inputs: list[Path],
    output: Path,
    translator: Translator,
    mask: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TranslateReport:
    """Translate every input; a bad file is reported and the others still get done.

    An existing output written by an earlier translate is kept when its sidecar says it is what this command would
    write now (the same source content, direction, model file and preprocessing:
    :func:`mrtrans.inference.naming.stale_reason`), so a re-run after Ctrl-C does only what is left; when anything
    differs, or with ``overwrite``, it is written again (``report.replaced`` says why). Any other existing file is
    never replaced, nor any input of the batch. Each output file is claimed while it is written (a lock beside it),
    not the folder, so parts of one cohort (``cohort_part``) run at once into one folder; a claim left by a
    killed job is taken over (at once on this host, after ``CLAIM_STALE_S`` from another).

    Raises:
        MrtransError: ``--mask`` with several inputs (the rest goes into the report).
    """
    return translate_jobs(file_jobs(inputs, output), translator, mask, overwrite, progress)


def check_mask(mask: Path | None, jobs: list[Job]) -> None:
    """``--mask`` is one volume's brain mask: refuse it with several inputs."""
    if mask is not None and len(jobs) != 1:
        raise MrtransError(f"{mask}: --mask goes with one input volume, got {len(jobs)} inputs")


def file_jobs(inputs: list[Path], output: Path) -> list[Job]:
    """The jobs of plain input files: each into :func:`output_paths`' place, no sidecar fields beyond the usual."""
    return [Job(src, dst, {}) for src, dst in zip(inputs, output_paths(inputs, output))]


# A volume's translation takes minutes at most: a claim on an output file left by a job on another host
# (which cannot be asked whether it still runs) is taken over after this long.
CLAIM_STALE_S = 1800.0


def translate_jobs(
    jobs: list[Job],
    translator: Translator,
    mask: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TranslateReport:
    """Translate each job's source into its output and write the output's JSON sidecar (see translate_files)."""
    check_mask(mask, jobs)
    check_distinct_outputs(jobs)
    report = TranslateReport()
    protected = {j.source.resolve() for j in jobs} | ({mask.resolve()} if mask else set())
    for job in jobs:
        src, dst, side = job.source, job.output, sidecar_path(job.output)
        try:
            if dst.resolve() in protected or side.resolve() in protected:
                raise MrtransError(f"{dst}: output path is an input of this command; choose another --out")
            if side.exists() and not written_by_translate_sidecar(side):
                raise MrtransError(f"{side}: exists and was not written by `mrtrans translate`; choose another --out")
            with output_lock(dst, stale_after=CLAIM_STALE_S):  # this file, not the folder: parts run side by side
                remove_partial_files(dst)  # a part killed while writing this file left its temporary
                remove_partial_files(side)
                record, why = translator.sidecar(src, job.sidecar), None
                if dst.exists():
                    if not written_by_translate(dst):
                        raise MrtransError(
                            f"{dst}: exists and was not written by `mrtrans translate`; it is never replaced, "
                            "choose another --out"
                        )
                    why = "--overwrite" if overwrite else stale_reason(read_sidecar(side), record)
                    if why is None:
                        report.kept.append(dst)
                        continue
                    logger.info(f"{dst}: written again: {why}")
                data, img = read_input(src)
                brain = None
                if mask is not None:
                    brain, mask_img = read_volume(mask)
                    if brain.shape != data.shape or not np.allclose(mask_img.affine, img.affine, atol=1e-3):
                        raise MrtransError(f"{mask}: mask grid does not match {src}")
                translated = translate_array(data, img.affine, translator, brain, check=translator.check_conventions)
                write_nifti(
                    translated, dst, reference=img, dtype=np.float32, description=translator.description(src.name)
                )
                with atomic_path(side) as tmp:  # what the image is (synthetic), from what, by which model
                    tmp.write_text(json.dumps(record, indent=2) + "\n")
            if why is None:
                report.written.append(dst)
            else:
                report.replaced.append((dst, why))
        except (MrtransError, OSError) as exc:  # an unwritable output fails this volume, not the batch
            text = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            report.failed.append((src, text if str(src) in text or str(dst) in text else f"{src}: {text}"))
        finally:
            if progress:
                progress(1)
    return report
