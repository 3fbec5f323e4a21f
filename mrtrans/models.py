"""Build the networks a config names, and rebuild a trained model from its checkpoint alone.

Inference (translate, evaluate, export, the Python API) loads models through this module; it never
imports the training loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrtrans.checkpoint import checkpoint_translators, unavailable_direction
from mrtrans.config import (
    DiscriminatorArchitecture,
    DiscriminatorConfig,
    GeneratorArchitecture,
    GeneratorConfig,
    train_config_from_record,
)
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.networks.discogan import DiscoDiscriminator, DiscoGenerator
from mrtrans.networks.discriminators import PatchGAN
from mrtrans.networks.generators import ResnetGenerator
from mrtrans.networks.unet import UnetGenerator
from mrtrans.networks.unit import UnitModel, UnitTranslator


def generator_spec(cfg: GeneratorConfig) -> dict[str, Any]:
    """One direction's network as a class (or builder) path and its keyword arguments: ``{"_target_": ..., **kwargs}``,
    the form MONAI's bundle configs instantiate (an exported bundle's ``network_def``)."""
    io = {"in_channels": cfg.in_channels, "out_channels": cfg.out_channels, "base_channels": cfg.base_channels}
    if cfg.architecture is GeneratorArchitecture.discogan:
        return {"_target_": "mrtrans.networks.discogan.DiscoGenerator", **io, "num_downsampling": cfg.num_downsampling}
    if cfg.architecture is GeneratorArchitecture.unit:  # a stand-alone encoder-decoder translator
        return {"_target_": "mrtrans.networks.unit.UnitTranslator.build", **io, "num_res_blocks": cfg.num_res_blocks}
    if cfg.architecture is GeneratorArchitecture.unet:
        return {"_target_": "mrtrans.networks.unet.UnetGenerator", **io, "num_downs": cfg.num_downsampling}
    return {
        "_target_": "mrtrans.networks.generators.ResnetGenerator",
        **io,
        "num_res_blocks": cfg.num_res_blocks,
        "num_downsampling": cfg.num_downsampling,
    }


GENERATORS = {
    "mrtrans.networks.discogan.DiscoGenerator": DiscoGenerator,
    "mrtrans.networks.unit.UnitTranslator.build": UnitTranslator.build,
    "mrtrans.networks.unet.UnetGenerator": UnetGenerator,
    "mrtrans.networks.generators.ResnetGenerator": ResnetGenerator,
}


def build_generator(cfg: GeneratorConfig) -> nn.Module:
    """One direction's image-to-image network (for UNIT: a stand-alone encoder-decoder translator)."""
    spec = generator_spec(cfg)
    return GENERATORS[spec.pop("_target_")](**spec)


def build_discriminator(cfg: DiscriminatorConfig) -> nn.Module:
    if cfg.architecture is DiscriminatorArchitecture.discogan:
        return DiscoDiscriminator(cfg.in_channels, cfg.base_channels, cfg.num_layers)
    return PatchGAN(cfg.in_channels, cfg.base_channels, cfg.num_layers)


def build_unit(cfg: GeneratorConfig) -> UnitModel:
    """UNIT's encoders and generators for training (both directions share their tied layers)."""
    return UnitModel(cfg.in_channels, cfg.base_channels, cfg.num_res_blocks)


def load_generator(
    checkpoint: dict[str, Any], direction: Any, device: torch.device | str = "cpu", source: object = "checkpoint"
) -> torch.nn.Module:
    """The generator of ``checkpoint`` that translates ``direction`` (a Direction or ``"flair2t1"``), in eval mode.

    Raises:
        MrtransError: the model does not translate that direction (one line naming ``source``), or its weights
            do not fit.
    """

    wanted = Direction.parse(direction) if isinstance(direction, str) else direction
    key = checkpoint_translators(checkpoint).get(wanted.name)
    if key is None:
        raise unavailable_direction(checkpoint, wanted, source)
    return _generator(checkpoint, key, device)


def _generator(checkpoint: dict[str, Any], name: str, device: torch.device | str) -> torch.nn.Module:
    cfg = train_config_from_record(checkpoint["config"])
    gen = build_generator(cfg.generator)
    try:
        gen.load_state_dict(checkpoint["models"][name])
    except (RuntimeError, TypeError, AttributeError) as exc:  # missing/unexpected keys, size mismatch
        raise MrtransError(
            f"checkpoint weights of {name} do not fit its recorded generator config: {str(exc)[:300]}"
        ) from None
    return gen.to(device).eval()
