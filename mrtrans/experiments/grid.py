"""One resumable grid of training runs, shared by every experiment.

Each run trains into a hidden scratch folder beside its final name and is moved into place when complete,
so a finished run is exactly one whose folder exists: a re-run trains only the rest. A run killed mid-way
continues from its last checkpoint in its scratch folder (``mrtrans train --resume``: the same result as an
uninterrupted run); one killed before its first checkpoint starts again. ``jobs`` runs at a time: in this process for
one, in spawned processes for more.

Devices: runs that ask for ``auto`` or ``cuda`` are spread over the visible GPUs in turn (job i on GPU i mod n;
``CUDA_VISIBLE_DEVICES`` chooses which), so ``--jobs 8`` on an 8-GPU node trains eight runs at once, one per GPU.

Threads: each job gets ``threads`` torch threads, by default the cores this process may use (its CPU affinity,
not the machine's count) shared out over the jobs, at least one and never more than the calling process's own
torch threads (``OMP_NUM_THREADS=1``, or the test suite's one thread per worker, is respected): on 2 cores,
``jobs 2`` gives each run one thread. Jobs that share cores must not oversubscribe them: on a loaded 2-core
machine 40 CPU-preset steps took 260 s with 2 threads per job and 55 s with 1 (issue 34); the tests' tiny
hallucination benchmark took 284 s with 2 threads and 91 s with 1 beside another 2-job benchmark. Pass
``threads`` (``--threads``) to override, e.g. 1 on a machine busy with other work.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from mrtrans.config import TrainConfig, from_dict, to_dict
from mrtrans.devices import grid_devices
from mrtrans.domain import Direction
from mrtrans.training.loop import train


@dataclass(frozen=True)
class TrainJob:
    """One run of a grid: train ``config`` on the prepared set ``data`` into ``run``."""

    data: Path
    run: Path
    direction: str
    config: TrainConfig

    @property
    def scratch(self) -> Path:
        return self.run.with_name(f".partial-{self.run.name}")


def train_job(data: str, run: str, direction: str, cfg_dict: dict, threads: int, show_progress: bool = False) -> str:
    """Train one run into its scratch folder and move it into place when complete (a worker's job)."""
    import torch

    torch.set_num_threads(threads)
    final = Path(run)
    scratch = final.with_name(f".partial-{final.name}")
    resume = (scratch / "checkpoints" / "last.pt").is_file()  # killed after a checkpoint: continue from it
    cfg = from_dict(TrainConfig, cfg_dict)
    train(data, scratch, Direction.parse(direction), cfg, resume=resume, show_progress=show_progress)
    scratch.rename(final)
    return str(final)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(jobs: int, threads: int | None = None) -> int:
    """``threads`` if given, else the usable cores shared out over ``jobs`` (at least 1), never more than this
    process's own torch threads (``OMP_NUM_THREADS``, a scheduler's limit, or a caller's ``torch.set_num_threads``)."""
    if threads:
        return threads
    return max(1, min(torch.get_num_threads(), usable_cores() // max(1, jobs)))


def _on_device(cfg: TrainConfig, index: int, jobs: int) -> dict:
    """The job's config with its GPU: runs asking for ``auto``/``cuda`` are spread round-robin over the visible GPUs
    (:func:`mrtrans.devices.grid_devices`), so ``--jobs 8`` on an 8-GPU node uses all eight."""
    tree = to_dict(cfg)
    tree["run"]["device"] = grid_devices(jobs, cfg.run.device, torch.cuda.device_count())[index]
    return tree


def train_grid(
    grid: list[TrainJob],
    jobs: int,
    stage: Callable[[str], None],
    show_progress: bool = False,
    threads: int | None = None,
) -> list[Path]:
    """Train every run of ``grid`` whose folder does not exist yet; return the folders of all of them.

    Args:
        jobs: runs at a time (1: in this process, with ``show_progress``).
        threads: torch threads per run (:func:`threads_per_job`; default the usable cores over ``jobs``).
    """
    todo = [job for job in grid if not job.run.is_dir()]
    if not todo:
        stage(f"all {len(grid)} runs finished earlier")
        return [job.run for job in grid]
    jobs = min(jobs, len(todo))
    threads = threads_per_job(jobs, threads)
    for job in todo:
        job.run.parent.mkdir(parents=True, exist_ok=True)
    resumed = sum((job.scratch / "checkpoints" / "last.pt").is_file() for job in todo)
    args = [
        (str(j.data), str(j.run), j.direction, _on_device(j.config, i, len(todo)), threads) for i, j in enumerate(todo)
    ]
    stage(
        f"train {len(todo)} of {len(grid)} runs, {jobs} at a time ({threads} threads each)"
        + (f"; {len(grid) - len(todo)} finished earlier" if len(todo) < len(grid) else "")
        + (f"; {resumed} continue from their last checkpoint" if resumed else "")
    )
    from tqdm import tqdm

    # runs done, with an ETA, on a terminal (disable=None: off in logs and pipes, where the stage lines say it)
    with tqdm(total=len(todo), desc="runs", unit="run", disable=None if jobs > 1 else True) as bar:
        if jobs == 1:  # each run shows its own step bar
            for i, a in enumerate(args, 1):
                stage(f"  run {i}/{len(todo)}: {Path(a[1]).name}")
                train_job(*a, show_progress=show_progress)
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for i, path in enumerate(pool.map(train_job, *zip(*args)), 1):
                    bar.update()
                    stage(f"  run {i}/{len(todo)} done: {Path(path).name}")
    return [job.run for job in grid]
