"""One HarmonicGAN training step. CycleGAN is the same step with lambda_smooth = 0.

Names: domains are ``source`` (s) and ``target`` (t). In the paper's notation (Sec. 3) for X = source,
Y = target: ``gen_s2t`` = G, ``gen_t2s`` = F, ``disc_t`` = D_Y, ``disc_s`` = D_X.

    L_HarmonicGAN = lambda_gan (L_GAN(G, D_Y) + L_GAN(F, D_X))         Eq. 1-3, least squares
                  + lambda_cycle (||F(G(x)) - x||_1 + ||G(F(y)) - y||_1)  Eq. 4
                  + lambda_smooth (L_smooth(G, X, Y) + L_smooth(F, Y, X))  Eq. 6-8
                  [+ lambda_identity * lambda_cycle (||G(y) - y||_1 + ||F(x) - x||_1)]

At logging steps the step also measures how hard each weighted term pulls on the translations:
the L2 norm of its gradient w.r.t. G(x) and F(y) together (``grad_adversarial``, ``grad_cycle``,
``grad_smoothness``). The identity term has no path to the translations (it acts on G(y) and
F(x)), so it has no such norm.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mrtrans.config import LossConfig, SmoothFeatures, UnitLossConfig, graph_patch_size
from mrtrans.losses.adversarial import gan_loss
from mrtrans.losses.cycle import cycle_loss, identity_loss
from mrtrans.losses.distance import distance_loss
from mrtrans.losses.smoothness import cnn_patch_features, histogram_features, smoothness_loss

if TYPE_CHECKING:
    from mrtrans.methods.pool import ImagePool

Tensors = dict[str, torch.Tensor]


class Generators(nn.Module):
    """Both generators behind one forward, so that one DDP wrapper sees one forward per backward."""

    def __init__(self, gen_s2t: nn.Module, gen_t2s: nn.Module) -> None:
        super().__init__()
        self.gen_s2t, self.gen_t2s = gen_s2t, gen_t2s

    def forward(self, real_s: torch.Tensor, real_t: torch.Tensor, identity: bool = False) -> Tensors:
        """Translations and reconstructions of both domains, (B, 1, H, W) each."""
        fake_t = self.gen_s2t(real_s)  # G(x)
        fake_s = self.gen_t2s(real_t)  # F(y)
        out = {"fake_t": fake_t, "rec_s": self.gen_t2s(fake_t), "fake_s": fake_s, "rec_t": self.gen_s2t(fake_s)}
        if identity:
            out["idt_t"] = self.gen_s2t(real_t)
            out["idt_s"] = self.gen_t2s(real_s)
        return out


class Discriminators(nn.Module):
    """Both discriminators behind one forward (real and pooled fake of each domain)."""

    def __init__(self, disc_s: nn.Module, disc_t: nn.Module) -> None:
        super().__init__()
        self.disc_s, self.disc_t = disc_s, disc_t

    def forward(
        self, real_s: torch.Tensor, fake_s: torch.Tensor, real_t: torch.Tensor, fake_t: torch.Tensor
    ) -> Tensors:
        return {
            "real_s": self.disc_s(real_s),
            "fake_s": self.disc_s(fake_s),
            "real_t": self.disc_t(real_t),
            "fake_t": self.disc_t(fake_t),
        }


def patch_features(
    cfg: LossConfig, vgg: nn.Module | None = None, value_range: tuple[float, float] = (-1.0, 1.0)
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The feature function of the smoothness graph chosen by ``cfg.smooth_features``."""
    if cfg.smooth_features is SmoothFeatures.histogram:
        return functools.partial(
            histogram_features, patch_size=cfg.patch_size, bins=cfg.histogram_bins, value_range=value_range
        )
    if vgg is None:
        raise ValueError("VGG features need the VGG network")

    def vgg_features(x: torch.Tensor) -> torch.Tensor:
        return cnn_patch_features(vgg(x), tuple(x.shape[-2:]), cfg.patch_size)

    return vgg_features


Smoothness = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
DistanceTerm = Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]  # (x, G(x), "s2t" | "t2s") -> loss


