"""MONAI transforms that translate a sequence inside a pipeline (e.g. supply a missing T1 from FLAIR).

``Translate`` is the array transform, ``Translated`` its dictionary wrapper (MONAI's convention)::

    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from mrtrans.monai import Translated

    pipeline = Compose([
        LoadImaged(keys=["flair", "t1"], allow_missing_keys=True),
        EnsureChannelFirstd(keys=["flair", "t1"], allow_missing_keys=True),
        Translated(keys="flair", model="runs/flair2t1", output_key="t1", only_if_missing=True),
    ])

The output keeps the source's grid and metadata (affine, spacing, file name) and adds
``mrtrans_translation`` to its ``meta`` (what made it). Intensities are the model's normalised
target-sequence range, [0, 1], zero outside the brain -- not scanner units.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.config import KeysCollection
from monai.data import MetaTensor, NibabelWriter
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, get_equivalent_dtype

from mrtrans.config import TranslatorConfig, takes
from mrtrans.errors import MrtransError
from mrtrans.inference.translate import Translator, load_translator

__all__ = ["NiftiWriter", "Translate", "Translated"]


class Translate(Transform):
    """Translate one volume: MetaTensor / tensor / array, (X, Y, Z) or (1, X, Y, Z), on its own grid.

    Args:
        model: run folder, checkpoint, or a loaded :class:`mrtrans.Translator` (shared between transforms).
        direction, device, batch_size, precision, allow_unstripped, checkpoint: the keys of
            :class:`mrtrans.config.TranslatorConfig`, as ``mrtrans translate`` takes them (listed below).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    @takes(TranslatorConfig)
    def __init__(self, model: str | Path | Translator, config: TranslatorConfig = TranslatorConfig()) -> None:
        self.translator = load_translator(model, config=config)

    def __call__(self, img: Any, affine: Any = None, mask: Any = None) -> Any:
        """The translation of ``img``; a plain tensor or array needs ``affine`` (a MetaTensor has its own)."""
        out = self.translator(img, affine=affine, mask=mask)
        if isinstance(out, MetaTensor):
            out.meta["mrtrans_translation"] = self.translator.description(str(out.meta.get("filename_or_obj", "")))
        return out


class Translated(MapTransform):
    """Dictionary wrapper of :class:`Translate`: ``data[output_key] = Translate(data[key])``.

    Args:
        keys: source key(s), e.g. ``"flair"``.
        model, and the keys of :class:`mrtrans.config.TranslatorConfig` (direction, device, batch_size, precision,
            allow_unstripped, checkpoint): as :class:`Translate`.
        output_key: where each translation goes, one per key; default ``"<key>_<target>"`` (e.g. ``flair_t1``).
        mask_key: key of a brain mask on the source's grid; default the source's non-zero voxels.
        only_if_missing: leave a present ``output_key`` alone (translate only for subjects without it).
        meta_key_postfix: for a plain array at ``key``, its affine is read from ``data[f"{key}_{postfix}"]``.
        allow_missing_keys: skip a missing source key instead of raising.
    """

    backend = Translate.backend

    @takes(TranslatorConfig)
    def __init__(
        self,
        keys: KeysCollection,
        model: str | Path | Translator,
        output_key: str | Sequence[str] | None = None,
        config: TranslatorConfig = TranslatorConfig(),
        mask_key: str | None = None,
        only_if_missing: bool = False,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.translate = Translate(model, config=config)
        target = self.translate.translator.direction.target
        if output_key is None:
            self.output_keys = [f"{key}_{target}" for key in self.keys]
        else:
            self.output_keys = [output_key] if isinstance(output_key, str) else list(output_key)
        if len(self.output_keys) != len(self.keys):
            raise MrtransError(
                f"Translated: {len(self.keys)} keys but {len(self.output_keys)} output keys; give one output key per "
                "key"
            )
        self.mask_key = mask_key
        self.only_if_missing = only_if_missing
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [str(k) for k in self.keys if k not in d]
        if missing and not self.allow_missing_keys:
            raise MrtransError(
                f"Translated: key {', '.join(map(repr, missing))} is not in the data (keys: "
                f"{', '.join(map(str, d)) or 'none'}); load it first, or pass allow_missing_keys=True"
            )
        outputs = dict(zip(self.keys, self.output_keys))
        for key in self.key_iterator(d):
            out_key = outputs[key]
            if self.only_if_missing and d.get(out_key) is not None:
                continue
            img = d[key]
            affine = None
            if self.mask_key is not None and self.mask_key not in d:
                raise MrtransError(
                    f"Translated: mask_key {self.mask_key!r} is not in the data (keys: {', '.join(map(str, d))})"
                )
            if not isinstance(img, MetaTensor):
                meta = d.get(f"{key}_{self.meta_key_postfix}") or {}
                affine = meta.get("affine")
                if affine is None:
                    raise MrtransError(
                        f"Translated: data[{key!r}] is a plain {type(img).__name__} and data has no "
                        f"'{key}_{self.meta_key_postfix}' with an affine; load it with LoadImaged"
                    )
            mask = d[self.mask_key] if self.mask_key is not None else None
            d[out_key] = self.translate(img, affine=affine, mask=mask)
        return d


class NiftiWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` that also writes the source's units (``xyzt_units`` of the loaded image's metadata,
    which ``NibabelWriter`` drops), so a translation written by ``SaveImage(writer=NiftiWriter)`` says millimetres
    where its source did. The exported bundle's ``SaveImage`` uses it."""

    units: Any = None

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options: Any) -> None:
        self.units = None if meta_dict is None else meta_dict.get("xyzt_units")
        super().set_metadata(meta_dict, resample, **options)

    def write(self, filename: Any, verbose: bool = False, **obj_kwargs: Any) -> None:
        if self.units is not None and "header" not in obj_kwargs:
            header = nib.Nifti1Header()
            header["xyzt_units"] = int(np.asarray(self.units))
            header.set_data_dtype(get_equivalent_dtype(self.output_dtype or self.data_obj.dtype, np.ndarray))
            obj_kwargs["header"] = header
        super().write(filename, verbose=verbose, **obj_kwargs)
