"""UNIT, DiscoGAN and DistanceGAN (issue 14): networks and losses on tiny tensors, a few hundred CPU steps,
translate and evaluate on their checkpoints."""

from __future__ import annotations

import pytest
import torch

from mrtrans.config import TrainConfig, load_config
from mrtrans.errors import MrtransError
from mrtrans.networks.unit import UnitModel, UnitTranslator


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
