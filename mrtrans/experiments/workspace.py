"""The folder an experiment works in: claimed once, logged by stage, resumable.

A resumable experiment (reproduce-table1, benchmark hallucination) claims its folder with its record (config
and data root, :func:`mrtrans.outputs.claim_experiment`): a re-run with the same record continues it, anything
else is refused. The demo starts fresh (:func:`mrtrans.outputs.start_fresh`). Everything an experiment writes
stays inside its folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mrtrans.config import SynthConfig, resolve_config_path, to_dict
from mrtrans.errors import MrtransError
from mrtrans.outputs import OutputKind, claim_experiment, output_lock, start_fresh
from mrtrans.synth import write_synthetic_brats

logger = logging.getLogger(__name__)

# What a re-run may change without invalidating finished data and runs: evaluation is always redone, and how
# many runs train at once, with how many threads, changes no run.
NOT_BINDING = ("evaluation", "jobs", "threads")


def method_label(method: str) -> str:
    """``cyclegan`` -> cyclegan; ``sweep/hg_l5.yaml`` -> hg_l5."""
    return Path(method).stem


def check_methods(methods: tuple[str, ...], presets: tuple[str, ...]) -> dict[str, str]:
    """Label -> method config, after checking that every method and preset exists (before any work).

    Raises:
        MrtransError: two methods with one label, or a config that is not found.
    """
    labels = {method_label(m): m for m in methods}
    if len(labels) != len(methods):
        raise MrtransError(f"two methods share a name: {', '.join(methods)}")
    for m in [*methods, *presets]:
        resolve_config_path(m)  # fail before any work on a misspelt method
    return labels


def stage_logger(log: logging.Logger = logger) -> Callable[[str], None]:
    """INFO lines of ``log`` with the seconds since this call in front of every line."""
    start = time.perf_counter()

    def stage(text: str) -> None:
        log.info(f"[{time.perf_counter() - start:6.0f} s] {text}")

    return stage


@dataclass
class Workspace:
    """An experiment's claimed folder and its stage log."""

    out: Path
    kind: OutputKind
    stage: Callable[[str], None] = field(repr=False)

    @classmethod
    def resume(
        cls,
        out: str | Path,
        kind: OutputKind,
        config: object,
        root: Path | None,
        not_binding: tuple[str, ...] = NOT_BINDING,
    ) -> Workspace:
        """Claim ``out`` for a resumable experiment of ``config`` on ``root`` (None: synthetic data); a re-run may
        change the config keys in ``not_binding``.

        Raises:
            MrtransError: ``out`` lies in ``root``, was made by something else, or holds another experiment.
        """
        out = Path(out)
        record = {"config": to_dict(config), "root": str(Path(root).resolve()) if root else None}
        claim_experiment(out, kind, record, inputs=[root] if root else [], not_binding=not_binding)
        return cls(out, kind, stage_logger())

    @classmethod
    def fresh(cls, out: str | Path, kind: OutputKind, overwrite: bool = False) -> Workspace:
        """Make ``out`` an empty ``kind`` folder (replacing an earlier one only with ``overwrite``); hold
        :func:`mrtrans.outputs.output_lock` around the whole experiment (:meth:`lock`)."""
        start_fresh(out, kind, overwrite)
        return cls(Path(out), kind, stage_logger())

    @staticmethod
    def lock(out: str | Path):
        """One writer per experiment folder (a context manager)."""
        return output_lock(Path(out))

    def synthetic_root(self, synth: SynthConfig) -> Path:
        """``out/brats``, written with ``synth`` subjects unless an earlier run of the experiment made it."""

        root = self.out / "brats"
        if not root.is_dir():
            self.stage(f"synthetic data: {synth.subjects} subjects of {'x'.join(map(str, synth.shape))} -> {root}")
            write_synthetic_brats(root, synth)
        return root
