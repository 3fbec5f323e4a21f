"""CUT and FastCUT (issue 27): the NCE layers, a one-direction checkpoint, an exact resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mrtrans.config import TrainConfig, load_config
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.methods.cut import encoder_features, nce_layers
from mrtrans.models import build_generator

from helpers import TINY


@pytest.mark.parametrize("blocks", [2, 9])
def test_the_nce_layers_are_the_input_the_downsamplings_and_two_residual_blocks(blocks: int) -> None:
    cfg = load_config(TrainConfig, "cut", {"generator.base_channels": 4, "generator.num_res_blocks": blocks})
    layers, channels = nce_layers(cfg)
    gen = build_generator(cfg.generator)
    feats = encoder_features(gen, torch.zeros(1, 1, 32, 32), layers)
    assert [f.shape[1] for f in feats] == channels == [1, 8, 16, 16, 16]
    assert [f.shape[-1] for f in feats] == [38, 16, 8, 8, 8]  # padded input, half, quarter, the bottleneck
    assert type(gen.model[layers[-1]]).__name__ == "ResidualBlock"
    assert layers[-1] - layers[-2] == min(4, blocks - 1)  # the fifth block, or the last of fewer


def test_cut_refuses_a_generator_without_its_encoder_layers() -> None:
    from mrtrans.methods import build_method

    cfg = load_config(TrainConfig, ["cut", "discogan"], {"method": "cut"})
    with pytest.raises(MrtransError, match="generator.architecture"):
        build_method(cfg, None, None)


def _train(prepared: Path, out: Path, steps: int, resume: bool = False, **sets) -> Path:
    from mrtrans.training.loop import train

    cfg = load_config(TrainConfig, ["cut", TINY], {"run.max_steps": steps, "run.checkpoint_every": 2, **sets})
    return train(prepared, out, Direction.parse("flair2t1"), cfg, resume=resume, show_progress=False)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_one_direction_checkpoint_refuses_the_other_direction_in_one_line(
    prepared: Path, synth_root: Path, tmp_path: Path
) -> None:
    from mrtrans.api import translate_files
    from mrtrans.checkpoint import load_checkpoint

    run = tmp_path / "cut"
    _train(prepared, run, 2, both_directions=False)
    ckpt = load_checkpoint(run)
    assert ckpt["translators"] == {"flair2t1": "gen_s2t"} and "gen_t2s" not in ckpt["models"]
    t1 = sorted(synth_root.glob("*/*_t1.nii.gz"))[0]
    with pytest.raises(MrtransError) as err:
        translate_files(t1, tmp_path / "out.nii.gz", run, direction="t12flair", device="cpu")
    message = str(err.value)
    assert "\n" not in message and "translates flair2t1; it cannot do t12flair" in message
    assert not (tmp_path / "out.nii.gz").exists()
    flair = sorted(synth_root.glob("*/*_flair.nii.gz"))[0]
    report = translate_files(flair, tmp_path / "t1.nii.gz", run, device="cpu")
    assert report.written and not report.failed


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_resumed_cut_run_continues_exactly(prepared: Path, tmp_path: Path) -> None:
    """The NCE locations and flips come from a generator saved in the checkpoint (FastCUT flips)."""
    sets = {"cut.flip_equivariance": True}
    _train(prepared, tmp_path / "straight", 4, **sets)
    _train(prepared, tmp_path / "resumed", 2, **sets)
    _train(prepared, tmp_path / "resumed", 4, resume=True, **sets)

    def rows(run: Path) -> list[dict[str, str]]:
        with open(run / "losses.csv") as f:
            return list(csv.DictReader(f))

    assert rows(tmp_path / "straight") == rows(tmp_path / "resumed")


def test_cut_refuses_torchrun_in_one_line() -> None:
    import numpy as np

    from mrtrans.methods import MethodData, Placement, build_method

    cfg = load_config(TrainConfig, ["cut", TINY])
    slices = np.zeros((2, 1, 32, 32), np.float32)
    method = build_method(cfg, MethodData(slices, slices, (-1.0, 1.0)), Placement(torch.device("cpu"), world=2))
    with pytest.raises(MrtransError, match="cut trains in one process; run `mrtrans train` without torchrun"):
        method.distribute()


@pytest.mark.parametrize("method", ["cut", "pix2pix"])
def test_torchrun_is_refused_before_any_process_group_run_folder_or_network(
    method: str, prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    from mrtrans.training.loop import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    built = []
    monkeypatch.setattr("mrtrans.training.loop.build_method", lambda *a, **k: built.append(a))
    cfg = load_config(TrainConfig, [method, TINY], {"run.max_steps": 1})
    with pytest.raises(MrtransError, match="trains in one process; run `mrtrans train` without torchrun"):
        train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    assert not (tmp_path / "run").exists() and not dist.is_initialized() and not built
