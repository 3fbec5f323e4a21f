"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020): contrastive unpaired translation, one direction per model.

G translates x into y's domain; D is a PatchGAN on y's domain; a PatchNCE loss (:mod:`mrtrans.losses.patchnce`)
asks that a patch of G(x), encoded by G's own encoder and projected by an MLP head, match the patch of x at the
same location better than 255 other patches of x. Facts from the authors' code
(taesungp/contrastive-unpaired-translation, ``models/cut_model.py``):

* per step: G translates x (and y, with the identity term) once; D is updated on that translation first, then
  G and the MLP head on ``lambda_gan * GAN(D(G(x))) + NCE`` with the updated D (least squares, no image pool);
* NCE = mean over layers of the mean PatchNCE loss, times ``lambda_nce``; with ``nce_idt`` the average of
  NCE(x, G(x)) and NCE(y, G(y)); 256 locations per layer, the same for query and key, temperature 0.07;
* layers: the authors' ``0,4,8,12,16`` of their anti-aliased ResNet are the padded input, the two downsampling
  convolutions, the first and the fifth residual block; here the same five points of CycleGAN's ResNet (the fifth
  block is the last one when the generator has fewer);
* FastCUT: lambda_nce 10, no identity term, flip equivariance (half the batches flipped, query features flipped back).

