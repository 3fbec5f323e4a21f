"""What scoring one (run, direction) produces; shared by the scorer, the tables and the figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrtrans.domain import Direction


@dataclass
class Scored:
    """Per-slice scores of one (run, direction), and what the figures need.

    ``consistency`` has one row per slice (tumor pixels; the detector's additions when the audit ran),
    ``lesions`` one row per reference lesion (its presence outcome, :mod:`mrtrans.evaluation.presence`).
    """

    per_slice: pd.DataFrame
    consistency: pd.DataFrame
    source: np.ndarray
    pred: np.ndarray
    real: np.ndarray
    seg: np.ndarray
    lesions: pd.DataFrame | None = None


def slice_frame(run: str, method: str, direction: Direction, slices: pd.DataFrame) -> pd.DataFrame:
    """One row per slice: run, method, direction, subject, slice_index, label."""
    frame = slices[["subject", "slice_index", "label"]].copy().reset_index(drop=True)
    frame.insert(0, "direction", direction.name)
    frame.insert(0, "method", method)
    frame.insert(0, "run", run)
    return frame
