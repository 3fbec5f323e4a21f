"""UNIT, DiscoGAN and DistanceGAN (issue 14): networks and losses on tiny tensors, a few hundred CPU steps,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import pytest
import torch

from mrtrans.config import LossConfig, UnitLossConfig
from mrtrans.losses.cycle import cycle_loss
from mrtrans.methods.pool import ImagePool
from mrtrans.methods.steps import (
    Discriminators,
    distance_term,
    kl_loss,
    unit_generator_losses,
    unit_optimisation_step,
)
from mrtrans.networks.unit import UnitModel


def test_kl_and_reconstruction_at_known_points() -> None:
    assert float(kl_loss(torch.zeros(2, 4, 3, 3))) == 0.0
    assert float(kl_loss(torch.full((2, 4, 3, 3), 2.0))) == 4.0
    a, b = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert float(cycle_loss(a, b, "l1")) == 0.5 and float(cycle_loss(a, b, "mse")) == 0.25


def test_distance_term_reaches_only_its_own_generator() -> None:
    g_s2t, g_t2s = torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Conv2d(1, 1, 3, padding=1)
    term = distance_term(LossConfig(lambda_distance=1.0), {"s": (0.3, 0.1), "t": (0.2, 0.1)}, batch_size=2)
    x = torch.rand(2, 1, 8, 8)
    term(x, g_s2t(x), "s2t").backward()
    assert g_s2t.weight.grad is not None and g_t2s.weight.grad is None


def test_unit_gradients_reach_encoders_and_generators_not_discriminators() -> None:
    torch.manual_seed(0)
    model = UnitModel(1, base_channels=4, num_res_blocks=2)
    discs = Discriminators(torch.nn.Conv2d(1, 1, 3), torch.nn.Conv2d(1, 1, 3))
    opt_g = torch.optim.Adam(model.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(discs.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in discs.parameters()]
    x, y = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    discs.requires_grad_(False)
    out = model(x, y)
    g = unit_generator_losses(out, x, y, discs.disc_s, discs.disc_t, UnitLossConfig(), "vanilla")
    g["total_g"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.dim() > 1)
    assert all(p.grad is None for p in discs.parameters())
    # the whole step: the discriminators learn only from their own loss
    model.zero_grad()
    discs.requires_grad_(True)
    _, d = unit_optimisation_step(
        model,
        discs,
        model,
        discs,
        opt_g,
        opt_d,
        x,
        y,
        UnitLossConfig(),
        "vanilla",
        torch.autocast("cpu", enabled=False),
    )
    assert set(d) == {"disc_s", "disc_t", "total_d"}
    assert any(not torch.equal(a, b) for a, b in zip(before, discs.parameters()))


def _scalar_net(weight: float) -> torch.nn.Conv2d:
    net = torch.nn.Conv2d(1, 1, 1, bias=False)
    net.weight.data.fill_(weight)
    return net


def test_gradient_norms_match_a_hand_computation_on_a_tiny_model():
    """Generators and discriminators are 1x1 convolutions (x -> w x): every gradient has a closed form."""
    from mrtrans.config import LossConfig
    from mrtrans.methods.steps import Discriminators, Generators, optimisation_step, smoothness_term

    p, q, u, v = 0.9, 1.2, 0.7, 0.5  # G = p x, F = q y, D_Y = u y, D_X = v x
    gens = Generators(_scalar_net(p), _scalar_net(q))
    discs = Discriminators(_scalar_net(v), _scalar_net(u))
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16) * 1.6 - 0.8
    y = torch.rand(1, 1, 16, 16) * 1.6 - 0.8
    cfg = LossConfig(lambda_gan=1.5, lambda_cycle=10.0, lambda_smooth=3.0)
    smooth = smoothness_term(cfg)
    opts = [torch.optim.SGD(m.parameters(), lr=0.0) for m in (gens, discs)]
    g, _ = optimisation_step(
        gens,
        discs,
        gens,
        discs,
        *opts,
        ImagePool(0),
        ImagePool(0),
        x,
        y,
        cfg,
        smooth,
        torch.autocast("cpu", enabled=False),
        measure_gradients=True,
    )
    n = x.numel()
    fake_t, fake_s = p * x, q * y
    # Adversarial: 1.5 * (mean (u G(x) - 1)^2 + mean (v F(y) - 1)^2)
    adv = torch.cat([(2 * u * (u * fake_t - 1)).flatten(), (2 * v * (v * fake_s - 1)).flatten()]) * 1.5 / n
    # Cycle: 10 * (mean |q G(x) - x| + mean |p F(y) - y|)
    cyc = torch.cat([(q * torch.sign(q * fake_t - x)).flatten(), (p * torch.sign(p * fake_s - y)).flatten()]) * 10 / n
    assert g["grad_adversarial"].item() == pytest.approx(adv.norm().item(), rel=1e-5)
    assert g["grad_cycle"].item() == pytest.approx(cyc.norm().item(), rel=1e-5)
    # Smoothness: the translation enters Eq. 6 directly and through the reconstruction F(G(x)) = q G(x).
    leaf_t, leaf_s = fake_t.clone().requires_grad_(), fake_s.clone().requires_grad_()
    total = 3.0 * (smooth(x, leaf_t, q * leaf_t) + smooth(y, leaf_s, p * leaf_s))
    grads = torch.autograd.grad(total, [leaf_t, leaf_s])
    expected = torch.sqrt(sum(gr.pow(2).sum() for gr in grads))
    assert g["grad_smoothness"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert "grad_identity" not in g  # the identity term never reaches the translations
