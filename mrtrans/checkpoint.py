"""Checkpoints: plain tensors and plain values only, written atomically, loaded with weights_only.

A checkpoint carries everything needed to use it without the flags of the run: direction, model
kind, the resolved config (so the generators can be rebuilt), the normalisation prepare-brats
used, versions and git commit. Training checkpoints also carry optimisers, schedulers, pools, RNG
states and the step, so a resumed run continues exactly.

Loading uses ``torch.load(weights_only=True)``: a file whose pickle asks to build any object
other than tensors and plain containers (i.e. a file that could run code) is refused.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mrtrans.config import Method, TrainConfig, train_config_from_record
from mrtrans.data_prep.normalization import Normalization
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path

FORMAT = "mrtrans-checkpoint"
FORMAT_VERSION = 1


def model_payload(
    kind: str,
    source: str,
    target: str,
    config: dict[str, Any],
    normalization: Normalization | dict[str, Any],
    models: dict[str, Any],
    method: str | None = None,
    translators: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The fields ``mrtrans translate`` and ``evaluate`` need to rebuild and use a model.

    Args:
        kind: the run's name (``cyclegan``, ``harmonicgan-histogram``... : ``TrainingMethod.kind``).
        source, target: the trained direction's modalities.
        config: the resolved TrainConfig as a dict (``config.to_dict``).
        normalization: prepare-brats' normalisation, typed or as its record (checked; written as the record).
        models: state dicts, at least those ``translators`` names.
        method: the training step (``mrtrans.methods``); default the config's.
        translators: direction name -> key in ``models`` of every direction the model translates; default
            both directions (``gen_s2t``, ``gen_t2s``).
    """
    if translators is None:
        translators = {f"{source}2{target}": "gen_s2t", f"{target}2{source}": "gen_t2s"}
    return {
        "kind": kind,
        "method": method or str(config.get("method", "cycle")),
        "direction": {"source": source, "target": target},
        "translators": dict(translators),
        "config": config,
        "normalization": (
            normalization if isinstance(normalization, Normalization) else Normalization.from_record(normalization)
        ).to_record(),
        "models": models,
    }


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (plus format fields) atomically with ``torch.save``."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


@dataclass(frozen=True)
class ModelRecord:
    """What a translation model's checkpoint says of the model, typed and checked (:func:`model_record`); its weights
    stay in the checkpoint's ``models``."""

    kind: str  # the run's name: cyclegan, harmonicgan-histogram... (TrainingMethod.kind)
    method: str  # the training step (mrtrans.methods)
    direction: Direction  # the trained direction
    translators: dict[str, str]  # direction name -> key in ``models`` of every direction it translates
    config: TrainConfig
    normalization: Normalization
    paired_training: bool = False  # trained on paired slices: reports show it as the upper bound
    data: dict[str, Any] = field(default_factory=dict)  # the training data's record (train_subjects...)


def model_record(ckpt: dict[str, Any], path: str | Path) -> ModelRecord:
    """The typed record of a translation model's checkpoint, every field that rebuilding and using the model needs
    checked (see :func:`model_payload`).

    Raises:
        MrtransError: a field missing or unusable (a hand-made or damaged checkpoint), naming it.
    """

    def bad(what: str) -> MrtransError:
        return MrtransError(
            f"{path}: {what}; not a usable mrtrans model checkpoint (use one written by `mrtrans train`)"
        )

    for key in ("kind", "direction", "config", "normalization", "models"):
        if key not in ckpt:
            raise bad(f"no '{key}' field")
    direction, models = ckpt["direction"], ckpt["models"]
    if not isinstance(direction, dict) or not all(isinstance(direction.get(k), str) for k in ("source", "target")):
        raise bad(f"'direction' is {direction!r}, expected source and target modality names")
    if not isinstance(models, dict):
        raise bad("'models' is not a mapping of network names to weights")
    if "translators" not in ckpt:
        raise bad("no 'translators' field")
    try:
        translators = checkpoint_translators(ckpt)
    except (TypeError, ValueError) as exc:
        raise bad(f"'translators' is unusable ({exc})") from None
    if not translators or not all(isinstance(k, str) and v in models for k, v in translators.items()):
        raise bad(f"'models' lacks the translators it lists ({translators})")
    try:
        cfg = train_config_from_record(ckpt["config"])
    except MrtransError as exc:
        raise bad(f"its config is invalid ({exc})") from None
    try:
        norm = Normalization.from_record(ckpt["normalization"], str(path))
    except MrtransError as exc:
        raise bad(str(exc).removeprefix(f"{path}: ")) from None
    factor = cfg.generator.size_factor
    if norm.image_size % factor:
        raise bad(f"image_size {norm.image_size} (must be >= 16 and a multiple of {factor}) is invalid")
    return ModelRecord(
        kind=str(ckpt["kind"]),
        method=str(ckpt.get("method", cfg.method.value)),
        direction=Direction(direction["source"], direction["target"]),
        translators=translators,
        config=cfg,
        normalization=norm,
        paired_training=bool(ckpt.get("paired_training")),
        data=dict(ckpt.get("data") or {}),
    )


CHOICES = ("last", "best")  # a run folder's checkpoints/last.pt and checkpoints/best.pt; also step-N (kept steps)