def distance_term(cfg: LossConfig, stats: dict[str, tuple[float, float]], batch_size: int) -> DistanceTerm:
    """DistanceGAN's term for both directions, with each domain's distance statistics (``stats["s"]``, ``["t"]``)."""
    mode = distance_mode(cfg, batch_size)

    def term(x: torch.Tensor, gx: torch.Tensor, direction: str) -> torch.Tensor:
        src, tgt = ("s", "t") if direction == "s2t" else ("t", "s")
        return distance_loss(x, gx, stats[src], stats[tgt], mode)

    return term


def distance_mode(cfg: LossConfig, batch_size: int) -> str:
    """The distance form a run uses (``auto``: pairs with batches of several images, else halves)."""
    mode = cfg.distance_mode.value
    return ("pairs" if batch_size > 1 else "self") if mode == "auto" else mode


def smoothness_term(
    cfg: LossConfig, vgg: nn.Module | None = None, value_range: tuple[float, float] = (-1.0, 1.0)
) -> Smoothness:
    """(x, G(x), F(G(x))) -> one direction of Eq. 6 with the configured features and normalisation.

    ``value_range`` is the prepared intensity range; its low end is the background. An unset
    ``cfg.patch_size`` is resolved from the images' size at each call (:func:`mrtrans.config.graph_patch_size`);
    the training loop resolves it once and records it.
    """
    if cfg.patch_size is None:

        def resolved(x: torch.Tensor, gx: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
            sized = dataclasses.replace(cfg, patch_size=graph_patch_size(x.shape[-1]))
            return smoothness_term(sized, vgg, value_range)(x, gx, rec)

        return resolved
    return functools.partial(
        smoothness_loss,
        features=patch_features(cfg, vgg, value_range),
        sigma=cfg.sigma,
        normalization=cfg.smooth_normalization.value,
        patch_size=cfg.patch_size,
        background=value_range[0],
        min_fraction=cfg.brain_patch_fraction,
        detach_translated_graph=cfg.detach_translated_graph,
    )


def weighted_terms(losses: Tensors, cfg: LossConfig) -> Tensors:
    """The terms of Eq. 9 as they enter the generators' objective (their sum is ``total_g``)."""
    terms = {
        "adversarial": cfg.lambda_gan * (losses["gan_s2t"] + losses["gan_t2s"]),
        "cycle": cfg.lambda_cycle * (losses["cycle_s"] + losses["cycle_t"]),
    }
    if "identity_t" in losses:
        terms["identity"] = cfg.lambda_identity * cfg.lambda_cycle * (losses["identity_t"] + losses["identity_s"])
    if "smooth_s2t" in losses:
        terms["smoothness"] = cfg.lambda_smooth * (losses["smooth_s2t"] + losses["smooth_t2s"])  # Eq. 8-9
    if "distance_s2t" in losses:
        terms["distance"] = cfg.lambda_distance * (losses["distance_s2t"] + losses["distance_t2s"])  # DistanceGAN
    return terms


def generator_losses(
    out: Tensors,
    real_s: torch.Tensor,
    real_t: torch.Tensor,
    disc_s: nn.Module,
    disc_t: nn.Module,
    cfg: LossConfig,
    smoothness: Smoothness | None,
    distance: DistanceTerm | None = None,
) -> Tensors:
    """Losses of G and F for one batch (unweighted); ``total_g`` is what is back-propagated."""
    mode = cfg.gan_mode.value
    losses = {
        "gan_s2t": gan_loss(disc_t(out["fake_t"]), True, mode),  # Eq. 3, G fools D_Y
        "gan_t2s": gan_loss(disc_s(out["fake_s"]), True, mode),
        "cycle_s": cycle_loss(out["rec_s"], real_s, cfg.cycle_distance.value),  # Eq. 4
        "cycle_t": cycle_loss(out["rec_t"], real_t, cfg.cycle_distance.value),
    }
    if cfg.lambda_identity > 0:
        losses["identity_t"] = identity_loss(out["idt_t"], real_t)
        losses["identity_s"] = identity_loss(out["idt_s"], real_s)
    if cfg.lambda_smooth > 0:
        if smoothness is None:
            raise ValueError("lambda_smooth > 0 needs a smoothness term")
        losses["smooth_s2t"] = smoothness(real_s, out["fake_t"], out["rec_s"])  # Eq. 6
        losses["smooth_t2s"] = smoothness(real_t, out["fake_s"], out["rec_t"])  # Eq. 7
    if cfg.lambda_distance > 0:
        if distance is None:
            raise ValueError("lambda_distance > 0 needs the domains' distance statistics")
        losses["distance_s2t"] = distance(real_s, out["fake_t"], "s2t")
        losses["distance_t2s"] = distance(real_t, out["fake_s"], "t2s")
    losses["total_g"] = sum(weighted_terms(losses, cfg).values())
    return losses


def gradient_norms(terms: Tensors, images: list[torch.Tensor]) -> Tensors:
    """L2 norm of each term's gradient w.r.t. ``images`` together (the graph is kept for backward).

    Returns:
        ``grad_<term>`` -> scalar tensor; terms that do not reach the images are left out.
    """
    norms = {}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, images, retain_graph=True, allow_unused=True)
        if all(g is None for g in grads):
            continue
        norms[f"grad_{name}"] = torch.sqrt(sum(g.float().pow(2).sum() for g in grads if g is not None))
    return norms


