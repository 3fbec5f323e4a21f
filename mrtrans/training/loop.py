"""The training loop of ``mrtrans train``: any method of :mod:`mrtrans.methods` on a prepared slice set.

* Data: unpaired (a paired method, pix2pix, draws the same slice of both sequences). Epoch ``e`` visits
  ``max(N_source, N_target)`` positions; position ``p`` pairs
  source slice ``perm_s[p % N_s]`` with target slice ``perm_t[p % N_t]`` for permutations seeded by
  ``(seed, e)``. Nothing else is random in a step, so (epoch, step in epoch) plus the pools' states
  fully determine what comes next: that is what makes ``--resume`` exact.
* Schedule (CycleGAN): Adam, lr constant for ``epochs_constant`` epochs, then linear decay to zero over
  ``epochs_decay`` epochs; the schedulers step at epoch ends.
* Device: CUDA when present (bf16 autocast if ``run.amp``, channels_last if ``run.channels_last``),
  else CPU in fp32. Under ``torchrun`` each process takes every ``world_size``-th position and the
  generators and discriminators are wrapped in DistributedDataParallel; rank 0 writes the files.
* Outputs in the run folder: ``config.yaml`` (resolved), ``run.json`` (provenance), ``losses.csv``,
  ``samples/step_*.png``, ``checkpoints/last.pt`` (and ``best.pt`` when the set has validation slices,
  :mod:`.validation`), TensorBoard events if tensorboard is installed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import functools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mrtrans.checkpoint import ModelRecord, load_checkpoint, model_payload, model_record, save_checkpoint
from mrtrans.config import (
    TrainConfig,
    ValidationMetric,
    resolve_patch_size,
    save_config,
    to_dict,
)
from mrtrans.data_prep.slices import PreparedSlices, to_tensor
from mrtrans.devices import plan_device, precision_plan, rng_states, seed_rank, set_fp32_matmul, set_rng_states
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path, remove_partial_files
from mrtrans.methods import MethodData, Placement, SampleRow, build_method, method_class
from mrtrans.outputs import MARKER, OutputKind, check_inputs, made_by, output_lock, write_marker
from mrtrans.provenance import git_commit, versions
from mrtrans.training.resume import resume_differences
from mrtrans.training.validation import ValidationSet, improves, rule, validation_scores

logger = logging.getLogger(__name__)


def process_group_backend(device: torch.device) -> str:
    """NCCL when the processes train on GPUs, gloo on CPUs (whatever else the machine has)."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(world: int, device: torch.device) -> int:
    """This process's rank; starts the process group under torchrun with the backend of ``device``."""
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(process_group_backend(device))
    return dist.get_rank() if dist.is_initialized() else 0


def lr_factor(epoch: int, epochs_constant: int, epochs_decay: int) -> float:
    """CycleGAN's schedule: 1 for the first epochs_constant epochs, then linear down towards 0."""
    return 1.0 - max(0, epoch + 1 - epochs_constant) / float(epochs_decay + 1)


@functools.lru_cache(maxsize=1)  # called every step, changes once per epoch
def epoch_orders(n_source: int, n_target: int, seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded permutations of both domains for one epoch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_source, generator=g), torch.randperm(n_target, generator=g)


