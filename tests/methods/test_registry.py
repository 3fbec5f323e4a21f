"""The method interface (issue 27): every method trains through ``mrtrans.methods`` exactly as before the move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from method_losses import METHODS, method_losses

from mrtrans.config import Method, TrainConfig, load_config
from mrtrans.methods import method_class

BEFORE = json.loads((Path(__file__).parent / "method_losses_v0.3.json").read_text())


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_bit_identically_to_before_the_interface(
    method: str, prepared: Path, tmp_path: Path
) -> None:
    now = method_losses(prepared, tmp_path, method)
    assert now["losses"] == BEFORE[method]["losses"]  # every logged loss of 3 seeded steps, exactly
    assert now["weights"] == BEFORE[method]["weights"]  # and the weights the last step left


def test_every_method_enum_value_has_its_module() -> None:
    for method in Method:
        cls = method_class(method)
        assert cls.method is method


def test_a_cycle_run_is_named_by_every_term_it_trains_with() -> None:
    kind = method_class(Method.cycle).kind
    assert kind(load_config(TrainConfig, "cyclegan")) == "cyclegan"
    assert kind(load_config(TrainConfig, "harmonicgan_hist")) == "harmonicgan-histogram"
    assert kind(load_config(TrainConfig, "distancegan")) == "distancegan"
    # mrtrans < 0.4 called this "distancegan": the smoothness term was left out of the name
    both = load_config(TrainConfig, "harmonicgan_hist", {"loss.lambda_distance": 1.0})
    assert kind(both) == "harmonicgan-histogram+distance"


def test_configs_of_older_versions_name_the_cycle_step_harmonicgan() -> None:
    assert load_config(TrainConfig, {"method": "harmonicgan"}).method is Method.cycle