def discriminator_losses(pred: Tensors, mode: str) -> Tensors:
    """Least-squares losses of D_X and D_Y on real and pooled fake images (halved, as in CycleGAN)."""
    d_s = 0.5 * (gan_loss(pred["real_s"], True, mode) + gan_loss(pred["fake_s"], False, mode))
    d_t = 0.5 * (gan_loss(pred["real_t"], True, mode) + gan_loss(pred["fake_t"], False, mode))
    return {"disc_s": d_s, "disc_t": d_t, "total_d": d_s + d_t}


def optimisation_step(
    gens: nn.Module,
    discs: nn.Module,
    generators: Generators,
    discriminators: Discriminators,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    pool_s: ImagePool,
    pool_t: ImagePool,
    real_s: torch.Tensor,
    real_t: torch.Tensor,
    cfg: LossConfig,
    smoothness: Smoothness | None,
    autocast: torch.autocast,
    measure_gradients: bool = False,
    distance: DistanceTerm | None = None,
) -> tuple[Tensors, Tensors]:
    """One update of G and F, then of D_X and D_Y (CycleGAN's order).

    ``gens``/``discs`` are what is called (the DDP wrappers under torchrun, else the modules
    themselves); ``generators``/``discriminators`` are the plain modules. With ``measure_gradients``
    the generator losses also hold each term's gradient norm w.r.t. the translations (a logging
    step's extra cost: one partial backward per term). Returns the generator and discriminator losses.
    """
    # Generators G and F (Eq. 9), discriminators frozen; they are called unwrapped so that DDP
    # sees exactly one forward and one backward per wrapper and step.
    discriminators.requires_grad_(False)
    with autocast:
        fakes = gens(real_s, real_t, cfg.lambda_identity > 0)
        g = generator_losses(
            fakes, real_s, real_t, discriminators.disc_s, discriminators.disc_t, cfg, smoothness, distance
        )
    if measure_gradients:
        g |= gradient_norms(weighted_terms(g, cfg), [fakes["fake_t"], fakes["fake_s"]])
    update(opt_g, g["total_g"])
    # Discriminators D_X and D_Y on real images and fakes from the history pools.
    discriminators.requires_grad_(True)
    fake_s, fake_t = pool_s.query(fakes["fake_s"]), pool_t.query(fakes["fake_t"])
    with autocast:
        d = discriminator_losses(discs(real_s, fake_s, real_t, fake_t), cfg.gan_mode.value)
    update(opt_d, d["total_d"])
    return g, d


def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Back-propagate ``loss`` and take one step of ``optimizer`` (gradients cleared first)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# ----------------------------------------------------------------------------------------------- UNIT


