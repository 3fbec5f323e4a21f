"""The cycle step: two generators bound by cycle consistency, with optional smoothness and distance terms.

CycleGAN (lambda_smooth 0), HarmonicGAN (Zhang et al. 2019: + the smoothness term, histogram or VGG
features), DiscoGAN (Kim et al. 2017: its networks, MSE reconstruction) and DistanceGAN (Benaim & Wolf 2017:
+ the distance term, with or without the cycle) are settings of this step (``configs/``); the losses are in
:mod:`mrtrans.methods.steps`. A run's kind names the terms it trains with (:meth:`CycleMethod.kind`).
"""

from __future__ import annotations

from typing import Any

import torch

from mrtrans.config import GeneratorArchitecture, Method, SmoothFeatures, TrainConfig
from mrtrans.losses.distance import distance_statistics
from mrtrans.methods import MethodData, Placement, Tensors, TrainingMethod
from mrtrans.methods.pool import ImagePool
from mrtrans.methods.steps import (
    Discriminators,
    Generators,
    distance_mode,
    distance_term,
    optimisation_step,
    smoothness_term,
)
from mrtrans.models import build_discriminator, build_generator
from mrtrans.networks.vgg import load_vgg16_relu43


class CycleMethod(TrainingMethod):
    method = Method.cycle

    def __init__(self, cfg: TrainConfig, data: MethodData, placement: Placement) -> None:
        super().__init__(cfg, data, placement)
        place = placement.place
        self.generators = place(Generators(build_generator(cfg.generator), build_generator(cfg.generator)))
        self.discriminators = place(
            Discriminators(build_discriminator(cfg.discriminator), build_discriminator(cfg.discriminator))
        )
        self.compile()
        self.smoothness = None
        if cfg.loss.lambda_smooth > 0:
            vgg = None
            if cfg.loss.smooth_features is SmoothFeatures.vgg:
                vgg = place(load_vgg16_relu43(cfg.loss.vgg_weights))
            self.smoothness = smoothness_term(cfg.loss, vgg, data.value_range)
        self.distance = None
        if cfg.loss.lambda_distance > 0:  # DistanceGAN: each domain's distance statistics, over its training set
            mode = distance_mode(cfg.loss, cfg.data.batch_size)
            stats = {
                "s": distance_statistics(data.source, mode, seed=cfg.run.seed),
                "t": distance_statistics(data.target, mode, seed=cfg.run.seed),
            }
            self.distance = distance_term(cfg.loss, stats, cfg.data.batch_size)
        self.optimizers = self.adam()
        seed, rank = cfg.run.seed, placement.rank
        self.pool_s = ImagePool(cfg.data.pool_size, seed=seed * 1000 + 2 * rank)
        self.pool_t = ImagePool(cfg.data.pool_size, seed=seed * 1000 + 2 * rank + 1)

    @classmethod
    def kind(cls, cfg: TrainConfig) -> str:
        """``cyclegan``, ``harmonicgan-<features>``, ``discogan``, ``distancegan`` (no cycle term),
        ``distancegan-cycle``; a combination the paper has no name for gets its base name and ``+<term>``
        (e.g. ``harmonicgan-histogram+distance``), so no term a run trains with is left out of its name."""
        loss, extra = cfg.loss, []
        if cfg.generator.architecture is GeneratorArchitecture.discogan:
            base = "discogan"
            if loss.lambda_smooth > 0:
                extra.append(f"smooth-{loss.smooth_features.value}")
            if loss.lambda_distance > 0:
                extra.append("distance")
        elif loss.lambda_smooth > 0:
            base = f"harmonicgan-{loss.smooth_features.value}"
            if loss.lambda_distance > 0:
                extra.append("distance")
        elif loss.lambda_distance > 0:
            base = "distancegan" if loss.lambda_cycle == 0 else "distancegan-cycle"
        else:
            base = "cyclegan"
        if loss.lambda_identity > 0:
            extra.append("identity")
        return "+".join([base, *extra])

    def step(
        self, real_s: torch.Tensor, real_t: torch.Tensor, autocast: torch.autocast, measure_gradients: bool
    ) -> tuple[Tensors, Tensors]:
        return optimisation_step(
            self.gens,
            self.discs,
            self.generators,
            self.discriminators,
            self.optimizers["gen"],
            self.optimizers["disc"],
            self.pool_s,
            self.pool_t,
            real_s,
            real_t,
            self.cfg.loss,
            self.smoothness,
            autocast,
            measure_gradients=measure_gradients,
            distance=self.distance,
        )

    def extra_state(self) -> dict[str, Any]:
        return {"pools": {"source": self.pool_s.state_dict(), "target": self.pool_t.state_dict()}}

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        if self.placement.world == 1:  # pools are per process; a multi-process resume starts them anew
            self.pool_s.load_state_dict(ckpt["pools"]["source"], self.placement.device)
            self.pool_t.load_state_dict(ckpt["pools"]["target"], self.placement.device)

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return super().progress(values) | ({"cyc": f"{values['cycle_s']:.3f}"} if "cycle_s" in values else {})


METHOD = CycleMethod
