"""Losses of every method over a few seeded steps, for the method-interface test (``test_registry.py``).

``method_losses_v0.3.json`` was written by this module at mrtrans 0.3.0, before the methods moved onto
``mrtrans.methods`` (``python tests/methods/method_losses.py OUT.json``); the test trains the same runs with
today's code and compares every logged loss within a stated cross-CPU tolerance (bit-identity is checked
between two runs on one machine).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import torch

from helpers import SMALL_PREPARE, SMALL_SHAPE, TINY

METHODS = ("cyclegan", "harmonicgan_hist", "harmonicgan_vgg", "discogan", "distancegan", "distancegan_cycle", "unit")
STEPS = 3


def prepared_set(folder: Path) -> Path:
    """The suite's ``prepared`` fixture, rebuilt (same subjects, same recipe)."""
    from mrtrans.config import PrepareConfig, SynthConfig
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.synth import write_synthetic_brats

    root = folder / "brats"
    write_synthetic_brats(root, SynthConfig(subjects=8, shape=SMALL_SHAPE, tumor_fraction=0.75, seed=7))
    prepare_brats(root, folder / "prepared", PrepareConfig(**SMALL_PREPARE))
    return folder / "prepared"


def vgg_file(path: Path) -> Path:
    """Seeded random weights in torchvision's VGG-16 layout (nothing is downloaded)."""
    from mrtrans.networks.vgg import VGG16Relu43

    torch.manual_seed(1)
    torch.save(VGG16Relu43().state_dict(), path)
    return path


def method_losses(
    prepared: Path, folder: Path, method: str, overrides: dict[str, object] | None = None
) -> dict[str, object]:
    """Train ``method`` (TINY networks, seed 0, one thread) STEPS steps: its losses.csv rows and, per network of
    its last checkpoint, the float64 sum of the weights. ``overrides``: dotted config keys on top."""
    from mrtrans.config import TrainConfig, load_config
    from mrtrans.domain import Direction
    from mrtrans.training.loop import train

    tiny = {k: dict(v) for k, v in TINY.items()}
    if method == "discogan":
        tiny["generator"] = {"base_channels": 8}
        tiny["discriminator"] = {"base_channels": 8}
    if method == "harmonicgan_vgg":
        tiny["loss"] = {"vgg_weights": str(vgg_file(folder / "vgg16.pth"))}
    cfg = load_config(TrainConfig, [method, tiny], {"run.max_steps": STEPS, **(overrides or {})})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same reduction order whatever the machine's cores
    try:
        train(prepared, folder / method, Direction.parse("flair2t1"), cfg, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    from mrtrans.checkpoint import load_checkpoint

    with open(folder / method / "losses.csv") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    models = load_checkpoint(folder / method)["models"]
    sums = {name: float(sum(t.double().sum() for t in state.values())) for name, state in sorted(models.items())}
    return {"losses": rows, "weights": sums}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        data = prepared_set(Path(tmp))
        losses = {m: method_losses(data, Path(tmp), m) for m in METHODS}
    Path(sys.argv[1]).write_text(json.dumps(losses, indent=1) + "\n")
