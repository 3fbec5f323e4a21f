"""The normalisation record: how prepare-brats made a slice set's values and grid.

prepare.json holds it as ``normalization``, every model checkpoint carries a copy, translate's sidecars and
export's preprocessing.json repeat it. On disk it stays a plain mapping (JSON, ``torch.load(weights_only=True)``);
in memory it is this typed record, read by one function (:meth:`Normalization.from_record`) that also migrates
the records of earlier versions, so no other module reads the mapping's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mrtrans.errors import MrtransError

METHOD = "brain percentile clip, linear scale"


@dataclass(frozen=True)
class Normalization:
    """Brain intensities clipped to their ``lower_percentile``..``upper_percentile`` percentiles and scaled
    linearly to ``range`` (background at the low end), in-plane field ``image_size``, voxel size ``spacing``."""

    lower_percentile: float
    upper_percentile: float
    range: tuple[float, float]
    image_size: int
    # mm, RAS x, y, z (z None: each subject's own); None: not recorded (models of mrtrans < 0.2)
    spacing: tuple[float | None, ...] | None = None
    bias_field: str | None = None  # "n4": prepare-brats --bias-field-correction corrected the images first
    method: str = METHOD

    @property
    def low(self) -> float:
        """The range's low end: the background's value."""
        return self.range[0]

    @property
    def in_plane_spacing(self) -> tuple[float, float] | None:
        """(x, y) in mm, None when not recorded."""
        return None if self.spacing is None else (float(self.spacing[0]), float(self.spacing[1]))  # type: ignore[arg-type]

    @classmethod
    def from_record(cls, record: Any, where: str = "normalization") -> Normalization:
        """The record as written (prepare.json, a checkpoint), of this version or an earlier one.

        Records of mrtrans < 0.2 lack ``spacing`` and ``bias_field`` (none was applied); nothing else differs.

        Raises:
            MrtransError: a key missing or unusable, naming ``where`` (e.g. the file it came from).
        """
        try:
            if not isinstance(record, Mapping):
                raise TypeError(f"expected a mapping, got {type(record).__name__}")
            lo, hi = (float(v) for v in record["range"])
            spacing = record.get("spacing")
            norm = cls(
                lower_percentile=float(record["lower_percentile"]),
                upper_percentile=float(record["upper_percentile"]),
                range=(lo, hi),
                image_size=int(record["image_size"]),
                spacing=None if spacing is None else tuple(None if v is None else float(v) for v in spacing),
                bias_field=record.get("bias_field"),
                method=str(record.get("method", METHOD)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MrtransError(f"{where}: 'normalization' is incomplete ({type(exc).__name__}: {exc})") from None
        if norm.image_size < 16 or not lo < hi:
            raise MrtransError(f"{where}: image_size {norm.image_size} or range [{lo}, {hi}] is invalid")
        return norm

    def to_record(self) -> dict[str, Any]:
        """The plain mapping written to prepare.json and checkpoints (with the constant descriptive keys)."""
        return {
            "method": self.method,
            "lower_percentile": self.lower_percentile,
            "upper_percentile": self.upper_percentile,
            "range": list(self.range),
            "background": self.low,
            "image_size": self.image_size,
            "spacing": None if self.spacing is None else list(self.spacing),
            "bias_field": self.bias_field,
            "orientation": "RAS",
            "array_order": "[slice, x, y]",
            "dtype": "float16",
        }
