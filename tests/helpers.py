"""Helpers the test modules share (constants, data writers, a checkpoint maker); fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from mrtrans.checkpoint import model_payload, save_checkpoint
from mrtrans.config import TrainConfig, load_config, to_dict
from mrtrans.models import build_generator

SMALL_SHAPE = (64, 64, 40)


REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats_sample"
ROOT = Path(__file__).resolve().parents[1]  # the checkout
# Benchmark and reproduction presets of seconds, for tests only (not shipped in evaluation/)
HALLUCINATION_TINY = ROOT / "tests" / "presets" / "hallucination_tiny.yaml"
REPRODUCE_TINY = ROOT / "tests" / "presets" / "reproduce_tiny.yaml"


SMALL_PREPARE = dict(
    train_slices=16, test_slices=12, image_size=64, min_tumor_pixels=10, min_brain_fraction=0.15, seed=0
)


TINY = {
    "generator": {"base_channels": 8, "num_res_blocks": 2},
    "discriminator": {"base_channels": 8, "num_layers": 2},
    "data": {"pool_size": 4},
    "optim": {"epochs_constant": 50, "epochs_decay": 50},
    "run": {"log_every": 1, "sample_every": 1000, "checkpoint_every": 1000},
}


BRATS23 = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


def to_brats2023(src, dst):
    """Copy a BraTS 2020-layout tree into the 2023+ naming (<ID>-t2f.nii.gz ...)."""
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        sid = folder.name.replace("SynthBraTS", "BraTS-GLI")
        (dst / sid).mkdir(parents=True)
        for key, alias in BRATS23.items():
            shutil.copy(folder / f"{folder.name}_{key}.nii.gz", dst / sid / f"{sid}-{alias}.nii.gz")
        seg = nib.load(folder / f"{folder.name}_seg.nii.gz")  # BraTS 2023+ labels: enhancing tumor is 3, not 4
        relabeled = np.asanyarray(seg.dataobj).copy()
        relabeled[relabeled == 4] = 3
        nib.save(nib.Nifti1Image(relabeled, seg.affine), dst / sid / f"{sid}-{BRATS23['seg']}.nii.gz")
    return dst


def to_msd(src, dst):
    """Write an MSD Task01_BrainTumour tree: 4D imagesTr (FLAIR, T1w, t1gd, T2w) and labelsTr."""
    (dst / "Task01_BrainTumour" / "imagesTr").mkdir(parents=True)
    (dst / "Task01_BrainTumour" / "labelsTr").mkdir(parents=True)
    for i, folder in enumerate(sorted(p for p in src.iterdir() if p.is_dir())):
        sid = f"BRATS_{i + 1:03d}"
        imgs = [nib.load(folder / f"{folder.name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")]
        stacked = np.stack([np.asanyarray(im.dataobj) for im in imgs], axis=-1)
        nib.save(nib.Nifti1Image(stacked, imgs[0].affine), dst / "Task01_BrainTumour" / "imagesTr" / f"{sid}.nii.gz")
        seg = nib.load(folder / f"{folder.name}_seg.nii.gz")  # MSD labels: 1 edema, 2 non-enhancing, 3 enhancing
        labels = np.asanyarray(seg.dataobj)
        msd = np.select([labels == 2, labels == 1, labels == 4], [1, 2, 3], 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(msd, seg.affine), dst / "Task01_BrainTumour" / "labelsTr" / f"{sid}.nii.gz")
    return dst / "Task01_BrainTumour"


def make_checkpoint(path, image_size=64, kind="harmonicgan-histogram"):
    """A checkpoint as `mrtrans train` writes it, with a tiny untrained generator pair."""
    cfg = load_config(TrainConfig, None, {"generator.base_channels": 4, "generator.num_res_blocks": 1})
    torch.manual_seed(0)
    models = {name: build_generator(cfg.generator).state_dict() for name in ("gen_s2t", "gen_t2s")}
    normalization = {"lower_percentile": 0.5, "upper_percentile": 99.5, "range": [-1.0, 1.0], "image_size": image_size}
    return save_checkpoint(model_payload(kind, "flair", "t1", to_dict(cfg), normalization, models), path)


@contextlib.contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[list[str]]:
    """The messages the ``mrtrans`` logger emits inside the block (whatever the CLI configured before)."""
    lines: list[str] = []
    logger = logging.getLogger("mrtrans")
    handler = logging.Handler(level)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def volume_of(root: Path, modality: str = "flair", index: int = 0) -> tuple[np.ndarray, np.ndarray, Path]:
    """The ``index``-th subject's ``modality`` volume under ``root``: (data, affine, path)."""
    path = sorted(root.glob(f"*/*_{modality}.nii.gz"))[index]
    img = nib.load(path)
    return img.get_fdata(dtype=np.float32), img.affine, path


def save_volume(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write float32 ``data`` with both qform and sform set to ``affine`` (code 1)."""
    img = nib.Nifti1Image(data.astype(np.float32), affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    nib.save(img, path)
    return path
