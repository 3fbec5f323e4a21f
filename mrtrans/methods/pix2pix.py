"""pix2pix (Isola, Zhu, Zhou, Efros, CVPR 2017): the paired upper bound.

BraTS is paired: the same slice exists in both sequences. pix2pix trains on such pairs (``prepare-brats --set
paired_train_slices=N``, drawn from the training patients only) with a conditional PatchGAN that judges
(x, y) pairs and an L1 loss to the real target: G minimises ``lambda_gan GAN(D(x, G(x))) + lambda_l1 |G(x) - y|_1``
(weights 1 and 100), D ``0.5 (GAN(D(x, y), real) + GAN(D(x, G(x)), fake))``, updated first on the step's
translation (the authors' ``pix2pix_model.py``: vanilla GAN, no image pool, Adam 2e-4 / 0.5). The generator is
the config's: the U-Net (``configs/pix2pix.yaml``, U-Net-256 at 256 px) or the ResNet.

It sees what no unpaired method may, so every report shows it as "paired (upper bound)", apart from the
unpaired methods' ranking. One direction per model; with ``both_directions`` (default) the reverse direction's
own G and D train in the same steps on the same pairs.

Departures: instance normalisation (the authors' ``--norm instance``; their default is batch norm at batch size
1) and no dropout at test time (the authors keep it on); at image sizes below 256 the U-Net is as deep as the
size allows (down to 1x1: 6 levels at 64 px), recorded in the run's config.
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from mrtrans.config import GeneratorArchitecture, Method, TrainConfig
from mrtrans.losses.adversarial import gan_loss
from mrtrans.methods import BACKWARD, FORWARD, MethodData, Networks, Placement, Tensors, TrainingMethod
from mrtrans.methods.steps import gradient_norms, update
from mrtrans.models import build_discriminator, build_generator
from mrtrans.networks.unet import MIN_DOWNS

logger = logging.getLogger(__name__)


class Pix2PixMethod(TrainingMethod):
    method = Method.pix2pix
    paired = True
    two_way = False
    distributed = False

    @classmethod
    def kind(cls, cfg: TrainConfig) -> str:
        return "pix2pix"

    @classmethod
    def resolve(cls, cfg: TrainConfig, image_size: int) -> TrainConfig:
        """A U-Net deeper than the slices allow loses levels (down to MIN_DOWNS) until image_size divides by 2**depth:
        U-Net-256's 8 levels are 6 at 64 px, 7 at 128 (the authors' unet_128)."""
        g = cfg.generator
        if g.architecture is not GeneratorArchitecture.unet:
            return cfg
        depth = g.num_downsampling
        while depth > MIN_DOWNS and image_size % 2**depth:
            depth -= 1
        if depth != g.num_downsampling:
            logger.info(f"pix2pix: a U-Net of {g.num_downsampling} levels at {image_size} px has {depth}")
        return dataclasses.replace(cfg, generator=dataclasses.replace(g, num_downsampling=depth))

    def __init__(self, cfg: TrainConfig, data: MethodData, placement: Placement) -> None:
        super().__init__(cfg, data, placement)
        keys = (FORWARD, BACKWARD)[: 1 + self.both_directions]
        conditional = dataclasses.replace(cfg.discriminator, in_channels=cfg.generator.in_channels + 1)  # (x, y)
        gens = {key: build_generator(cfg.generator) for key in keys}
        discs = {"disc_t": build_discriminator(conditional)}
        if self.both_directions:
            discs["disc_s"] = build_discriminator(conditional)
        self.generators = placement.place(Networks(**gens))
        self.discriminators = placement.place(Networks(**discs))
        self.compile()
        self.optimizers = self.adam()

    def step(
        self, real_s: torch.Tensor, real_t: torch.Tensor, autocast: torch.autocast, measure_gradients: bool
    ) -> tuple[Tensors, Tensors]:
        p, mode = self.cfg.pix2pix, self.cfg.loss.gan_mode.value
        models = [("s2t", FORWARD, "disc_t", real_s, real_t)]  # the slices are paired: real_t is real_s's target
        if self.both_directions:
            models.append(("t2s", BACKWARD, "disc_s", real_t, real_s))
        with autocast:
            fakes = [self.translator(key)(x) for _, key, _, x, _ in models]
        d: Tensors = {}
        self.discriminators.requires_grad_(True)
        with autocast:
            for (_, _, disc, x, y), fake in zip(models, fakes):
                net = getattr(self.discriminators, disc)
                fake_pair, real_pair = torch.cat([x, fake.detach()], 1), torch.cat([x, y], 1)
                d[disc] = 0.5 * (gan_loss(net(fake_pair), False, mode) + gan_loss(net(real_pair), True, mode))
            d["total_d"] = sum(d.values())
        update(self.optimizers["disc"], d["total_d"])
        self.discriminators.requires_grad_(False)
        g: Tensors = {}
        with autocast:
            for (name, _, disc, x, y), fake in zip(models, fakes):
                g[f"gan_{name}"] = gan_loss(getattr(self.discriminators, disc)(torch.cat([x, fake], 1)), True, mode)
                g[f"l1_{name}"] = torch.nn.functional.l1_loss(fake, y)
            terms = {
                "adversarial": p.lambda_gan * sum(g[f"gan_{name}"] for name, *_ in models),
                "l1": p.lambda_l1 * sum(g[f"l1_{name}"] for name, *_ in models),
            }
            g["total_g"] = terms["adversarial"] + terms["l1"]
        if measure_gradients:
            g |= gradient_norms(terms, fakes)
        update(self.optimizers["gen"], g["total_g"])
        return g, d


METHOD = Pix2PixMethod
