"""Training methods as plug-ins: one module per value of :class:`mrtrans.config.Method`.

A method says how to build its networks from the config, how to take one optimisation step, which
directions its checkpoints translate and under what kind they are recorded (:class:`TrainingMethod`).
The training loop, checkpoint checks, model loading, translate, export, evaluate, reproduce-table1 and the
benchmark only go through this interface; ``mrtrans/methods/<method>.py`` defines ``METHOD``, the class.
Adding a method is that module, its config section and its presets in ``configs/`` (docs/methods.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mrtrans.checkpoint import BACKWARD, FORWARD
from mrtrans.config import Method, TrainConfig
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError

Tensors = dict[str, torch.Tensor]
SampleRow = tuple[str, list[tuple[str, torch.Tensor]]]  # (direction name, [(column title, image), ...])

# A translator's key in a checkpoint's models: the trained direction, and its reverse when the method learns it.


@dataclass(frozen=True)
class MethodData:
    """What a method may read of the training data: the training slices of both domains, (N, 1, H, W) in the
    prepared range (aligned slice by slice when the method is ``paired``), and the range itself."""

    source: np.ndarray
    target: np.ndarray
    value_range: tuple[float, float]


@dataclass(frozen=True)
class Placement:
    """Where the networks live: device, memory format, whether torch.compile wraps them, rank and world."""

    device: torch.device
    memory_format: torch.memory_format = torch.contiguous_format
    compile: bool = False
    rank: int = 0
    world: int = 1

    def place(self, module: nn.Module) -> nn.Module:
        module.to(self.device)
        module.to(memory_format=self.memory_format)
        return module


class Networks(nn.Module):
    """A container whose networks are its attributes (their names are the checkpoint's keys)."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class TrainingMethod:
    """One training method. Subclasses build ``generators`` (every network the generator optimiser updates),
    ``discriminators`` and ``optimizers`` (``{"gen": ..., "disc": ...}``) in ``__init__`` and implement
    :meth:`step`; the loop seeds torch before building, steps the learning-rate schedules and writes the files.
    """

    method: ClassVar[Method]
    paired: ClassVar[bool] = False  # trains on paired slices (both sequences of the same slices)
    # One model learns both directions (the cycle methods, UNIT); else a model is one direction, and the
    # config's ``both_directions`` says whether the reverse direction's own model trains beside it.
    two_way: ClassVar[bool] = True
    # Trains under torchrun (DistributedDataParallel); False where the step calls its networks one by one, which
    # DDP's gradient hooks do not see.
    distributed: ClassVar[bool] = True

    generators: nn.Module
    discriminators: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, cfg: TrainConfig, data: MethodData, placement: Placement) -> None:
        self.cfg, self.placement = cfg, placement
        self.both_directions = self.two_way or cfg.both_directions

    # -- what a checkpoint of this method is
    @classmethod
    def kind(cls, cfg: TrainConfig) -> str:
        """The name its checkpoints, run.json and reports carry (e.g. ``cyclegan``, ``harmonicgan-histogram``)."""
        raise NotImplementedError

    def translators(self, direction: Direction) -> dict[str, str]:
        """Direction name -> key of its generator in the checkpoint's ``models``, for a run of ``direction``."""
        out = {direction.name: FORWARD}
        if self.both_directions:
            out[direction.reversed().name] = BACKWARD
        return out

    @classmethod
    def resolve(cls, cfg: TrainConfig, image_size: int) -> TrainConfig:
        """``cfg`` with what the method sets from the slices' size (recorded in the run's config)."""
        return cfg

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """Refuse settings the method cannot train (MrtransError naming the key)."""
        if cls.two_way and not cfg.both_directions:
            raise MrtransError(
                f"config key 'both_directions': false, but {cfg.method.value} trains one model of both directions; "
                "leave it true (it applies to one-direction methods such as pix2pix and CUT)"
            )

    # -- training
    def adam(self) -> dict[str, torch.optim.Optimizer]:
        """``{"gen": ..., "disc": ...}``: Adam over ``generators`` and over ``discriminators`` with ``cfg.optim``."""
        o = self.cfg.optim
        return {
            "gen": torch.optim.Adam(self.generators.parameters(), lr=o.lr, betas=(o.beta1, o.beta2)),
            "disc": torch.optim.Adam(self.discriminators.parameters(), lr=o.lr, betas=(o.beta1, o.beta2)),
        }

    @classmethod
    def check_world(cls, world: int) -> None:
        """Refuse torchrun (``world`` > 1 processes) for a method that trains in one process."""
        if world > 1 and not cls.distributed:
            raise MrtransError(
                f"{cls.method.value} trains in one process; run `mrtrans train` without torchrun for this method"
            )

    def distribute(self) -> None:
        """Wrap the networks for DistributedDataParallel under torchrun (``self.gens``/``self.discs`` are called)."""
        world = self.placement.world
        self.check_world(world)
        self.gens = DistributedDataParallel(self.generators) if world > 1 else self.generators
        self.discs = DistributedDataParallel(self.discriminators) if world > 1 else self.discriminators

    def compile(self) -> None:
        """torch.compile every network in place (nn.Module.compile: state_dict keys, and so checkpoints, unchanged).

        Each network of the containers, not the containers: CUT and pix2pix call their networks one by one, and a
        compiled container whose forward is never called compiles nothing."""
        if self.placement.compile:
            # The gradient-norm measurements of logging steps back-propagate parts of the loss with retain_graph,
            # which compiled backwards refuse when they donate their buffers (found by gpu_check's CPU stand-in).
            import torch._functorch.config as functorch_config  # noqa: PLC0415  (a torch submodule, loaded on demand)

            functorch_config.donated_buffer = False
            for network in (*self.generators.children(), *self.discriminators.children()):
                network.compile()

    def step(
        self, real_s: torch.Tensor, real_t: torch.Tensor, autocast: torch.autocast, measure_gradients: bool
    ) -> tuple[Tensors, Tensors]:
        """One optimisation step; returns the generator and the discriminator losses (``total_g``, ``total_d``)."""
        raise NotImplementedError

    def translator(self, key: str) -> nn.Module:
        """The live network stored under ``key`` (``gen_s2t``...) -- samples and validation translate with it."""
        return getattr(self.generators, key)

    def models(self) -> dict[str, Any]:
        """State dicts for the checkpoint's ``models``: each network of ``generators`` and ``discriminators`` under
        its attribute name (the translators among them: ``gen_s2t``, ``gen_t2s``)."""
        return {
            name: module.state_dict()
            for container in (self.generators, self.discriminators)
            for name, module in container.named_children()
        }

    def load_models(self, models: dict[str, Any]) -> None:
        for container in (self.generators, self.discriminators):
            for name, module in container.named_children():
                module.load_state_dict(models[name])

    def extra_state(self) -> dict[str, Any]:
        """Anything else a resume needs (image pools...), stored at the checkpoint's top level."""
        return {}

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        pass

    def sample_rows(self, fixed_s: torch.Tensor, fixed_t: torch.Tensor, direction: Direction) -> list[SampleRow]:
        """Rows of the sample grid (called in eval mode, under no_grad): each direction's source and translation, and
        for a two-way model the reconstruction by its other direction."""
        rows = []
        for name, key, other, fixed in (
            (direction.name, FORWARD, BACKWARD, fixed_s),
            (direction.reversed().name, BACKWARD, FORWARD, fixed_t),
        )[: 1 + self.both_directions]:
            translated = self.translator(key)(fixed)
            row = [("source", fixed), ("translated", translated)]
            if self.two_way:
                row.append(("reconstructed", self.translator(other)(translated)))
            rows.append((name, row))
        return rows

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows of a logging step's losses."""
        return {"G": f"{values['total_g']:.3f}", "D": f"{values['total_d']:.3f}"}


def method_class(method: Method | str) -> type[TrainingMethod]:
    """The class of ``mrtrans/methods/<method>.py``."""
    method = Method(method)
    module = importlib.import_module(f"{__name__}.{method.value}")
    return module.METHOD


def build_method(cfg: TrainConfig, data: MethodData, placement: Placement) -> TrainingMethod:
    cls = method_class(cfg.method)
    cls.check_config(cfg)
    return cls(cfg, data, placement)