def _sample_grid(path: Path, rows: list[SampleRow]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.5 * columns, 2.6 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            axes[r, c].axis("off")
        for c, (title, img) in enumerate(images):
            axes[r, c].imshow(np.rot90(img[0, 0].float().cpu().numpy()), cmap="gray", vmin=-1, vmax=1)
            axes[r, c].set_title(f"{name}: {title}", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72, format="png")
    plt.close(fig)


class _LossLog:
    """losses.csv (and TensorBoard when installed); on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int | None, extra_fields: list[str] | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        self.extra_fields = list(extra_fields or [])  # columns only some rows fill (validation scores)
        if resume_step is not None and path.exists():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            if rows:
                self.fields = list(rows[0])
                with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                    writer = csv.DictWriter(f, self.fields)
                    writer.writeheader()
                    writer.writerows(rows)
        elif path.exists():
            path.unlink()
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # an optional extra: say once per run what is missing and where the numbers still are
            logger.info(
                "TensorBoard event files are off: the tensorboard package is not installed (pip install "
                "'mrtrans[tensorboard]'); losses.csv holds every logged value"
            )
        else:
            self.tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, row: dict[str, float]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row) + [f for f in self.extra_fields if f not in row]
        with self.path.open("a", newline="") as f:
            # A run resumed from an older mrtrans keeps its file's columns (newer ones are dropped).
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore", restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    self.tb.add_scalar(key, value, int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train(
    data: str | Path,
    out: str | Path,
    direction: Direction,
    cfg: TrainConfig,
    resume: bool = False,
    show_progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """Train the method of ``cfg`` for ``direction`` (and its reverse, when the method learns both) into ``out``.

    Args:
        data: folder written by prepare-brats.
        out: run folder; must be new unless ``resume``.
        direction: source -> target (two-way methods also learn target -> source; ``cfg.both_directions`` trains a
            one-direction method's reverse model too).
        cfg: the resolved configuration.
        resume: continue from ``out/checkpoints/last.pt``.
        show_progress: progress bar on rank 0.
        on_step: called after every step with (global step, losses) -- for callers that watch a run.

    Returns:
        The path of the last checkpoint.

    Raises:
        MrtransError: unusable data, an existing run folder without --resume, missing VGG weights...
    """
    world, local_rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    method_cls = method_class(cfg.method)
    method_cls.check_world(world)  # before any process group, run folder or network exists
    method_cls.check_config(cfg)
    device = plan_device(cfg.run.device, local_rank, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # plan_device gives CUDA devices an index
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    rank = init_distributed(world, device)
    out = Path(out)
    check_inputs(out, [data])
    dataset = PreparedSlices(data)
    dataset.check_direction(direction)
    if method_cls.paired:
        dataset.require_paired()
    if cfg.data.image_size is not None and dataset.image_size != cfg.data.image_size:
        raise MrtransError(
            f"{dataset.folder}: slices are {dataset.image_size}x{dataset.image_size} but data.image_size is "
            f"{cfg.data.image_size}; prepare with --image-size {cfg.data.image_size} or set data.image_size"
        )
    cfg = method_cls.resolve(cfg, dataset.image_size)  # e.g. the U-Net's depth at this size
    factor = cfg.generator.size_factor
    if dataset.image_size % factor:
        raise MrtransError(
            f"{dataset.folder}: slices are {dataset.image_size}x{dataset.image_size}, not a multiple of {factor} "
            f"(the generator halves the size {factor.bit_length() - 1} times); prepare with --image-size "
            f"{dataset.image_size // factor * factor or factor}"
        )

    cfg = resolve_patch_size(cfg, dataset.image_size)  # recorded resolved in config.yaml and checkpoints
    ckpt_path = out / "checkpoints" / "last.pt"
    with output_lock(out) if rank == 0 else contextlib.nullcontext():
        resume = _agreed_claim(out, ckpt_path, resume, rank, world)
        return _train(dataset, out, ckpt_path, direction, cfg, resume, show_progress, on_step, rank, world, device)


def _agreed_claim(out: Path, ckpt_path: Path, resume: bool, rank: int, world: int) -> bool:
    """Rank 0 claims the run folder (:func:`_claim_run_folder`) and tells the other ranks what it decided, or its
    error: a rank that looked at the folder itself could see it half-claimed (created, marker not yet in place)."""
    decision: list[Any] = [None]
    if rank == 0:
        try:
            decision = [("resume", _claim_run_folder(out, ckpt_path, resume))]
        except MrtransError as exc:
            decision = [("error", str(exc))]
    if world > 1:
        dist.broadcast_object_list(decision, src=0)
    what, value = decision[0]
    if what == "error":
        raise MrtransError(value)
    return bool(value)


def _data_record(dataset: PreparedSlices) -> dict[str, Any]:
    """What identifies a prepared set: its input volumes' hash and the recipe (a resume must use the same), and the
    patients the run trains on (evaluate refuses to score a run on them)."""
    return {
        "input_sha256": dataset.meta.get("input_sha256"),
        "prepare_config": dataset.meta.get("config"),
        "modalities": list(dataset.modalities),
        "image_size": dataset.image_size,
        "train_subjects": dataset.subjects("train"),
    }


def _claim_run_folder(out: Path, ckpt_path: Path, resume: bool) -> bool:
    """Decide (on rank 0, under the run's lock) whether this run resumes, starts, or restarts a run folder that has no
    checkpoint yet.

    Returns:
        Whether to resume from ``ckpt_path``.
    """
    has_files = out.is_dir() and any(p.name != MARKER for p in out.iterdir())
    remove_partial_files(ckpt_path)  # checkpoints half-written by a killed run (atomic_path's temporary names)
    if ckpt_path.is_file():
        if not resume:
            raise MrtransError(f"{out}: run folder exists; pass --resume to continue it or choose another --out")
        return True
    if not has_files:
        if resume:
            raise MrtransError(f"{out}: nothing to resume (no run in this folder); run without --resume to start it")
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, OutputKind.run)
        return False
    if not made_by(out, OutputKind.run):
        raise MrtransError(f"{out}: exists and is not a run of `mrtrans train`; choose another --out")
    # Stopped before its first checkpoint: nothing to continue, so start again, replacing only train's own files.
    logger.warning(f"{out}: no checkpoint yet (stopped before the first one); starting the run again")
    for pattern in (
        "samples/step_*.png",
        "tensorboard/events.out.tfevents.*",
        "losses.csv",
        "checkpoints/best.pt",
        "checkpoints/step_*.pt",
    ):
        for path in out.glob(pattern):
            path.unlink()
    write_marker(out, OutputKind.run)
    return False


def _check_resume(
    ckpt: dict[str, Any],
    record: ModelRecord,
    ckpt_path: Path,
    cfg: TrainConfig,
    dataset: PreparedSlices,
    direction: Direction,
    world: int,
) -> None:
    """Refuse to continue a run with another method, architecture, data, direction or number of processes
    (``record``: the checkpoint's :func:`model_record`)."""
    saved_world = int(ckpt.get("world_size", 1))
    if saved_world != world:  # steps per epoch and the data each process sees depend on it
        raise MrtransError(
            f"{ckpt_path}: the run was trained by {saved_world} process(es), this resume has {world}; resume "
            f"with the same number (torchrun --nproc_per_node={saved_world}, or no torchrun for 1)"
        )
    if record.direction != direction:
        raise MrtransError(f"{ckpt_path}: run is {record.direction.name}, not {direction.name}")
    differences = resume_differences(record.config, cfg)
    if differences:
        raise MrtransError(
            f"{ckpt_path}: --resume asks for another configuration than the run's ({'; '.join(differences)}); resume "
            f"without --config/--preset to keep the run's own, or train the new configuration into another --out"
        )
    saved = record.data
    if not saved:  # checkpoints of mrtrans < 0.2 record only the normalisation
        trained_size = record.normalization.image_size
        if trained_size != dataset.image_size:
            raise MrtransError(
                f"{ckpt_path}: the run was trained on {trained_size}-pixel slices, "
                f"{dataset.folder} has {dataset.image_size}; resume with the run's own --data"
            )
        return
    now = _data_record(dataset)
    if saved.get("input_sha256") != now["input_sha256"]:
        raise MrtransError(
            f"{dataset.folder}: prepared from other input volumes than the data of the run being resumed "
            f"({ckpt_path}); resume with the run's own --data"
        )
    was, is_ = saved.get("prepare_config") or {}, now["prepare_config"] or {}
    changed = [
        f"{k}: {was.get(k)!r} -> {is_.get(k)!r}" for k in sorted(set(was) | set(is_)) if was.get(k) != is_.get(k)
    ]
    if changed:
        raise MrtransError(
            f"{dataset.folder}: prepared with other settings than the run's data ({'; '.join(changed)}); "
            f"resume with the run's own --data"
        )


@dataclasses.dataclass
class _Run:
    """What one run's steps share once its folder is claimed: the data, the method, the optimisation state, the
    validation set and the records; its methods are the named steps of :func:`_train`."""

    dataset: PreparedSlices
    out: Path
    ckpt_path: Path
    direction: Direction
    cfg: TrainConfig
    method: Any
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    device: torch.device
    rank: int
    world: int
    state: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
    )
    best: dict[str, Any] | None = None
    validation: ValidationSet | None = None
    last: Path | None = None  # the last checkpoint written (before any: where last.pt goes)
    saved_at: float = dataclasses.field(default_factory=time.monotonic)  # when last.pt was written (monotonic)

    def __post_init__(self) -> None:
        self.last = self.last or self.ckpt_path

    @functools.cached_property
    def kind(self) -> str:
        return self.method.kind(self.cfg)

    @functools.cached_property
    def translators(self) -> dict[str, str]:
        return self.method.translators(self.direction)

    def restore(self) -> None:
        """Continue from ``last.pt``: weights, optimisers, schedules, the method's extra state, RNGs and position,
        after checking it is the same run (:func:`_check_resume`).

        On the CPU: load_state_dict moves weights and Adam moments to the parameters' device and keeps Adam's step
        counters on the CPU, as a fresh (non-capturable) Adam has them (no sync per parameter)."""
        ckpt = load_checkpoint(self.ckpt_path, map_location="cpu")
        record = model_record(ckpt, self.ckpt_path)  # a usable model checkpoint (else one line naming the field)
        _check_resume(ckpt, record, self.ckpt_path, self.cfg, self.dataset, self.direction, self.world)
        self.method.load_models(ckpt["models"])
        for name, opt in self.method.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
            self.schedulers[name].load_state_dict(ckpt["schedulers"][name])
        self.method.load_extra_state(ckpt)
        set_rng_states(ckpt["rng"], self.device)
        self.state = dict(ckpt["state"])
        self.best = ckpt.get("validation", {}).get("best")

    def write_records(self, resume: bool, steps_per_epoch: int, total_steps: int) -> _LossLog:
        """config.yaml, run.json (provenance; a resume appends to its list) and the loss log (rank 0)."""
        out = self.out
        (out / "samples").mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        save_config(self.cfg, out / "config.yaml")
        run_json = out / "run.json"
        info = json.loads(run_json.read_text()) if resume and run_json.exists() else {}
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        info.setdefault("started", stamp)
        if resume:
            info.setdefault("resumed", []).append({"at": stamp, "step": self.state["global_step"]})
        metric = self.cfg.run.best_metric
        info |= {
            "kind": self.kind,
            "method": self.cfg.method.value,
            "direction": self.direction.name,
            "translates": list(self.translators),
            "best_checkpoint": rule(metric) if self.validation is not None else None,  # None: no validation slices
            "data": str(Path(self.dataset.folder).resolve()),
            "command": sys.argv,
            "seed": self.cfg.run.seed,
            "device": str(self.device),
            "world_size": self.world,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps,
            "versions": versions(),
            "git_commit": git_commit(),
        }
        with atomic_path(run_json) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
        val_fields = [f"val_{m.value}_{d}" for m in ValidationMetric for d in self.translators] + [
            f"val_{m.value}" for m in ValidationMetric
        ]
        resume_step = self.state["global_step"] if resume else None
        return _LossLog(out / "losses.csv", resume_step, val_fields if self.validation else [])

    def save(self, path: Path | None = None, selection: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint (``last.pt`` by default) that resumes exactly and translates; ``selection`` says how it
        was chosen (the last step, the validation rule of best.pt, a kept step). Refuses non-finite weights."""
        method, state = self.method, self.state
        metric = self.cfg.run.best_metric
        payload = {
            **model_payload(
                self.kind,
                self.direction.source,
                self.direction.target,
                to_dict(self.cfg),
                self.dataset.normalization,
                method.models(),
                method=self.cfg.method.value,
                translators=self.translators,
            ),
            "paired_training": method.paired,  # trained on paired slices: reports show it as the upper bound
            "optimizers": {name: opt.state_dict() for name, opt in method.optimizers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
            **method.extra_state(),
            "rng": rng_states(self.device),
            "state": dict(state),
            "versions": versions(),
            "git_commit": git_commit(),
            "world_size": self.world,
            "data": _data_record(self.dataset),
            "selection": selection or {"rule": "last step", "step": state["global_step"]},
            **({"validation": {"best": self.best, "rule": rule(metric)}} if self.validation is not None else {}),
        }
        if not bool(torch.stack([torch.isfinite(p).all() for p in method.generators.parameters()]).all()):  # one sync
            raise MrtransError(
                f"step {state['global_step']}: the generators' weights became NaN or Inf (training diverged); "
                f"the last good checkpoint, if any, is kept at {self.ckpt_path}. Lower optim.lr or check the config"
            )
        return save_checkpoint(payload, path or self.ckpt_path)

    def advance(self, steps_per_epoch: int) -> None:
        """One step done: the position moves on; at an epoch's end the learning rates step."""
        state = self.state
        state["global_step"] += 1
        state["step_in_epoch"] += 1
        if state["step_in_epoch"] == steps_per_epoch:
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            for sched in self.schedulers.values():
                sched.step()

    def scores(self, g: dict[str, torch.Tensor], d: dict[str, torch.Tensor], validating: bool) -> dict[str, float]:
        """The step's losses as numbers (a stop if one diverged), with the validation scores on a validating step."""
        step = self.state["global_step"]
        values = _finite_values({k: float(v.detach()) for k, v in {**g, **d}.items()}, step, self.ckpt_path)
        if self.validation is not None and validating:  # rank 0 only: the other ranks have no validation set
            nets = {name: self.method.translator(key) for name, key in self.translators.items()}
            values |= validation_scores(nets, self.validation, self.device)
        return values

    def write_outputs(
        self, values: dict[str, float], validating: bool, total_steps: int, fixed: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """After a step: the sample grid, best.pt when validation improves, a kept step's checkpoint, last.pt when
        due (every ``checkpoint_every`` steps, ``checkpoint_seconds``, the last step)."""
        step, cfg, metric = self.state["global_step"], self.cfg.run, self.cfg.run.best_metric
        if self.rank == 0 and (step % cfg.sample_every == 0 or step == total_steps):
            generators = self.method.generators
            with torch.no_grad():
                generators.eval()
                rows = self.method.sample_rows(fixed[0], fixed[1], self.direction)
                generators.train()
            _sample_grid(self.out / "samples" / f"step_{step:07d}.png", rows)
        if self.validation is not None and validating and improves(values[f"val_{metric.value}"], self.best, metric):
            self.best = {"metric": metric.value, "value": values[f"val_{metric.value}"], "step": step}
            self.save(self.ckpt_path.with_name("best.pt"), {"rule": rule(metric), **self.best})
            logger.info(f"step {step}: best.pt ({rule(metric)}: {self.best['value']:.4f})")
        if self.rank == 0 and step in cfg.keep_steps:
            self.save(self.ckpt_path.with_name(f"step_{step:07d}.pt"), {"rule": f"kept at step {step}", "step": step})
        due = cfg.checkpoint_seconds is not None and time.monotonic() - self.saved_at >= cfg.checkpoint_seconds
        if self.rank == 0 and (step % cfg.checkpoint_every == 0 or step == total_steps or due):
            self.last = self.save()
            self.saved_at = time.monotonic()


def _batch_indices(
    n_source: int, n_target: int, seed: int, state: dict[str, int], rank: int, world: int, batch: int, paired: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The source and target slices of this rank's next batch (module docstring: the epoch's seeded orders)."""
    order_s, order_t = epoch_orders(n_source, n_target, seed, state["epoch"])
    positions = [(state["step_in_epoch"] * world + rank) * batch + k for k in range(batch)]
    idx_s = np.sort(order_s[[p % n_source for p in positions]].numpy())
    idx_t = idx_s if paired else np.sort(order_t[[p % n_target for p in positions]].numpy())
    return idx_s, idx_t


def _finite_values(values: dict[str, float], step: int, ckpt_path: Path) -> dict[str, float]:
    """``values``, or a stop with the losses that diverged."""
    if not all(math.isfinite(v) for v in values.values()):
        bad = ", ".join(k for k, v in values.items() if not math.isfinite(v))
        raise MrtransError(
            f"step {step}: losses became NaN or Inf ({bad}); training diverged. The last good "
            f"checkpoint, if any, is kept at {ckpt_path}. Lower optim.lr or check the config"
        )
    return values


def _build(cfg: TrainConfig, data: MethodData, placement: Placement) -> tuple[Any, dict[str, Any]]:
    """The method's networks and optimisers (the same initial weights on every rank, then each rank its own noise
    and dropout) and their learning-rate schedules (CycleGAN's: :func:`lr_factor`, stepped at epoch ends)."""
    torch.manual_seed(cfg.run.seed)
    method = build_method(cfg, data, placement)
    seed_rank(cfg.run.seed, placement.rank, placement.world, placement.device)
    o = cfg.optim

    def factor(epoch: int) -> float:
        return lr_factor(epoch, o.epochs_constant, o.epochs_decay)

    return method, {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in method.optimizers.items()}


def _schedule(cfg: TrainConfig, n_source: int, n_target: int, world: int) -> tuple[int, int]:
    """(steps per epoch, total steps): an epoch visits max(N_source, N_target) positions over all processes;
    ``run.max_steps`` caps the total."""
    steps_per_epoch = max(1, math.ceil(max(n_source, n_target) / (cfg.data.batch_size * world)))
    total_steps = (cfg.optim.epochs_constant + cfg.optim.epochs_decay) * steps_per_epoch
    if cfg.run.max_steps is not None:
        total_steps = min(total_steps, cfg.run.max_steps)
    return steps_per_epoch, total_steps


def _autocast(device: torch.device, amp: bool, rank: int) -> torch.autocast:
    """The steps' autocast (bf16 on a CUDA device that has it when ``amp``, else off) and the fp32 matmul mode."""
    bf16, precision = precision_plan(device, amp)
    set_fp32_matmul(strict=device.type == "cuda" and not bf16)
    if rank == 0:
        logger.info(f"computing in {precision}")
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16)


def _train(
    dataset: PreparedSlices,
    out: Path,
    ckpt_path: Path,
    direction: Direction,
    cfg: TrainConfig,
    resume: bool,
    show_progress: bool,
    on_step: Callable[[int, dict[str, float]], None] | None,
    rank: int,
    world: int,
    device: torch.device,
) -> Path:
    """The body of :func:`train`, once the run folder is claimed."""
    paired = method_class(cfg.method).paired  # the same slices of both sequences, drawn together
    read = dataset.train_paired if paired else dataset.train
    source, target = (read(m)[: cfg.data.max_train_slices] for m in (direction.source, direction.target))

    memory_format = torch.channels_last if device.type == "cuda" and cfg.run.channels_last else torch.contiguous_format
    placement = Placement(device, memory_format, cfg.run.compile, rank, world)
    method, schedulers = _build(cfg, MethodData(source, target, dataset.normalization.range), placement)
    run = _Run(dataset, out, ckpt_path, direction, cfg, method, schedulers, device, rank, world)
    if resume:
        run.restore()
    state = run.state

    method.distribute()
    run.validation = ValidationSet.read(dataset) if rank == 0 else None  # never the test slices

    batch = cfg.data.batch_size
    steps_per_epoch, total_steps = _schedule(cfg, len(source), len(target), world)
    autocast = _autocast(device, cfg.run.amp, rank)
    log = run.write_records(resume, steps_per_epoch, total_steps) if rank == 0 else None

    from tqdm import tqdm

    bar = tqdm(
        total=total_steps,
        initial=state["global_step"],
        desc=f"train {run.kind} {direction.name}",
        unit="step",
        disable=rank != 0 or not show_progress,
        dynamic_ncols=True,
    )
    fixed = (to_tensor(source[:1]).to(device), to_tensor(target[:1]).to(device))
    run.saved_at = time.monotonic()
    try:
        while state["global_step"] < total_steps:
            idx_s, idx_t = _batch_indices(len(source), len(target), cfg.run.seed, state, rank, world, batch, paired)
            real_s = to_tensor(source[idx_s]).to(device, memory_format=memory_format, non_blocking=True)
            real_t = to_tensor(target[idx_t]).to(device, memory_format=memory_format, non_blocking=True)

            coming = state["global_step"] + 1
            validating = dataset.has_validation and (  # the same steps on every rank; rank 0 scores them
                coming % (cfg.run.validate_every or cfg.run.checkpoint_every) == 0 or coming == total_steps
            )
            logging_step = coming % cfg.run.log_every == 0 or coming == total_steps or validating
            g, d = method.step(real_s, real_t, autocast, measure_gradients=logging_step)
            run.advance(steps_per_epoch)
            bar.update(1)
            values = run.scores(g, d, validating) if on_step is not None or logging_step else {}
            if on_step is not None:
                on_step(state["global_step"], values)
            if rank == 0 and logging_step:
                lr = method.optimizers["gen"].param_groups[0]["lr"]
                log.write({"step": state["global_step"], "epoch": state["epoch"], "lr": lr, **values})
                bar.set_postfix(method.progress(values))
            run.write_outputs(values, validating, total_steps, fixed)
        if world > 1:
            _check_replicas(method.generators)
    finally:
        bar.close()
        if log is not None:
            log.close()
        if world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    return run.last


def replica_stats(model: torch.nn.Module) -> torch.Tensor:
    """(sum, sum of absolute values) of all weights, float64, on the model's device."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    return torch.stack([flat.sum(), flat.abs().sum()])


def _check_replicas(model: torch.nn.Module) -> None:
    """Under DDP every rank must end with the same weights; fail loudly if not."""
    stats = replica_stats(model)  # on the model's device: NCCL gathers CUDA tensors only
    gathered = [torch.zeros_like(stats) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, stats)
    gathered = [s.cpu() for s in gathered]
    if not all(torch.allclose(gathered[0], s, rtol=1e-6, atol=1e-6) for s in gathered):
        raise RuntimeError(f"DDP replicas diverged: {[s.tolist() for s in gathered]}")
