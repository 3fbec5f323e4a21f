"""The per-subject MONAI pipeline of prepare-brats (dictionary transforms).

load -> channel first -> (MSD: pick channels) -> check one grid, 3D, finite, non-empty ->
reorient to RAS -> (resample to the chosen spacing) -> check the input conventions (background 0,
skull-stripped, sequences covering one brain) -> brain mask from non-zero voxels -> (N4 bias-field
correction) -> robust percentile normalisation inside the brain -> crop/pad in-plane to
``image_size`` -> (axial slicing, and the check that the crop cut no brain, happen in prepare).

The custom steps follow MONAI's split: an array transform (``BrainPercentileScale``) and its
dictionary wrapper (``BrainPercentileScaled``).
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    LoadImage,
    MapTransform,
    Orientationd,
    ResizeWithPadOrCropd,
    Spacing,
    Spacingd,
    SpatialResample,
    Transform,
)

from mrtrans.data_prep.conventions import convention_problem, extent_problem
from mrtrans.data_prep.discovery import SEG, Subject
from mrtrans.errors import MrtransError

BRAIN = "brain"


class LoadVolumesd(MapTransform):
    """MONAI's ``LoadImage`` (channel first) per key, with errors that name the file.

    Data keep the file's own type (int16 for BraTS images), which halves the bytes that
    reorientation and padding move; normalisation converts to float32. A file shared by several
    keys (the MSD 4D image) is read once.
    """

    def __init__(self, keys: KeysCollection) -> None:
        super().__init__(keys)
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, reader="NibabelReader", dtype=None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        loaded: dict[str, Any] = {}
        for key in self.key_iterator(d):
            path = str(d[key])
            if path not in loaded:
                try:
                    loaded[path] = self.loader(path)
                except (OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
                    raise MrtransError(
                        f"{path}: cannot read ({type(exc).__name__}: {exc}); re-export or re-download it"
                    ) from exc
            d[key] = loaded[path]
        return d


def _plain(img: Any) -> torch.Tensor:
    """The tensor without MONAI's MetaTensor wrapper: elementwise math on a MetaTensor pays a
    per-operation dispatch cost that dominated prepare-brats' run time."""
    return img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)


def _like(result: torch.Tensor, img: Any) -> Any:
    """Wrap ``result`` with the metadata (affine, file name) of ``img``."""
    return MetaTensor(result, meta=dict(img.meta)) if isinstance(img, MetaTensor) else result


class BrainPercentileScale(Transform):
    """Clip an image to percentiles of its brain voxels and scale them linearly to [b_min, b_max].

    Voxels outside the brain are set to ``b_min``, so background is the same fixed value in every
    volume whatever the scanner's range.
    """

    def __init__(self, lower: float = 0.5, upper: float = 99.5, b_min: float = -1.0, b_max: float = 1.0) -> None:
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}")
        self.lower, self.upper, self.b_min, self.b_max = lower, upper, b_min, b_max

    def __call__(self, img: Any, brain: Any) -> Any:
        """Args: img (C, X, Y, Z); brain (1, X, Y, Z), non-zero inside. Returns float32 like img."""
        x = _plain(img).float().numpy()
        mask = np.broadcast_to(_plain(brain).numpy() != 0, x.shape)
        lo, hi = np.percentile(x[mask], [self.lower, self.upper])  # introselect, not a full sort
        scale = (self.b_max - self.b_min) / max(hi - lo, 1e-6)
        out = np.full(x.shape, self.b_min, np.float32)
        out[mask] = (np.clip(x[mask], lo, hi) - lo) * scale + self.b_min
        return _like(torch.from_numpy(out), img)


