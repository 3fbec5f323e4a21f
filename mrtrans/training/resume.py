"""The resume policy: which config a resumed run keeps, and what a resume may change.

A run resumes with its own resolved ``config.yaml`` (or the one its checkpoint carries); keys its mrtrans
version did not have take the value that version used. A resume may change where and how fast it runs
and how long it lasts (``RESUME_MAY_CHANGE``), nothing that defines the method.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mrtrans.config import SmoothNormalization, TrainConfig, from_dict, read_yaml, set_dotted, to_dict

# Keys added after a run was made, with the value such a run used. A resolved config.yaml lists every
# key of its version, so a missing key means the run predates it (mrtrans < 0.2).
LEGACY_TRAIN_VALUES = {"loss.smooth_normalization": SmoothNormalization.all_pairs.value}


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The resolved ``config.yaml`` of an existing run, then dotted overrides.

    Keys the run's mrtrans version did not have take the value that version used (``LEGACY_TRAIN_VALUES``),
    so resuming an older run never switches its method silently.
    """
    return run_config_from_tree(read_yaml(Path(path)), overrides)


def run_config_from_tree(tree: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """:func:`load_run_config` for a config already read (e.g. the one a checkpoint carries)."""
    tree = copy.deepcopy(tree)
    for dotted, value in LEGACY_TRAIN_VALUES.items():
        section, leaf = dotted.split(".")
        if isinstance(tree.get(section), dict) and leaf not in tree[section]:
            tree[section][leaf] = value
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    return from_dict(TrainConfig, tree)


# What a resumed run may change: where and how fast it runs, how often it writes, how long it lasts.
# Everything else (method, losses, architecture, data handling, optimiser, seed) must match the run.
RESUME_MAY_CHANGE = (
    "run.device",
    "run.amp",
    "run.channels_last",
    "run.compile",
    "run.max_steps",
    "run.log_every",
    "run.sample_every",
    "run.checkpoint_every",
    "run.checkpoint_seconds",
    "run.validate_every",
    "run.keep_steps",
    "optim.epochs_constant",
    "optim.epochs_decay",
)


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
