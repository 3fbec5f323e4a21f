"""The resume policy: which config a resumed run keeps, and what a resume may change.

A run resumes with its own resolved ``config.yaml`` (or the one its checkpoint carries); keys its mrtrans
version did not have take the value that version used. A resume may change where and how fast it runs
and how long it lasts (``RESUME_MAY_CHANGE``), nothing that defines the method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrtrans.config import RESUMABLE, TrainConfig, keys_marked, read_yaml, to_dict, train_config_from_record


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The resolved ``config.yaml`` of an existing run, migrated to today's schema
    (:func:`mrtrans.config.train_config_from_record`), then dotted overrides: resuming an older run never switches
    its method silently."""
    return train_config_from_record(read_yaml(Path(path)), overrides)


# What a resumed run may change: where and how fast it runs, how often it writes, how long it lasts - the keys whose
# field metadata says so (mrtrans.config.RESUMABLE). Everything else (method, losses, architecture, data handling,
# optimiser, seed) must match the run.
RESUME_MAY_CHANGE = keys_marked(TrainConfig, *RESUMABLE)


def flat_dict(cfg: Any) -> dict[str, Any]:
    """``{"loss.lambda_smooth": 5.0, ...}``: a config as dotted keys and plain values."""

    def walk(node: Any, prefix: str) -> dict[str, Any]:
        if isinstance(node, dict):
            return {k: v for key, value in node.items() for k, v in walk(value, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): node}

    return walk(to_dict(cfg), "")


def resume_differences(run: TrainConfig, asked: TrainConfig) -> list[str]:
    """``key: run value -> asked value`` for every key a resume may not change."""
    a, b = flat_dict(run), flat_dict(asked)
    return [
        f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if k not in RESUME_MAY_CHANGE and a.get(k) != b.get(k)
    ]