class BrainPercentileScaled(MapTransform):
    """Dictionary wrapper of :class:`BrainPercentileScale`; the brain mask is ``data[mask_key]``."""

    def __init__(self, keys: KeysCollection, mask_key: str = BRAIN, **kwargs: Any) -> None:
        super().__init__(keys)
        self.mask_key = mask_key
        self.scaler = BrainPercentileScale(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.scaler(d[key], d[self.mask_key])
        return d


class BrainMaskd(MapTransform):
    """Add ``data[BRAIN]``: voxels that are non-zero in any of ``keys`` (skull-stripped inputs)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = None
        for key in self.key_iterator(d):
            nz = _plain(d[key]) != 0
            mask = nz if mask is None else mask | nz
        d[BRAIN] = _like(mask.to(torch.uint8), d[self.keys[0]])
        return d


class SelectChanneld(MapTransform):
    """Replace each key's multi-channel image by one channel (the MSD 4D images)."""

    def __init__(self, channels: Mapping[str, int], allow_missing_keys: bool = True) -> None:
        super().__init__(list(channels), allow_missing_keys)
        self.channels = dict(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.shape[0] <= self.channels[key]:
                raise MrtransError(
                    f"{_path(img)}: expected a 4D image with channel {self.channels[key]} ({key}), got shape "
                    f"{tuple(img.shape)}"
                )
            d[key] = img[self.channels[key] : self.channels[key] + 1]
        return d


def _path(img: Any) -> str:
    meta = getattr(img, "meta", {}) or {}
    return str(meta.get("filename_or_obj", "<image>"))


class CheckVolumesd(MapTransform):
    """Refuse a subject whose volumes are not usable together.

    Each image must be one 3D channel, finite, not empty, and every key must share one grid
    (shape and affine). Raises :class:`MrtransError` naming the file.
    """

    def __init__(self, keys: KeysCollection, atol: float = 1e-3) -> None:
        super().__init__(keys)
        self.atol = atol

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref_key = self.keys[0]
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != 4 or img.shape[0] != 1:
                raise MrtransError(
                    f"{_path(img)}: expected a 3D volume, got shape "
                    f"{tuple(img.shape[1:]) if img.shape[0] == 1 else tuple(img.shape)} (4D file where 3D is expected?)"
                )
            if img.is_floating_point() and not torch.isfinite(_plain(img)).all():
                raise MrtransError(f"{_path(img)}: contains NaN or Inf values")
            if key != SEG and not bool(_plain(img).any()):
                raise MrtransError(f"{_path(img)}: volume is empty (all zeros)")
            ref = d[ref_key]
            if img.shape[1:] != ref.shape[1:] or not np.allclose(
                np.asarray(img.affine), np.asarray(ref.affine), atol=self.atol
            ):
                raise MrtransError(
                    f"{_path(img)}: grid {tuple(img.shape[1:])} does not match {_path(ref)} {tuple(ref.shape[1:])} "
                    f"(shape or affine differ); resample the subject's images onto one grid"
                )
        return d


def resample_brain(
    volume: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    pixdim: Sequence[float] | None = None,
    dst_affine: np.ndarray | None = None,
    spatial_shape: Sequence[int] | None = None,
    min_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a brain onto another grid without darkening its edge.

    Plain interpolation mixes the zero background into the brain's edge voxels, which shifts the brain's
    low percentiles (the normalisation) and dims the rim. Here the brain is interpolated as
    ``resample(volume * mask) / resample(mask)`` (normalised convolution, bilinear) and the new mask is
    where ``resample(mask) > min_weight`` (0.5: the nearest-neighbour mask; small: every voxel the brain
    reaches, for putting a result back onto a grid whose mask is known). The grid is MONAI ``Spacing(pixdim)``
    (a value <= 0 keeps that axis'
    spacing) or, with ``dst_affine`` and ``spatial_shape``, exactly that grid (``SpatialResample``).

    Returns:
        ``(volume, mask, affine)`` on the new grid: float32 (0 outside the mask), bool, float64 (4, 4).
    """
    src = torch.from_numpy(np.asarray(affine, dtype=np.float64))
    weight = torch.from_numpy(mask[None].astype(np.float32))
    pair = torch.cat([torch.from_numpy(volume[None].astype(np.float32)) * weight, weight])  # (2, X, Y, Z)
    if pixdim is not None:
        out = Spacing(pixdim=tuple(pixdim), mode="bilinear", padding_mode="zeros")(MetaTensor(pair, affine=src))
    else:
        out = SpatialResample(mode="bilinear", padding_mode="zeros")(
            MetaTensor(pair, affine=src),
            dst_affine=torch.from_numpy(np.asarray(dst_affine, dtype=np.float64)),
            spatial_size=tuple(spatial_shape),
        )
    num, den = out.as_tensor().numpy()
    new_mask = den > min_weight
    new_volume = np.zeros(num.shape, np.float32)
    new_volume[new_mask] = num[new_mask] / den[new_mask]
    return new_volume, new_mask, np.asarray(out.affine, dtype=np.float64)


class SpacingBraind(MapTransform):
    """Resample images (:func:`resample_brain`, brain = each image's non-zero voxels) and label maps
    (nearest neighbour, ``label_keys``) to ``pixdim`` (mm; a value <= 0 keeps that axis' spacing)."""

    def __init__(self, keys: KeysCollection, pixdim: Sequence[float], label_keys: Sequence[str] = ()) -> None:
        super().__init__(keys)
        self.pixdim = tuple(pixdim)
        self.labels = Spacingd(keys=list(label_keys), pixdim=self.pixdim, mode="nearest", padding_mode="zeros")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            volume = _plain(img)[0].float().numpy()
            new, _, new_affine = resample_brain(volume, volume != 0, np.asarray(img.affine), pixdim=self.pixdim)
            d[key] = MetaTensor(
                torch.from_numpy(new)[None],
                affine=torch.from_numpy(new_affine),
                meta={k: v for k, v in img.meta.items() if k not in ("affine", "spatial_shape")},
            )
        return self.labels(d)


class CheckConventionsd(MapTransform):
    """Refuse a subject whose images break mrtrans' input conventions or disagree on the brain's extent.

    Each image: background 0 at its minimum and a skull-stripped brain (:mod:`.conventions`; skipped with
    ``check_stripped=False``); together: no sequence lacks more than ``max_missing`` of another's brain.
    """

    def __init__(self, keys: KeysCollection, max_missing: float, check_stripped: bool = True) -> None:
        super().__init__(keys)
        self.max_missing, self.check_stripped = max_missing, check_stripped

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        masks = {}
        for key in self.key_iterator(d):
            volume = _plain(d[key])[0].numpy()
            if self.check_stripped:
                problem = convention_problem(volume, None)
                if problem:
                    raise MrtransError(f"{_path(d[key])}: {problem} (prepare key allow_unstripped uses it anyway)")
            masks[str(key)] = volume != 0
        problem = extent_problem(masks, self.max_missing)
        if problem:
            raise MrtransError(problem)
        return d


class N4BiasFieldd(MapTransform):
    """N4 bias-field correction (SimpleITK) of each key inside ``data[mask_key]``.

    The field is fitted on a copy shrunk by ``shrink`` (SimpleITK's example recipe) and divided out at full
    resolution; voxel sizes come from the MetaTensor's affine. Outside the mask the image is left 0.
    """

    def __init__(self, keys: KeysCollection, mask_key: str = BRAIN, shrink: int = 4, iterations: int = 50) -> None:
        super().__init__(keys)
        self.mask_key, self.shrink, self.iterations = mask_key, shrink, iterations

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = _plain(d[self.mask_key])[0].numpy().astype(np.uint8)
        for key in self.key_iterator(d):
            img = d[key]
            spacing = (
                np.linalg.norm(np.asarray(img.affine)[:3, :3], axis=0) if isinstance(img, MetaTensor) else np.ones(3)
            )
            corrected = n4_correct(
                _plain(img)[0].float().numpy(), mask, tuple(float(v) for v in spacing), self.shrink, self.iterations
            )
            d[key] = _like(torch.from_numpy(corrected)[None], img)
        return d


def n4_correct(
    volume: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float], shrink: int = 4, iterations: int = 50
) -> np.ndarray:
    """``volume`` (X, Y, Z) divided by its N4 bias field fitted inside ``mask``; float32, 0 outside the mask."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(
        np.ascontiguousarray(volume.transpose(2, 1, 0), dtype=np.float32)
    )  # sitk wants (Z, Y, X)
    image.SetSpacing(spacing)
    brain = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.uint8))
    brain.CopyInformation(image)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([iterations] * 4)
    factor = [shrink] * 3
    corrector.Execute(sitk.Shrink(image, factor), sitk.Shrink(brain, factor))
    log_field = corrector.GetLogBiasFieldAsImage(image)
    out = sitk.GetArrayFromImage(image / sitk.Exp(log_field)).transpose(2, 1, 0)
    out[mask == 0] = 0.0
    return np.ascontiguousarray(out, dtype=np.float32)


class CountBraind(MapTransform):
    """Record the brain's voxel count (``data[key]``) before the in-plane crop, to detect a cut brain."""

    def __init__(self, key: str = "brain_voxels") -> None:
        super().__init__([BRAIN])
        self.key = key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.key] = int(_plain(d[BRAIN]).sum())
        return d


def subject_pipeline(
    subject: Subject,
    modalities: Sequence[str],
    image_size: int,
    lower: float,
    upper: float,
    b_min: float,
    b_max: float,
    pixdim: Sequence[float] | None = None,
    max_extent_mismatch: float = 1.0,
    check_stripped: bool = False,
    bias_field_correction: bool = False,
) -> Compose:
    """The MONAI pipeline for one subject; call it on :func:`subject_data`.

    ``pixdim`` (mm, RAS x, y, z; <= 0 keeps a dimension's own): resample there first (images with
    :func:`resample_brain`, seg nearest neighbour).
    """
    keys = [*modalities, SEG]
    steps: list[Any] = [LoadVolumesd(keys=keys)]
    if subject.channels:
        steps.append(SelectChanneld({m: subject.channels[m] for m in modalities}))
    steps += [
        CheckVolumesd(keys=keys),
        Orientationd(keys=keys, axcodes="RAS", labels=None),
    ]
    if pixdim is not None:
        steps.append(SpacingBraind(keys=list(modalities), pixdim=pixdim, label_keys=[SEG]))
    steps += [
        CheckConventionsd(keys=list(modalities), max_missing=max_extent_mismatch, check_stripped=check_stripped),
        BrainMaskd(keys=list(modalities)),
    ]
    if bias_field_correction:
        steps.append(N4BiasFieldd(keys=list(modalities)))
    steps += [
        CountBraind(),
        BrainPercentileScaled(keys=list(modalities), lower=lower, upper=upper, b_min=b_min, b_max=b_max),
        ResizeWithPadOrCropd(
            keys=list(modalities), spatial_size=(image_size, image_size, -1), mode="constant", value=b_min
        ),
        ResizeWithPadOrCropd(keys=[SEG, BRAIN], spatial_size=(image_size, image_size, -1), mode="constant", value=0),
    ]
    return Compose(steps, map_items=False)


def subject_data(subject: Subject, modalities: Sequence[str]) -> dict[str, str]:
    """The input dict of :func:`subject_pipeline`: key -> file path."""
    missing = [m for m in modalities if m not in subject.files]
    if missing:
        raise MrtransError(
            f"{subject.subject_id}: missing modality {', '.join(missing)} (found: "
            f"{', '.join(subject.modalities()) or 'none'})"
        )
    return {k: str(subject.files[k]) for k in [*modalities, SEG]}
