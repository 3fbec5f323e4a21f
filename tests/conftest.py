"""Shared fixtures: tiny seeded synthetic BraTS subjects written to temp folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrtrans.config import SynthConfig
from mrtrans.synth import write_synthetic_brats

SMALL_SHAPE = (64, 64, 40)
REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats_sample"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small synthetic subjects (four with a tumor), BraTS 2020 layout. Read-only for tests."""
    root = tmp_path_factory.mktemp("synth") / "brats"
    write_synthetic_brats(root, SynthConfig(subjects=6, shape=SMALL_SHAPE, tumor_fraction=0.67, seed=7))
    return root


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real BraTS 2018 subjects in ../shared/data/brats_sample; skips when absent."""
    if not REAL_SAMPLE.is_dir() or not any(REAL_SAMPLE.glob("*/*_seg.nii*")):
        pytest.skip(f"real BraTS sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE
