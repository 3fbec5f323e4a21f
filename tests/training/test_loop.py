import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from mrtrans.checkpoint import load_checkpoint, save_checkpoint
from mrtrans.cli import app
from mrtrans.config import TrainConfig, load_config, resolve_patch_size
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.training.loop import lr_factor, train

from helpers import ROOT


def tiny_config(tiny_yaml, method="harmonicgan_hist", **overrides):
    return load_config(TrainConfig, [method, tiny_yaml], overrides)


def test_lr_schedule_constant_then_linear_to_zero():
    factors = [lr_factor(e, 100, 100) for e in range(200)]
    assert factors[:100] == [1.0] * 100
    assert factors[100] == pytest.approx(1 - 1 / 101) and factors[-1] == pytest.approx(1 / 101)
    assert all(a > b for a, b in zip(factors[99:], factors[100:]))


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_run_folder_holds_config_checkpoint_and_metadata(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 3})
    ckpt = train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    payload = load_checkpoint(ckpt)
    assert payload["direction"] == {"source": "flair", "target": "t1"}
    assert payload["kind"] == "harmonicgan-histogram"
    assert payload["normalization"]["range"] == [-1.0, 1.0]
    assert payload["state"]["global_step"] == 3
    saved = load_config(TrainConfig, tmp_path / "run" / "config.yaml")
    assert saved.loss.patch_size == 2 and saved == resolve_patch_size(cfg, 64)  # the patch size it used, recorded
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["versions"]["torch"] and info["seed"] == 0
    assert len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 4
    assert list((tmp_path / "run" / "samples").glob("step_*.png"))
    with pytest.raises(MrtransError, match="--resume"):
        train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)


@pytest.mark.slow
def test_tiny_model_lowers_its_cycle_loss(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 300, "run.log_every": 50})
    cycle = []
    train(
        prepared,
        tmp_path / "run",
        Direction.parse("flair2t1"),
        cfg,
        show_progress=False,
        on_step=lambda step, losses: cycle.append(losses["cycle_s"] + losses["cycle_t"]),
    )
    first, last = np.mean(cycle[:30]), np.mean(cycle[-30:])
    assert last < 0.5 * first, (first, last)


def _all_state(ckpt):
    p = load_checkpoint(ckpt)
    return p["models"], p["optimizers"], p["state"]


@pytest.mark.slow
def test_resume_equals_uninterrupted(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 40, "run.checkpoint_every": 15})  # 16 steps per epoch
    direction = Direction.parse("flair2t1")
    full = train(prepared, tmp_path / "full", direction, cfg, show_progress=False)

    def kill(step, losses):
        if step == 37:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(prepared, tmp_path / "cut", direction, cfg, show_progress=False, on_step=kill)
    assert load_checkpoint(tmp_path / "cut")["state"]["global_step"] == 30
    resumed = train(prepared, tmp_path / "cut", direction, cfg, resume=True, show_progress=False)

    models_a, optim_a, state_a = _all_state(full)
    models_b, optim_b, state_b = _all_state(resumed)
    assert state_a == state_b == {"epoch": 2, "step_in_epoch": 8, "global_step": 40}
    for name in models_a:
        for key in models_a[name]:
            assert torch.equal(models_a[name][key], models_b[name][key]), (name, key)
    for name in optim_a:
        for idx, st in optim_a[name]["state"].items():
            assert torch.equal(st["exp_avg"], optim_b[name]["state"][idx]["exp_avg"])
    steps = [int(line.split(",")[0]) for line in (tmp_path / "cut" / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 41))  # rows after the checkpoint were replaced, none doubled


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_reverse_direction_and_bad_direction(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, "cyclegan", **{"run.max_steps": 2})
    ckpt = train(prepared, tmp_path / "r", Direction.parse("t12flair"), cfg, show_progress=False)
    assert load_checkpoint(ckpt)["kind"] == "cyclegan"
    with pytest.raises(MrtransError, match="prepared for flair/t1"):
        train(prepared, tmp_path / "x", Direction.parse("t22flair"), cfg, show_progress=False)
    with pytest.raises(MrtransError, match="unknown direction"):
        Direction.parse("flair_to_t1")


