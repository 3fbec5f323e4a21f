"""UNIT, DiscoGAN and DistanceGAN (issue 14): networks and losses on tiny tensors, a few hundred CPU steps,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from mrtrans.config import LossConfig, TrainConfig, UnitLossConfig, load_config
from mrtrans.data.slices import Direction
from mrtrans.errors import MrtransError
from mrtrans.losses.cycle import cycle_loss
from mrtrans.losses.distance import distance_loss, distance_statistics, half_distances, pairwise_distances
from mrtrans.networks.discogan import DiscoDiscriminator, DiscoGenerator
from mrtrans.networks.unit import UnitModel, UnitTranslator
from mrtrans.training.step import (
    Discriminators,
    distance_term,
    kl_loss,
    unit_generator_losses,
    unit_optimisation_step,
)

# ---------------------------------------------------------------- networks


def test_discogan_shapes() -> None:
    gen = DiscoGenerator(1, 1, base_channels=8, num_downsampling=4)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    y = gen(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert DiscoDiscriminator(1, 8, 4)(x).shape == (2, 1, 1, 1)  # the paper's 64x64: one score
    assert DiscoDiscriminator(1, 8, 4)(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 13, 13)


def test_unit_shares_its_high_level_layers_once() -> None:
    model = UnitModel(1, base_channels=8, num_res_blocks=3)
    assert model.gen_s2t.shared_encoder is model.gen_t2s.shared_encoder is model.shared_enc
    assert model.gen_s2t.shared_decoder is model.gen_t2s.shared_decoder is model.shared_dec
    assert model.gen_s2t.decoder is model.dec_t and model.gen_t2s.encoder is model.enc_t
    n_params = sum(p.numel() for p in model.parameters())
    per_direction = sum(p.numel() for p in model.gen_s2t.parameters())
    shared = sum(p.numel() for p in [*model.shared_enc.parameters(), *model.shared_dec.parameters()])
    assert n_params == 2 * per_direction - shared  # the tied layers are counted once
    out = model(torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 32))
    assert out["mu_s"].shape == (2, 32, 8, 8) and out["cyc_t"].shape == (2, 1, 32, 32)


def test_unit_translator_is_deterministic_and_loads_from_the_view() -> None:
    model = UnitModel(1, base_channels=8, num_res_blocks=2).eval()
    alone = UnitTranslator.build(1, 1, 8, 2).eval()
    alone.load_state_dict(model.gen_s2t.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(alone(x), model.gen_s2t(x))
        torch.testing.assert_close(model.gen_s2t(x), model.gen_s2t(x))  # the mean, no sampling


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "unit"}, "UNIT's step needs UNIT's networks"),
        ({"generator": {"architecture": "unit"}}, "UNIT's step needs UNIT's networks"),
        ({"method": "unit", "generator": {"architecture": "unit", "num_res_blocks": 1}}, "at least 2"),
    ],
)
def test_unit_config_is_consistent(change: dict, message: str) -> None:
    with pytest.raises(MrtransError, match=message):
        load_config(TrainConfig, [change])


# ---------------------------------------------------------------- losses at known points


def test_kl_and_reconstruction_at_known_points() -> None:
    assert float(kl_loss(torch.zeros(2, 4, 3, 3))) == 0.0
    assert float(kl_loss(torch.full((2, 4, 3, 3), 2.0))) == 4.0
    a, b = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert float(cycle_loss(a, b, "l1")) == 0.5 and float(cycle_loss(a, b, "mse")) == 0.25


def test_distances_at_known_points() -> None:
    x = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 1.0, 3.0)])
    torch.testing.assert_close(pairwise_distances(x), torch.tensor([1.0, 3.0, 2.0]))
    halves = torch.zeros(1, 1, 4, 4)
    halves[:, :, 2:] = 1.0  # x-axis halves differ by 1
    torch.testing.assert_close(half_distances(halves), torch.tensor([1.0]))
    # An isometry between domains with the same statistics costs nothing; doubling all distances does.
    stats = (2.0, 1.0)
    assert float(distance_loss(x, x, stats, stats, "pairs")) == 0.0
    assert float(distance_loss(x, 2 * x, stats, stats, "pairs")) == pytest.approx((1 + 3 + 2) / 3)
    assert float(distance_loss(x, 2 * x, stats, (4.0, 2.0), "pairs")) == pytest.approx(0.0)  # normalised away


def test_distance_statistics() -> None:
    images = np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 1.0)])
    mean, std = distance_statistics(images, "pairs", max_items=50)
    assert mean == pytest.approx(1.0) and std == pytest.approx(1e-6)
    halves = np.zeros((3, 4, 4), np.float32)
    halves[:, 2:] = np.array([1.0, 2.0, 3.0])[:, None, None]
    assert distance_statistics(halves, "self")[0] == pytest.approx(2.0)


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


# ---------------------------------------------------------------- training, translate, evaluate

METHODS = {  # method config -> the loss that must fall over a few hundred steps
    "unit": "rec_s",
    "discogan": "cycle_s",
    "distancegan": "distance_s2t",
    "distancegan_cycle": "cycle_s",
}
STEPS = 200


@pytest.fixture(scope="module")
def method_runs(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each new method trained STEPS steps on the suite's small prepared set (tiny networks)."""
    from mrtrans.training.loop import train

    folder = tmp_path_factory.mktemp("methods")
    runs = {}
    for method in METHODS:
        generator = {"base_channels": 8} if method == "discogan" else {"base_channels": 8, "num_res_blocks": 2}
        small = {
            "generator": generator,
            "discriminator": {"base_channels": 8},
            "run": {"max_steps": STEPS, "log_every": 1, "sample_every": 10_000, "checkpoint_every": 10_000},
        }
        train(
            prepared,
            folder / method,
            Direction.parse("flair2t1"),
            load_config(TrainConfig, [method, small]),
            show_progress=False,
        )
        runs[method] = folder / method
    return runs


@pytest.mark.parametrize("method", list(METHODS))
def test_a_few_hundred_steps_reduce_the_reconstruction_loss(method_runs: dict[str, Path], method: str) -> None:
    with open(method_runs[method] / "losses.csv") as f:
        values = [float(row[METHODS[method]]) for row in csv.DictReader(f)]
    assert len(values) == STEPS
    first, last = np.mean(values[:20]), np.mean(values[-20:])
    assert last < 0.95 * first, (first, last)


def test_translate_and_evaluate_use_every_method(
    method_runs: dict[str, Path], prepared: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import evaluate, translate_files
    from mrtrans.checkpoint import load_checkpoint

    flair = sorted(synth_root.glob("*/*_flair.nii.gz"))[0]
    kinds = {}
    for method, run in method_runs.items():
        kinds[method] = load_checkpoint(run)["kind"]
        for direction in ("flair2t1", "t12flair"):
            report = translate_files(
                flair, tmp_path / f"{method}_{direction}.nii.gz", run, direction=direction, device="cpu"
            )
            assert report.written and not report.failed, report.failed
    assert kinds == {
        "unit": "unit",
        "discogan": "discogan",
        "distancegan": "distancegan",
        "distancegan_cycle": "distancegan-cycle",
    }
    folder = evaluate(list(method_runs.values()), prepared, tmp_path / "report", audit=False, log=lambda _: None)
    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary["run"]) == {"copy-source", *METHODS}
