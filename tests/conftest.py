"""Shared fixtures: tiny seeded synthetic BraTS subjects written to temp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from mrtrans.config import SynthConfig
from mrtrans.synth import write_synthetic_brats

from helpers import REAL_SAMPLE, SMALL_PREPARE, SMALL_SHAPE, TINY

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one worker per core, so one thread per worker
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # and in the commands the tests start
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic subjects (six with a tumor), BraTS 2020 layout. Read-only for tests."""
    root = tmp_path_factory.mktemp("synth") / "brats"
    write_synthetic_brats(root, SynthConfig(subjects=8, shape=SMALL_SHAPE, tumor_fraction=0.75, seed=7))
    return root


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


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def tiny_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HarmonicGAN-histogram run of 2 steps on ``prepared`` (TINY networks). Read-only for tests."""
    from mrtrans.config import TrainConfig, load_config
    from mrtrans.domain import Direction
    from mrtrans.training.loop import train

    folder = tmp_path_factory.mktemp("tiny_run")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cfg = load_config(TrainConfig, ["harmonicgan_hist", folder / "tiny.yaml"], {"run.max_steps": 2})
    train(prepared, folder / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    return folder / "run"


@pytest.fixture(scope="session")
def prepared_val(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth_root prepared as ``prepared`` plus validation patients (8 paired slices) and 16 paired training slices."""
    from mrtrans.config import PrepareConfig
    from mrtrans.data_prep.prepare import prepare_brats

    out = tmp_path_factory.mktemp("prepared_val") / "flair_t1"
    recipe = PrepareConfig(**SMALL_PREPARE, validation_fraction=0.25, validation_slices=8, paired_train_slices=16)
    prepare_brats(synth_root, out, recipe)
    return out


# `make test-fast` trains nothing (README): a test, or a fixture it requests, that runs the training loop or trains
# the audit's detector must be marked `slow`. Both are replaced for the whole session by guards that check the
# running test's marks.
_may_train: dict[str, object] = {"allowed": True, "test": None}


def pytest_runtest_setup(item: pytest.Item) -> None:  # runs before the item's fixtures are set up
    _may_train["allowed"] = any(item.iter_markers(name="slow")) or any(item.iter_markers(name="experiment"))
    _may_train["test"] = item.nodeid


def _guarded(what: str, real):
    def guarded(*args, **kwargs):
        if not _may_train["allowed"]:
            raise AssertionError(
                f"{_may_train['test']} {what}: mark it (or the test using the fixture that does) "
                "@pytest.mark.slow, since `make test-fast` trains nothing"
            )
        return real(*args, **kwargs)

    return guarded


@pytest.fixture(scope="session", autouse=True)
def _training_only_in_slow_tests():
    from mrtrans.evaluation import audit
    from mrtrans.training import loop

    real = {"loop": loop._train, "audit": audit.train_detector}
    loop._train = _guarded("runs the training loop", real["loop"])
    audit.train_detector = _guarded("trains the audit's detector", real["audit"])
    yield
    loop._train, audit.train_detector = real["loop"], real["audit"]