@pytest.mark.slow
def test_vgg_variant_trains_with_test_weights(prepared, tmp_path, tiny_yaml, monkeypatch):
    from mrtrans.networks.vgg import VGG16Relu43

    torch.save(VGG16Relu43().state_dict(), tmp_path / "vgg.pth")
    monkeypatch.setenv("MRTRANS_VGG16_WEIGHTS", str(tmp_path / "vgg.pth"))
    cfg = tiny_config(tiny_yaml, "harmonicgan_vgg", **{"run.max_steps": 2})
    losses = []
    train(
        prepared,
        tmp_path / "v",
        Direction.parse("flair2t1"),
        cfg,
        show_progress=False,
        on_step=lambda step, values: losses.append(values),
    )
    assert "smooth_s2t" in losses[0] and np.isfinite(losses[-1]["total_g"])
    monkeypatch.setenv("MRTRANS_VGG16_WEIGHTS", str(tmp_path / "missing.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MrtransError, match="VGG-16 weights"):
        train(prepared, tmp_path / "v2", Direction.parse("flair2t1"), cfg, show_progress=False)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_cli_train_and_resume(prepared, tmp_path, tiny_yaml):
    runner = CliRunner()
    args = [
        "train",
        "flair2t1",
        "--data",
        str(prepared),
        "--out",
        str(tmp_path / "run"),
        "--config",
        "cyclegan",
        "--preset",
        str(tiny_yaml),
        "--max-steps",
        "2",
        "--lr",
        "1e-3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 1e-3 and cfg["loss"]["lambda_smooth"] == 0.0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = runner.invoke(
        app,
        ["train", "flair2t1", "--data", str(prepared), "--out", str(tmp_path / "run"), "--resume", "--max-steps", "4"],
    )
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(tmp_path / "run")["state"]["global_step"] == 4
    assert load_checkpoint(tmp_path / "run")["config"]["loss"]["lambda_smooth"] == 0.0  # kept its own config


@pytest.mark.slow
def test_distributed_two_cpu_processes_with_gloo(prepared, tmp_path, tiny_yaml):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mrtrans",
        "train",
        "flair2t1",
        "--data",
        str(prepared),
        "--out",
        str(out),
        "--preset",
        str(tiny_yaml),
        "--max-steps",
        "6",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2 and info["steps_per_epoch"] == 8  # 16 slices / (batch 1 x 2 processes)
    assert load_checkpoint(out)["state"]["global_step"] == 6


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_losses_csv_logs_gradient_norms(prepared, tmp_path, tiny_yaml):
    train(
        prepared,
        tmp_path / "run",
        Direction.parse("flair2t1"),
        tiny_config(tiny_yaml, **{"run.max_steps": 2}),
        show_progress=False,
    )
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert len(rows) == 2
    for key in ("grad_adversarial", "grad_cycle", "grad_smoothness"):
        assert float(rows[-1][key]) > 0, key


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_starts_again(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 4, "run.checkpoint_every": 3})
    direction = Direction.parse("flair2t1")

    def interrupt(step, losses):
        if step == 2:
            raise KeyboardInterrupt

    for resume in (False, True):  # the re-run, with or without --resume, is no dead end
        run = tmp_path / f"run{resume}"
        with pytest.raises(KeyboardInterrupt):
            train(prepared, run, direction, cfg, show_progress=False, on_step=interrupt)
        assert not (run / "checkpoints" / "last.pt").exists() and (run / "config.yaml").exists()
        ckpt = train(prepared, run, direction, cfg, resume=resume, show_progress=False)
        assert load_checkpoint(ckpt)["state"]["global_step"] == 4
        steps = [int(line.split(",")[0]) for line in (run / "losses.csv").read_text().splitlines()[1:]]
        assert steps == [1, 2, 3, 4]  # the stopped attempt's rows are gone
    with pytest.raises(MrtransError, match="nothing to resume"):
        train(prepared, tmp_path / "never", direction, cfg, resume=True, show_progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(MrtransError, match="not a run of `mrtrans train`"):
        train(prepared, tmp_path / "mine", direction, cfg, show_progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_diverging_training_stops_with_one_line_and_keeps_no_nan_checkpoint(prepared, tmp_path, tiny_yaml):
    import shutil

    data = shutil.copytree(prepared, tmp_path / "data")
    flair = np.load(data / "train" / "flair.npy")
    flair[:] = np.nan  # a damaged training array
    np.save(data / "train" / "flair.npy", flair)
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 3, "run.checkpoint_every": 1})
    with pytest.raises(MrtransError, match="NaN or Inf"):
        train(data, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_run_folder_inside_its_data_is_refused(prepared, tmp_path, tiny_yaml):
    import shutil

    data = shutil.copytree(prepared, tmp_path / "data")
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(MrtransError, match="lies inside the input"):
        train(data, data / "run", Direction.parse("flair2t1"), tiny_config(tiny_yaml), show_progress=False)
    assert sorted(p.name for p in data.iterdir()) == before


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_resume_with_another_number_of_processes_is_refused(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 2})
    ckpt = train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    payload = load_checkpoint(ckpt)
    payload["world_size"] = 4  # as if trained with torchrun --nproc_per_node=4
    save_checkpoint(payload, ckpt)
    with pytest.raises(MrtransError, match="trained by 4 process"):
        train(
            prepared,
            tmp_path / "run",
            Direction.parse("flair2t1"),
            tiny_config(tiny_yaml, **{"run.max_steps": 4}),
            resume=True,
            show_progress=False,
        )


def test_replica_stats_are_the_float64_sum_and_absolute_sum_of_the_weights():
    from mrtrans.training.loop import replica_stats

    model = torch.nn.Linear(3, 2)
    stats = replica_stats(model)
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    assert stats.dtype == torch.float64 and stats.tolist() == [flat.sum().item(), flat.abs().sum().item()]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_replica_stats_stay_on_the_models_cuda_device():
    """NCCL gathers CUDA tensors only: the statistics of a CUDA model must not come back to the CPU."""
    from mrtrans.training.loop import replica_stats

    model = torch.nn.Linear(3, 2).cuda()
    assert replica_stats(model).device == next(model.parameters()).device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_bf16_resumes_on_the_cpu(prepared, tmp_path, tiny_yaml):
    cfg = tiny_config(tiny_yaml, **{"run.max_steps": 3, "run.device": "cuda", "run.amp": True})
    train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cfg, show_progress=False)
    cpu = tiny_config(tiny_yaml, **{"run.max_steps": 5, "run.device": "cpu"})
    ckpt = train(prepared, tmp_path / "run", Direction.parse("flair2t1"), cpu, resume=True, show_progress=False)
    assert load_checkpoint(ckpt)["state"]["global_step"] == 5
