"""Shared fixtures: tiny seeded synthetic BraTS subjects written to temp folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mrtrans.config import SynthConfig
from mrtrans.synth import write_synthetic_brats

SMALL_SHAPE = (64, 64, 40)
REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats_sample"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic subjects (six with a tumor), BraTS 2020 layout. Read-only for tests."""
    root = tmp_path_factory.mktemp("synth") / "brats"
    write_synthetic_brats(root, SynthConfig(subjects=8, shape=SMALL_SHAPE, tumor_fraction=0.75, seed=7))
    return root


SMALL_PREPARE = dict(
    train_slices=16, test_slices=12, image_size=64, min_tumor_pixels=10, min_brain_fraction=0.15, seed=0
)


@pytest.fixture(scope="session")
def prepared(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth_root prepared at 64x64 (16 training slices per domain, 12 paired test slices)."""
    from mrtrans.config import PrepareConfig
    from mrtrans.data_prep.prepare import prepare_brats

    out = tmp_path_factory.mktemp("prepared") / "flair_t1"
    prepare_brats(synth_root, out, PrepareConfig(**SMALL_PREPARE))
    return out


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real BraTS 2018 subjects in ../shared/data/brats_sample; skips when absent."""
    if not REAL_SAMPLE.is_dir() or not any(REAL_SAMPLE.glob("*/*_seg.nii*")):
        pytest.skip(f"real BraTS sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE


# A training config small enough for unit tests (seconds per run on a CPU).
TINY = {
    "generator": {"base_channels": 8, "num_res_blocks": 2},
    "discriminator": {"base_channels": 8, "num_layers": 2},
    "data": {"pool_size": 4},
    "optim": {"epochs_constant": 50, "epochs_decay": 50},
    "run": {"log_every": 1, "sample_every": 1000, "checkpoint_every": 1000},
}


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def tiny_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HarmonicGAN-histogram run of 2 steps on ``prepared`` (TINY networks). Read-only for tests."""
    from mrtrans.config import TrainConfig, load_config
    from mrtrans.data.slices import Direction
    from mrtrans.training.loop import train

    folder = tmp_path_factory.mktemp("tiny_run")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cfg = load_config(TrainConfig, ["harmonicgan_hist", folder / "tiny.yaml"], {"run.max_steps": 2})
    train(prepared, folder / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    return folder / "run"