def kl_loss(mu: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, I) || N(0, I)) per latent element up to the factor 1/2: mean(mu^2) (UNIT Eq. 3-4, 7-8)."""
    return mu.pow(2).mean()


def unit_generator_losses(
    out: Tensors,
    real_s: torch.Tensor,
    real_t: torch.Tensor,
    disc_s: nn.Module,
    disc_t: nn.Module,
    cfg: UnitLossConfig,
    gan_mode: str,
) -> Tensors:
    """UNIT's encoder/generator objective (Eq. 2): VAE, GAN and cycle-consistency terms of both domains.

    L_VAE1 = l1 KL(q1(z1|x1)) + l2 |G1(z1) - x1|_1                                     (Eq. 3, Laplacian likelihood)
    L_GAN1 = l0 GAN(D1(G1(z2)))                                                      (Eq. 5, translation stream)
    L_CC1  = l3 KL(q1(z1|x1)) + l3 KL(q2(z2|x1->2)) + l4 |G1(z2 ~ q2(z2|x1->2)) - x1|_1  (Eq. 7)
    and the same with 1 <-> 2. Domain 1 = source (s), 2 = target (t).
    """
    losses = {
        "gan_s2t": gan_loss(disc_t(out["fake_t"]), True, gan_mode),
        "gan_t2s": gan_loss(disc_s(out["fake_s"]), True, gan_mode),
        "kl_s": kl_loss(out["mu_s"]),
        "kl_t": kl_loss(out["mu_t"]),
        "rec_s": F.l1_loss(out["rec_s"], real_s),
        "rec_t": F.l1_loss(out["rec_t"], real_t),
        "kl_cycle_s": kl_loss(out["mu_fake_t"]),  # KL(q2(z2 | x1->2))
        "kl_cycle_t": kl_loss(out["mu_fake_s"]),
        "cycle_s": F.l1_loss(out["cyc_s"], real_s),
        "cycle_t": F.l1_loss(out["cyc_t"], real_t),
    }
    losses["total_g"] = sum(unit_weighted_terms(losses, cfg).values())
    return losses


def unit_weighted_terms(losses: Tensors, cfg: UnitLossConfig) -> Tensors:
    kl = losses["kl_s"] + losses["kl_t"]
    return {
        "adversarial": cfg.lambda_gan * (losses["gan_s2t"] + losses["gan_t2s"]),
        "kl": (cfg.lambda_kl + cfg.lambda_cycle_kl) * kl
        + cfg.lambda_cycle_kl * (losses["kl_cycle_s"] + losses["kl_cycle_t"]),
        "reconstruction": cfg.lambda_reconstruction * (losses["rec_s"] + losses["rec_t"]),
        "cycle": cfg.lambda_cycle_reconstruction * (losses["cycle_s"] + losses["cycle_t"]),
    }


def unit_optimisation_step(
    model: nn.Module,
    discs: nn.Module,
    unit: nn.Module,
    discriminators: Discriminators,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real_s: torch.Tensor,
    real_t: torch.Tensor,
    cfg: UnitLossConfig,
    gan_mode: str,
    autocast: torch.autocast,
    measure_gradients: bool = False,
) -> tuple[Tensors, Tensors]:
    """One update of UNIT's encoders and generators, then of D1 and D2 (the alternating scheme of Sec. 3).

    The discriminators see the current translations (UNIT keeps no image history)."""
    discriminators.requires_grad_(False)
    with autocast:
        out = model(real_s, real_t)
        g = unit_generator_losses(out, real_s, real_t, discriminators.disc_s, discriminators.disc_t, cfg, gan_mode)
    if measure_gradients:
        g |= gradient_norms(unit_weighted_terms(g, cfg), [out["fake_t"], out["fake_s"]])
    update(opt_g, g["total_g"])
    discriminators.requires_grad_(True)
    with autocast:
        d = discriminator_losses(discs(real_s, out["fake_s"].detach(), real_t, out["fake_t"].detach()), gan_mode)
    update(opt_d, d["total_d"])
    return g, d
