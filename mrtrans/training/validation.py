"""Validation during training and the choice of ``best.pt``.

Every ``run.validate_every`` steps (default: at each checkpoint) the run's translators translate the prepared
set's validation slices (patients held out of training and test, ``prepare-brats --set validation_fraction=``)
and are scored with the brain protocol of ``mrtrans evaluate`` (per-image brain normalisation, brain region:
:func:`mrtrans.evaluation.metrics.brain_metrics`). ``best.pt`` is the checkpoint of the step with the lowest
MAE (or highest SSIM, ``run.best_metric``), mean over the directions the run translates. The test slices are
never read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mrtrans.config import ValidationMetric
from mrtrans.data_prep.slices import PreparedSlices, to_tensor
from mrtrans.domain import Direction
from mrtrans.evaluation.metrics import brain_metrics

HIGHER_IS_BETTER = {ValidationMetric.mae: False, ValidationMetric.ssim: True}


@dataclass(frozen=True)
class ValidationSet:
    """The validation slices of both sequences, their brain masks and tumor masks (paired, by slice)."""

    images: dict[str, np.ndarray]
    brain: np.ndarray
    tumor: np.ndarray

    @classmethod
    def read(cls, dataset: PreparedSlices) -> ValidationSet | None:
        if not dataset.has_validation:
            return None
        images = {m: np.asarray(dataset.validation(m), np.float32) for m in dataset.modalities}
        return cls(images, np.asarray(dataset.validation("brain")) > 0, np.asarray(dataset.validation("seg")) > 0)


def rule(metric: ValidationMetric) -> str:
    """The selection rule in words (recorded with best.pt and in reports)."""
    extreme = "highest" if HIGHER_IS_BETTER[metric] else "lowest"
    return f"{extreme} validation brain {metric.value.upper()}, mean over the run's directions"


@torch.no_grad()
def validation_scores(
    translators: dict[str, torch.nn.Module], data: ValidationSet, device: torch.device, batch_size: int = 16
) -> dict[str, float]:
    """``val_<metric>_<direction>`` (brain MAE and SSIM, mean over slices) per direction, and their means."""

    out: dict[str, float] = {}
    for name, generator in translators.items():
        direction = Direction.parse(name)
        src = data.images[direction.source]
        was_training = generator.training
        generator.eval()
        pred = np.concatenate(
            [
                generator(to_tensor(src[i : i + batch_size]).to(device)).float().cpu().numpy()[:, 0]
                for i in range(0, len(src), batch_size)
            ]
        )
        generator.train(was_training)
        scores = brain_metrics(pred, data.images[direction.target], data.brain, data.tumor)["brain"]
        for metric in ValidationMetric:
            out[f"val_{metric.value}_{name}"] = float(np.nanmean(scores[metric.value]))
    for metric in ValidationMetric:
        values = [out[f"val_{metric.value}_{name}"] for name in translators]
        out[f"val_{metric.value}"] = float(np.mean(values))
    return out


def improves(value: float, best: dict[str, Any] | None, metric: ValidationMetric) -> bool:
    """Whether ``value`` beats the best so far (a NaN never does; the first finite value always does)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best["value"] if HIGHER_IS_BETTER[metric] else value < best["value"]