def checkpoint_file(which: str) -> str:
    """``last`` -> ``last.pt``, ``best`` -> ``best.pt``, ``step-1280`` -> ``step_0001280.pt`` (``run.keep_steps``).

    Raises:
        MrtransError: another word.
    """
    if which in CHOICES:
        return f"{which}.pt"
    kept = re.fullmatch(r"step-(\d+)", which)
    if kept is None:
        raise MrtransError(f"--checkpoint {which!r}: use last, best or step-N (a step the run kept)")
    return f"step_{int(kept.group(1)):07d}.pt"


def resolve_checkpoint(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file, or a run folder's ``checkpoints/<which>.pt`` (``last``, ``best`` or ``step-N``).

    Raises:
        MrtransError: nothing there, or no best.pt (a run trained without validation slices), or no such kept step.
    """
    name = checkpoint_file(which)
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / name
        if not candidate.is_file():
            if which == "best":
                raise MrtransError(
                    f"{path}: run folder has no checkpoints/best.pt (it was trained without validation slices: "
                    "prepare with --set validation_fraction=0.1 and train again); use --checkpoint last"
                )
            if which != "last":
                raise MrtransError(
                    f"{path}: run folder has no checkpoints/{name} (it keeps the steps in run.keep_steps); use "
                    "--checkpoint last or best"
                )
            raise MrtransError(f"{path}: run folder has no checkpoints/last.pt; train first or pass a checkpoint file")
        return candidate
    if not path.is_file():
        raise MrtransError(f"{path}: checkpoint or run folder not found")
    return path


def selected_step(ckpt: dict[str, Any]) -> int | None:
    """The training step a checkpoint holds (None when it does not say)."""
    step = (ckpt.get("selection") or {}).get("step", (ckpt.get("state") or {}).get("global_step"))
    return None if step is None else int(step)


def selection_text(ckpt: dict[str, Any], path: str | Path) -> str:
    """Which file a report used and by what rule, e.g. ``best.pt (step 400: lowest validation brain MAE ...)``."""
    step = selected_step(ckpt)
    rule = (ckpt.get("selection") or {}).get("rule", "last step")
    return f"{Path(path).name} (step {'?' if step is None else step}: {rule})"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", which: str = "last") -> dict[str, Any]:
    """Load a checkpoint safely (a run folder: its ``which`` checkpoint, ``last`` or ``best``).

    Raises:
        MrtransError: unreadable, refused (a pickle payload beyond plain tensors), or not an mrtrans
            checkpoint.
    """
    path = resolve_checkpoint(path, which)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MrtransError(
            f"{path}: refused to load: the file contains objects other than tensors and plain values "
            f"(it could run code). Only load checkpoints written by mrtrans from a source you trust"
        ) from exc
    except Exception as exc:  # a corrupt file fails in many ways (struct, zip, EOF...); always re-raised
        raise MrtransError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MrtransError(f"{path}: not an mrtrans checkpoint (no '{FORMAT}' format field)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise MrtransError(f"{path}: written by a newer mrtrans (format {payload['format_version']}); upgrade mrtrans")
    return migrate_checkpoint(payload)


# Network keys of the two directions in a checkpoint's ``models`` (a one-direction model has one of them).
FORWARD, BACKWARD = "gen_s2t", "gen_t2s"


def checkpoint_translators(ckpt: dict[str, Any]) -> dict[str, str]:
    """Direction name -> models key of every direction a checkpoint can translate."""
    return dict(ckpt["translators"])


def unavailable_direction(ckpt: dict[str, Any], wanted: Direction, source: object) -> MrtransError:
    """The one-line refusal of a direction the checkpoint does not translate."""
    can = sorted(checkpoint_translators(ckpt))
    trained = Direction(ckpt["direction"]["source"], ckpt["direction"]["target"])
    hint = (
        f"train a {wanted.name} model (mrtrans train {wanted.name} ...)"
        if {wanted.source, wanted.target} == {trained.source, trained.target}
        else "use a model of those sequences"
    )
    what = f"{source}: this {ckpt.get('kind', '')} model translates {' and '.join(can)}"
    return MrtransError(f"{what}; it cannot do {wanted.name} - {hint}")


# What checkpoints of mrtrans < 0.4 (no ``translators`` field) were called; anything else without the field is
# another kind of file (e.g. the audit's detector).
LEGACY_KINDS = (
    "cyclegan",
    "harmonicgan-histogram",
    "harmonicgan-vgg",
    "unit",
    "discogan",
    "distancegan",
    "distancegan-cycle",
)


def migrate_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A loaded checkpoint in today's format: the one place checkpoints of earlier versions are brought up to date,
    so the rest of the code reads only the current fields (the config and the normalisation record have their own
    readers: :func:`mrtrans.config.train_config_from_record`, :meth:`Normalization.from_record`).

    mrtrans < 0.4 wrote no ``translators`` (every model then held both generators, ``gen_s2t`` and ``gen_t2s``)
    and no ``method`` (the config's, whose ``harmonicgan`` is today's ``cycle``).
    """
    if "translators" not in payload and payload.get("kind") in LEGACY_KINDS and "direction" in payload:
        trained = Direction(payload["direction"]["source"], payload["direction"]["target"])
        payload["translators"] = {trained.name: FORWARD, trained.reversed().name: BACKWARD}
    if "translators" in payload and "method" not in payload and isinstance(payload.get("config"), dict):
        payload["method"] = Method(payload["config"].get("method", "cycle")).value
    return payload


def is_translation_checkpoint(ckpt: dict[str, Any]) -> bool:
    """Whether a loaded mrtrans checkpoint holds a translation model (of ``mrtrans train``)."""
    return "translators" in ckpt
