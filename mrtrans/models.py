"""Build the networks a config names, and rebuild a trained model from its checkpoint alone.

Inference (translate, evaluate, export, the Python API) loads models through this module; it never
imports the training loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrtrans.config import (
    DiscriminatorArchitecture,
    DiscriminatorConfig,
    GeneratorArchitecture,
    GeneratorConfig,
    TrainConfig,
    from_dict,
)
from mrtrans.errors import MrtransError
from mrtrans.networks.discogan import DiscoDiscriminator, DiscoGenerator
from mrtrans.networks.discriminators import PatchGAN
from mrtrans.networks.generators import ResnetGenerator
from mrtrans.networks.unit import UnitModel, UnitTranslator


def build_generator(cfg: GeneratorConfig) -> nn.Module:
    """One direction's image-to-image network (for UNIT: a stand-alone encoder-decoder translator)."""
    if cfg.architecture is GeneratorArchitecture.discogan:
        return DiscoGenerator(cfg.in_channels, cfg.out_channels, cfg.base_channels, cfg.num_downsampling)
    if cfg.architecture is GeneratorArchitecture.unit:
        return UnitTranslator.build(cfg.in_channels, cfg.out_channels, cfg.base_channels, cfg.num_res_blocks)
    return ResnetGenerator(
        cfg.in_channels, cfg.out_channels, cfg.base_channels, cfg.num_res_blocks, cfg.num_downsampling
    )


def build_discriminator(cfg: DiscriminatorConfig) -> nn.Module:
    if cfg.architecture is DiscriminatorArchitecture.discogan:
        return DiscoDiscriminator(cfg.in_channels, cfg.base_channels, cfg.num_layers)
    return PatchGAN(cfg.in_channels, cfg.base_channels, cfg.num_layers)


def build_unit(cfg: GeneratorConfig) -> UnitModel:
    """UNIT's encoders and generators for training (both directions share their tied layers)."""
    return UnitModel(cfg.in_channels, cfg.base_channels, cfg.num_res_blocks)


def size_factor(cfg: GeneratorConfig) -> int:
    """Input sizes must be multiples of this (stride-2 stages of the generator)."""
    return 4 if cfg.architecture is GeneratorArchitecture.unit else 2**cfg.num_downsampling


def load_generators(
    checkpoint: dict[str, Any], device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Rebuild (gen_s2t, gen_t2s) from a checkpoint alone, in eval mode.

    Raises:
        MrtransError: the weights do not fit the generator the checkpoint's config describes.
    """
    cfg = from_dict(TrainConfig, checkpoint["config"])
    gens = []
    for name in ("gen_s2t", "gen_t2s"):
        gen = build_generator(cfg.generator)
        try:
            gen.load_state_dict(checkpoint["models"][name])
        except (RuntimeError, TypeError, AttributeError) as exc:  # missing/unexpected keys, size mismatch
            raise MrtransError(
                f"checkpoint weights of {name} do not fit its recorded generator config: {str(exc)[:300]}"
            ) from None
        gens.append(gen.to(device).eval())
    return gens[0], gens[1]
