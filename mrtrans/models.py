"""Build the networks a config names, and rebuild a trained model from its checkpoint alone.

Inference (translate, evaluate, export, the Python API) loads models through this module; it never
imports the training loop.
"""

from __future__ import annotations

from typing import Any

import torch

from mrtrans.config import DiscriminatorConfig, GeneratorConfig, TrainConfig, from_dict
from mrtrans.errors import MrtransError
from mrtrans.networks.discriminators import PatchGAN
from mrtrans.networks.generators import ResnetGenerator


def build_generator(cfg: GeneratorConfig) -> ResnetGenerator:
    return ResnetGenerator(cfg.in_channels, cfg.out_channels, cfg.base_channels, cfg.num_res_blocks, cfg.num_downsampling)


def build_discriminator(cfg: DiscriminatorConfig) -> PatchGAN:
    return PatchGAN(cfg.in_channels, cfg.base_channels, cfg.num_layers)


def load_generators(checkpoint: dict[str, Any], device: torch.device | str = "cpu") -> tuple[torch.nn.Module, torch.nn.Module]:
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
            raise MrtransError(f"checkpoint weights of {name} do not fit its recorded generator config: {str(exc)[:300]}") from None
        gens.append(gen.to(device).eval())
    return gens[0], gens[1]
