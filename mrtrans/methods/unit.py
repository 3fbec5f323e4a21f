"""UNIT (Liu, Breuel, Kautz 2017): a shared-latent VAE-GAN, its own step (:mod:`mrtrans.methods.steps`).

Encoders and generators are one module (:class:`mrtrans.networks.unit.UnitModel`) whose two directions are
views on it; a checkpoint stores each direction as a stand-alone translator (``gen_s2t``, ``gen_t2s``) for
inference and the tied module (``unit``) for resuming. No image history pool (UNIT keeps none).
"""

from __future__ import annotations

from typing import Any

import torch

from mrtrans.config import Method, TrainConfig
from mrtrans.methods import BACKWARD, FORWARD, MethodData, Placement, Tensors, TrainingMethod
from mrtrans.methods.steps import Discriminators, unit_optimisation_step
from mrtrans.models import build_discriminator, build_unit


class UnitMethod(TrainingMethod):
    method = Method.unit

    def __init__(self, cfg: TrainConfig, data: MethodData, placement: Placement) -> None:
        super().__init__(cfg, data, placement)
        self.generators = placement.place(build_unit(cfg.generator))
        self.discriminators = placement.place(
            Discriminators(build_discriminator(cfg.discriminator), build_discriminator(cfg.discriminator))
        )
        self.compile()
        self.optimizers = self.adam()

    @classmethod
    def kind(cls, cfg: TrainConfig) -> str:
        return "unit"

    def step(
        self, real_s: torch.Tensor, real_t: torch.Tensor, autocast: torch.autocast, measure_gradients: bool
    ) -> tuple[Tensors, Tensors]:
        return unit_optimisation_step(
            self.gens,
            self.discs,
            self.generators,
            self.discriminators,
            self.optimizers["gen"],
            self.optimizers["disc"],
            real_s,
            real_t,
            self.cfg.unit,
            self.cfg.loss.gan_mode.value,
            autocast,
            measure_gradients=measure_gradients,
        )

    def models(self) -> dict[str, Any]:
        return {
            FORWARD: self.generators.gen_s2t.state_dict(),
            BACKWARD: self.generators.gen_t2s.state_dict(),
            "unit": self.generators.state_dict(),  # the tied layers once, for resuming
            "disc_s": self.discriminators.disc_s.state_dict(),
            "disc_t": self.discriminators.disc_t.state_dict(),
        }

    def load_models(self, models: dict[str, Any]) -> None:
        self.generators.load_state_dict(models["unit"])
        self.discriminators.disc_s.load_state_dict(models["disc_s"])
        self.discriminators.disc_t.load_state_dict(models["disc_t"])


METHOD = UnitMethod
