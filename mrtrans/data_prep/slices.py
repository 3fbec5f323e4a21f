"""Read a folder written by ``mrtrans prepare-brats``: the one reader of prepared slice sets.

Arrays are memory-mapped, so opening a prepared set costs nothing and training reads only the
slices of each batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mrtrans.data_prep.normalization import Normalization
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError


class PreparedSlices:
    """A prepared slice set on disk.

    Args:
        folder: output folder of prepare-brats.

    Raises:
        MrtransError: not a prepared folder, or files missing.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "prepare.json"
        if not meta_path.is_file():
            raise MrtransError(
                f"{self.folder}: not a prepared dataset (no prepare.json); run `mrtrans prepare-brats` first"
            )
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
            self.modalities = (str(self.meta["modalities"]["source"]), str(self.meta["modalities"]["target"]))
            record = self.meta["normalization"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MrtransError(
                f"{meta_path}: broken ({type(exc).__name__}: {exc}); this file is written by prepare-brats, prepare "
                "the dataset again"
            ) from None
        try:
            self.normalization = Normalization.from_record(record, str(meta_path))
        except MrtransError as exc:
            raise MrtransError(f"{exc}; prepare the dataset again") from None
        self.image_size = self.normalization.image_size

    def _load(self, relative: str) -> np.ndarray:
        path = self.folder / relative
        if not path.is_file():
            raise MrtransError(f"{path}: missing from the prepared dataset; prepare it again")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # truncated, pickled (object) or not .npy at all
            raise MrtransError(
                f"{path}: cannot read ({type(exc).__name__}: {exc}); prepare the dataset again"
            ) from None
        size = self.image_size
        if array.ndim != 3 or array.shape[1:] != (size, size):
            raise MrtransError(f"{path}: shape {array.shape}, expected (N, {size}, {size}); prepare the dataset again")
        return array

    def check_direction(self, direction: Direction) -> None:
        if {direction.source, direction.target} != set(self.modalities):
            raise MrtransError(
                f"{self.folder}: prepared for {'/'.join(self.modalities)}, cannot serve {direction.name}; "
                f"prepare with --modalities {direction.source},{direction.target}"
            )

    def train(self, modality: str) -> np.ndarray:
        """(N, S, S) float16 training slices of one domain (unpaired)."""
        return self._load(f"train/{modality}.npy")

    def train_seg(self, modality: str) -> np.ndarray:
        """(N, S, S) uint8 seg of the training slices of ``modality``."""
        return self._load(f"train/{modality}_seg.npy")

    def test(self, key: str) -> np.ndarray:
        """(M, S, S) paired test arrays: a modality, ``seg`` or ``brain``. Never read by training."""
        return self._load(f"test/{key}.npy")

    def train_paired(self, key: str) -> np.ndarray:
        """(N, S, S) paired training arrays of the training patients (a modality, ``seg`` or ``brain``).

        Raises:
            MrtransError: the set was prepared without them.
        """
        self.require_paired()
        return self._load(f"train_paired/{key}.npy")

    def require_paired(self) -> None:
        """Refuse a set without paired training slices (before a paired method's run folder exists).

        Raises:
            MrtransError: the set was prepared without them.
        """
        if not (self.folder / "train_paired").is_dir():
            raise MrtransError(
                f"{self.folder}: has no paired training slices, which a paired method (pix2pix) trains on; prepare "
                "with --set paired_train_slices=N (e.g. 1400)"
            )

    @property
    def has_validation(self) -> bool:
        """Whether the set holds validation patients' slices (prepared with validation_fraction > 0)."""
        return (self.folder / "val").is_dir()

    def validation(self, key: str) -> np.ndarray:
        """(V, S, S) paired validation arrays of the validation patients: a modality, ``seg`` or ``brain``."""
        return self._load(f"val/{key}.npy")

    def subjects(self, split: str) -> list[str]:
        """The patients of a split (``train``, ``val``, ``test``), sorted."""
        manifest = self.manifest()
        return sorted(manifest.loc[manifest["split"] == split, "subject"].astype(str).unique())

    def manifest(self) -> pd.DataFrame:
        path = self.folder / "manifest.csv"
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:  # missing, empty or garbled (pandas' errors are ValueErrors)
            raise MrtransError(
                f"{path}: cannot read ({type(exc).__name__}: {exc}); prepare the dataset again"
            ) from None
        missing = {"subject", "split", "slice_index", "label", "array_index"} - set(frame.columns)
        if missing:
            raise MrtransError(f"{path}: columns {', '.join(sorted(missing))} missing; prepare the dataset again")
        return frame


def to_tensor(slices: np.ndarray) -> torch.Tensor:
    """(B, S, S) float16 array -> (B, 1, S, S) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32)).unsqueeze(1)