Departures: the generator keeps CycleGAN's N(0, 0.02) initialisation (the authors' CUT uses Xavier) and
CycleGAN's transposed-convolution upsampling; the locations and flips are drawn from a seeded torch generator
(the authors use numpy's global one), saved in checkpoints so a resumed run continues exactly. With
``both_directions`` (default) the reverse direction's own G, head and D train in the same steps, independently
(no term couples them). It trains in one process (no torchrun).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrtrans.config import GeneratorArchitecture, Method, TrainConfig
from mrtrans.errors import MrtransError
from mrtrans.losses.adversarial import gan_loss
from mrtrans.losses.patchnce import PatchProjector, patch_nce_loss, sample_locations
from mrtrans.methods import BACKWARD, FORWARD, MethodData, Networks, Placement, Tensors, TrainingMethod
from mrtrans.methods.steps import gradient_norms, update
from mrtrans.models import build_discriminator, build_generator


def nce_layers(cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """Indices into ``ResnetGenerator.model`` of the five NCE layers and their channel counts."""
    g = cfg.generator
    downs = [4 + 3 * i for i in range(g.num_downsampling)]  # each downsampling convolution's output
    first_block = 4 + 3 * g.num_downsampling
    layers = [0, *downs, first_block, first_block + min(4, g.num_res_blocks - 1)]
    channels = [g.in_channels, *(g.base_channels * 2 ** (i + 1) for i in range(g.num_downsampling))]
    channels += [g.base_channels * 2**g.num_downsampling] * 2
    return layers, channels


def encoder_features(generator: nn.Module, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """The outputs of ``generator.model``'s layers ``layers`` for input ``x`` (the encoder part only is run)."""
    features, out = [], x
    for index, layer in enumerate(generator.model[: max(layers) + 1]):
        out = layer(out)
        if index in layers:
            features.append(out)
    return features


class CutMethod(TrainingMethod):
    method = Method.cut
    two_way = False
    distributed = False

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        if cfg.generator.architecture is not GeneratorArchitecture.resnet:
            raise MrtransError(
                f"config key 'generator.architecture': CUT takes its NCE features from the ResNet generator's "
                f"encoder, not {cfg.generator.architecture.value}; use resnet"
            )

    @classmethod
    def kind(cls, cfg: TrainConfig) -> str:
        return "cut" if cfg.cut.nce_idt else "fastcut"

    def __init__(self, cfg: TrainConfig, data: MethodData, placement: Placement) -> None:
        super().__init__(cfg, data, placement)
        keys = (FORWARD, BACKWARD)[: 1 + self.both_directions]
        self.layers, channels = nce_layers(cfg)
        gens = {key: build_generator(cfg.generator) for key in keys}
        discs = {"disc_t": build_discriminator(cfg.discriminator)}  # judges gen_s2t's translations
        if self.both_directions:
            discs["disc_s"] = build_discriminator(cfg.discriminator)
        heads = {key.replace("gen", "proj"): PatchProjector(channels) for key in keys}
        self.generators = placement.place(Networks(**gens, **heads))
        self.discriminators = placement.place(Networks(**discs))
        self.compile()
        self.optimizers = self.adam()  # G and its MLP head in one Adam: element-wise, so the authors' two
        self.rng = torch.Generator().manual_seed(cfg.run.seed * 1000 + placement.rank)

    def _nce(self, key: str, src: torch.Tensor, out: torch.Tensor, flipped: bool) -> torch.Tensor:
        gen, head, c = self.translator(key), getattr(self.generators, key.replace("gen", "proj")), self.cfg.cut
        query = encoder_features(gen, out, self.layers)
        if flipped:
            query = [torch.flip(f, [3]) for f in query]
        keys = encoder_features(gen, src, self.layers)
        ids = [sample_locations(f.shape[2], f.shape[3], c.num_patches, self.rng) for f in keys]
        q, k = head(query, ids), head(keys, ids)
        return sum(patch_nce_loss(a, b, c.temperature).mean() for a, b in zip(q, k)) / len(q)  # mean over layers

    def step(
        self, real_s: torch.Tensor, real_t: torch.Tensor, autocast: torch.autocast, measure_gradients: bool
    ) -> tuple[Tensors, Tensors]:
        c, mode = self.cfg.cut, self.cfg.loss.gan_mode.value
        models = [("s2t", FORWARD, "disc_t", real_s, real_t)]
        if self.both_directions:
            models.append(("t2s", BACKWARD, "disc_s", real_t, real_s))
        forwards = []
        with autocast:
            for name, key, disc, x, y in models:
                real = torch.cat([x, y]) if c.nce_idt else x
                flipped = c.flip_equivariance and bool(torch.rand((), generator=self.rng) < 0.5)
                if flipped:
                    real = torch.flip(real, [3])
                out = self.translator(key)(real)
                forwards.append((name, key, disc, x, y, out[: len(x)], out[len(x) :], flipped))
        # D first, on the detached translations (the authors' order)
        d: Tensors = {}
        self.discriminators.requires_grad_(True)
        with autocast:
            for _, _, disc, _, y, fake, _, _ in forwards:
                net = getattr(self.discriminators, disc)
                d[disc] = 0.5 * (gan_loss(net(fake.detach()), False, mode) + gan_loss(net(y), True, mode))
            d["total_d"] = sum(d.values())
        update(self.optimizers["disc"], d["total_d"])
        # then G and its MLP head, against the updated D
        self.discriminators.requires_grad_(False)
        g: Tensors = {}
        with autocast:
            for name, key, disc, x, y, fake, idt, flipped in forwards:
                g[f"gan_{name}"] = gan_loss(getattr(self.discriminators, disc)(fake), True, mode)
                g[f"nce_{name}"] = self._nce(key, x, fake, flipped)
                if c.nce_idt:
                    g[f"nce_idt_{name}"] = self._nce(key, y, idt, flipped)
            terms = {
                "adversarial": c.lambda_gan * sum(g[f"gan_{name}"] for name, *_ in forwards),
                "nce": c.lambda_nce
                * sum(
                    (g[f"nce_{name}"] + g[f"nce_idt_{name}"]) / 2 if c.nce_idt else g[f"nce_{name}"]
                    for name, *_ in forwards
                ),
            }
            g["total_g"] = terms["adversarial"] + terms["nce"]
        if measure_gradients:
            g |= gradient_norms(terms, [f[5] for f in forwards])
        update(self.optimizers["gen"], g["total_g"])
        return g, d

    def extra_state(self) -> dict[str, Any]:
        return {"cut_rng": self.rng.get_state()}

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        if self.placement.world == 1 and "cut_rng" in ckpt:
            self.rng.set_state(ckpt["cut_rng"].cpu())


METHOD = CutMethod
