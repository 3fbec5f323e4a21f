import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from mrtrans import __version__
from mrtrans.checkpoint import load_checkpoint
from mrtrans.cli import app

from helpers import TINY

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = re.findall(r"│ ([a-z][a-z0-9-]+)\s", result.stdout)
    assert "synth-brats" in commands
    for name in commands:
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
        assert "Usage" in sub.stdout


def test_known_error_is_one_line_without_traceback(tmp_path):
    result = runner.invoke(app, ["synth-brats", "--out", str(tmp_path / "x"), "--shape", "1,2"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --shape: expected a list of 3 values, got ['1', '2']"]
    assert "Traceback" not in result.output


def test_conflicting_repeated_or_absurd_options_are_refused_in_one_line(tmp_path):
    both = runner.invoke(app, ["-q", "-v", "synth-brats", "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "not both" in both.output and not (tmp_path / "x").exists()
    huge = runner.invoke(app, ["prepare-brats", str(tmp_path), "--out", str(tmp_path / "p"), "--image-size", "60000"])
    assert huge.exit_code == 2 and "image_size': 60000 is above the maximum 1024" in huge.stderr
    assert "Traceback" not in huge.output and not (tmp_path / "p").exists()
    twice = ["--set", "run.seed=1", "--set", "run.seed=2"]
    repeated = runner.invoke(app, ["train", "flair2t1", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *twice])
    assert repeated.exit_code == 2 and "--set run.seed: given twice" in repeated.stderr


def test_export_names_the_files_it_wrote(tmp_path):
    from helpers import make_checkpoint

    model = make_checkpoint(tmp_path / "last.pt")
    result = runner.invoke(app, ["export", str(model), "--out", str(tmp_path / "b"), "--format", "monai-bundle"])
    assert result.exit_code == 0, result.output
    assert "configs/metadata.json" in result.stdout and "models/model.pt" in result.stdout
    assert "preprocessing.json" not in result.stdout  # the bundle has no such file


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "synth-brats", "--out", str(tmp_path / "x"), "--shape", "1,2"])
    assert result.exit_code != 0
    assert result.exception is not None and "--shape" in str(result.exception)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_set_reaches_any_config_key_and_a_bad_one_is_named(prepared, tmp_path):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(TINY))
    base = ["train", "flair2t1", "--data", str(prepared), "--config", "cyclegan", "--preset", str(tiny)]
    run = tmp_path / "run"
    args = [*base, "--out", str(run), "--set", "loss.sigma=1.5", "--set", "data.pool_size=2", "--max-steps", "1"]
    result = runner.invoke(app, [*args, "--set", "run.max_steps=7"])  # the named --max-steps wins over --set
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["loss"]["sigma"] == 1.5 and written["data"]["pool_size"] == 2 and written["run"]["max_steps"] == 1
    for item, message in (
        ("loss.sigmaa=1", "loss.sigmaa"),
        ("loss.sigma", "expected section.key=value"),
        ("data.pool_size=many", "data.pool_size"),
    ):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--set", item])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
        assert not (tmp_path / "bad").exists()


def test_the_api_refuses_an_option_the_recipe_lacks(synth_root, tmp_path):
    import mrtrans

    with pytest.raises(mrtrans.MrtransError, match="unknown option image_sise"):
        mrtrans.prepare_brats(synth_root, tmp_path / "p", image_sise=64)
    assert not (tmp_path / "p").exists()


def test_synth_brats_writes_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "data"
    args = ["synth-brats", "--out", str(out), "--subjects", "1", "--shape", "32,32,16"]
    assert runner.invoke(app, args).exit_code == 0
    assert len(list(out.glob("*/*.nii.gz"))) == 5
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and str(out) in again.stderr
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0


# ---- Hostile inputs: each case ends in one `error:` line (exit 2) and loses nothing. ----------------


def _copy(src, dst):
    return Path(shutil.copytree(src, dst))


def _write_yaml(path, tree):
    path.write_text(yaml.safe_dump(tree))
    return path


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _prepare_into_input(t, fx):
    root = _copy(fx["synth_root"], t / "brats")
    before = _files(root)
    return (
        ["prepare-brats", str(root), "--out", str(root), "--overwrite"],
        "is the input",
        lambda: _files(root) == before,
    )


def _prepare_into_parent(t, fx):
    root = _copy(fx["synth_root"], t / "d" / "brats")
    before = _files(t / "d")
    return (
        ["prepare-brats", str(root), "--out", str(t / "d"), "--overwrite"],
        "contains the input",
        lambda: _files(t / "d") == before,
    )


def _evaluate_into_run(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    before = _files(run)
    args = ["evaluate", str(run), "--data", str(fx["prepared"]), "--out", str(run), "--overwrite", "--no-audit"]
    return args, "is the input", lambda: _files(run) == before


def _evaluate_into_data(t, fx):
    data = _copy(fx["prepared"], t / "data")
    before = _files(data)
    args = ["evaluate", str(fx["tiny_run"]), "--data", str(data), "--out", str(data), "--overwrite", "--no-audit"]
    return args, "is the input", lambda: _files(data) == before


def _train_args(fx, out, *extra):
    return ["train", "flair2t1", "--data", str(fx["prepared"]), "--out", str(out), *extra]


def _train_nan(t, fx):
    bad = _write_yaml(t / "bad.yaml", {**TINY, "loss": {"lambda_cycle": float("nan")}})
    args = _train_args(fx, t / "run", "--preset", str(bad), "--max-steps", "2")
    return args, "config key 'loss.lambda_cycle': nan is not a finite number", lambda: not (t / "run").exists()


def _train_inf_lr(t, fx):
    args = _train_args(fx, t / "run", "--lr", "inf", "--max-steps", "2")
    return args, "config key 'optim.lr': inf is not a finite number", lambda: not (t / "run").exists()


def _train_zero_epochs(t, fx):
    bad = _write_yaml(t / "bad.yaml", {**TINY, "optim": {"epochs_constant": 0, "epochs_decay": 0}})
    return _train_args(fx, t / "run", "--preset", str(bad)), "would train no step", lambda: not (t / "run").exists()


def _resume_unchanged(run):
    before = load_checkpoint(run)
    return lambda: load_checkpoint(run)["kind"] == before["kind"] and load_checkpoint(run)["state"] == before["state"]


def _resume_other_method(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    tiny = _write_yaml(t / "tiny.yaml", TINY)
    args = _train_args(fx, run, "--resume", "--config", "cyclegan", "--preset", str(tiny), "--max-steps", "4")
    return args, "loss.lambda_smooth: 5.0 -> 0.0", _resume_unchanged(run)


def _resume_other_architecture(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    wide = _write_yaml(t / "wide.yaml", {**TINY, "generator": {"base_channels": 8, "num_res_blocks": 3}})
    args = _train_args(fx, run, "--resume", "--config", "harmonicgan_hist", "--preset", str(wide), "--max-steps", "4")
    return args, "generator.num_res_blocks: 2 -> 3", _resume_unchanged(run)


def _resume_other_data(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    data = _copy(fx["prepared"], t / "data")
    _edit_json(data / "prepare.json", lambda m: m["config"].update(train_slices=999))
    args = ["train", "flair2t1", "--data", str(data), "--out", str(run), "--resume", "--max-steps", "4"]
    return args, "prepared with other settings than the run's data (train_slices: 16 -> 999)", _resume_unchanged(run)


def _resume_other_volumes(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    data = _copy(fx["prepared"], t / "data")
    _edit_json(data / "prepare.json", lambda m: m.update(input_sha256="0" * 64))
    args = ["train", "flair2t1", "--data", str(data), "--out", str(run), "--resume", "--max-steps", "4"]
    return args, "prepared from other input volumes", _resume_unchanged(run)


def _prepare_twice(t, fx):
    out = _copy(fx["prepared"], t / "prep")
    before = _files(out)
    return (
        ["prepare-brats", str(fx["synth_root"]), "--out", str(out)],
        "exists and is not empty",
        lambda: _files(out) == before,
    )


def _output_under_a_file(t, fx):
    (t / "afile").write_text("x")
    args = ["synth-brats", "--out", str(t / "afile" / "sub"), "--subjects", "1", "--shape", "32,32,16"]
    return args, "a part of its path is a file", lambda: (t / "afile").read_text() == "x"


def _checkpoint(t, fx, edit):
    payload = torch.load(fx["tiny_run"] / "checkpoints" / "last.pt", weights_only=True)
    edit(payload)
    torch.save(payload, t / "m.pt")
    src = t / "in.nii.gz"
    brain = np.zeros((12, 12, 8), np.float32)
    brain[3:9, 3:9] = 1.0  # a small skull-stripped "brain" with background 0 around it
    nib.save(nib.Nifti1Image(brain, np.eye(4)), src)
    return ["translate", str(src), "--model", str(t / "m.pt"), "--out", str(t / "o.nii.gz")]


def _checkpoint_without_config(t, fx):
    return _checkpoint(t, fx, lambda p: p.pop("config")), "no 'config' field", lambda: not (t / "o.nii.gz").exists()


def _checkpoint_odd_size(t, fx):
    args = _checkpoint(t, fx, lambda p: p["normalization"].update(image_size=66))
    return args, "image_size 66 (must be >= 16 and a multiple of 4)", lambda: not (t / "o.nii.gz").exists()


def _poison(payload, generator):
    """Fill a generator's weights with NaN, as a diverged run leaves them."""
    for tensor in payload["models"][generator].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))


def _nan_model(t, fx):
    args = _checkpoint(t, fx, lambda p: _poison(p, "gen_s2t"))
    return args, "NaN or Inf", lambda: not (t / "o.nii.gz").exists()


def _evaluate_nan_model(t, fx):
    run = _copy(fx["tiny_run"], t / "run")
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    _poison(payload, "gen_t2s")
    torch.save(payload, run / "checkpoints" / "last.pt")
    args = ["evaluate", str(run), "--data", str(fx["prepared"]), "--out", str(t / "rep"), "--no-audit"]
    return args, "t12flair output contains NaN or Inf", lambda: not (t / "rep").exists()


def _evaluate_broken_data(t, fx, damage):
    data = _copy(fx["prepared"], t / "data")
    damage(data)
    args = ["evaluate", str(fx["tiny_run"]), "--data", str(data), "--out", str(t / "rep"), "--no-audit"]
    return args, lambda: not (t / "rep").exists()


def _truncated_npy(t, fx):
    def cut(data):
        raw = (data / "test" / "flair.npy").read_bytes()
        (data / "test" / "flair.npy").write_bytes(raw[: len(raw) // 2])

    args, check = _evaluate_broken_data(t, fx, cut)
    return args, "flair.npy: cannot read", check


def _pickled_npy(t, fx):
    args, check = _evaluate_broken_data(
        t, fx, lambda d: np.save(d / "test" / "t1.npy", np.array([{"a": 1}]), allow_pickle=True)
    )
    return args, "t1.npy: cannot read", check


def _broken_prepare_json(t, fx):
    args, check = _evaluate_broken_data(t, fx, lambda d: (d / "prepare.json").write_text('{"modalities": '))
    return args, "prepare.json: broken", check


def _prepare_odd_size(t, fx):
    args = ["prepare-brats", str(fx["synth_root"]), "--out", str(t / "p"), "--image-size", "66"]
    return args, "'image_size': 66 is not a multiple of 4", lambda: not (t / "p").exists()


def _evaluate_existing_out_before_work(t, fx):
    (t / "rep").mkdir()
    (t / "rep" / "notes.txt").write_text("mine")
    args = ["evaluate", str(fx["tiny_run"]), "--data", str(t / "no-such-data"), "--out", str(t / "rep")]
    return args, f"{t / 'rep'}: output folder exists", lambda: (t / "rep" / "notes.txt").read_text() == "mine"


def _too_few_slices_says_why(t, fx):
    root = _copy(fx["synth_root"], t / "brats")
    victim = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (victim / f"{victim.name}_t1.nii.gz").write_bytes(b"not a nifti")
    args = ["prepare-brats", str(root), "--out", str(t / "p"), "--train-slices", "5000", "--image-size", "64"]
    return args, f"skipped 1 subject: {victim.name}: ", lambda: not (t / "p").exists()


def _demo_over_a_user_folder(t, fx):
    (t / "mine").mkdir()
    (t / "mine" / "data.csv").write_text("precious")
    args = ["demo", "--out", str(t / "mine"), "--overwrite"]
    return args, "not made by mrtrans", lambda: (t / "mine" / "data.csv").read_text() == "precious"


HOSTILE = [
    _prepare_into_input,
    _prepare_into_parent,
    _evaluate_into_run,
    _evaluate_into_data,
    _train_nan,
    _train_inf_lr,
    _train_zero_epochs,
    _resume_other_method,
    _resume_other_architecture,
    _resume_other_data,
    _resume_other_volumes,
    _prepare_twice,
    _output_under_a_file,
    _checkpoint_without_config,
    _checkpoint_odd_size,
    _nan_model,
    _evaluate_nan_model,
    _truncated_npy,
    _pickled_npy,
    _broken_prepare_json,
    _prepare_odd_size,
    _evaluate_existing_out_before_work,
    _too_few_slices_says_why,
    _demo_over_a_user_folder,
]


@pytest.mark.slow  # trains (make test-fast trains nothing)
@pytest.mark.parametrize("case", HOSTILE, ids=[c.__name__.strip("_") for c in HOSTILE])
def test_hostile_input_gives_one_line_and_loses_nothing(case, tmp_path, synth_root, prepared, tiny_run):
    args, message, intact = case(tmp_path, {"synth_root": synth_root, "prepared": prepared, "tiny_run": tiny_run})
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert message in result.stderr, result.stderr
    assert intact()


def test_flags_are_generated_from_the_schema_so_a_new_key_needs_no_cli_change():
    import dataclasses

    import typer

    from mrtrans.cli import flags
    from mrtrans.config import GanMode, bounds, described

    @dataclasses.dataclass(frozen=True)
    class Toy:
        size: int = dataclasses.field(default=2, metadata=described("The size.") | bounds(1))
        mode: GanMode = dataclasses.field(default=GanMode.lsgan, metadata=described("The GAN.", flag="--gan"))
        shape: tuple[int, int] = dataclasses.field(default=(3, 4), metadata=described("The shape."))
        loud: bool = dataclasses.field(default=False, metadata=described("Say more."))
        quiet: int = 0  # no help text: not a flag

    seen = []
    toy = typer.Typer()

    @toy.command()
    @flags(Toy)
    def run(name: str, config: Toy = Toy()) -> None:
        seen.append((name, config))

    result = runner.invoke(toy, ["x", "--size", "5", "--gan", "vanilla", "--shape", "6,7", "--loud"])
    assert result.exit_code == 0, result.output
    assert seen[-1] == ("x", Toy(5, GanMode.vanilla, (6, 7), True))
    assert runner.invoke(toy, ["x", "--quiet", "1"]).exit_code == 2
    assert runner.invoke(toy, ["x"]).exit_code == 0 and seen[-1] == ("x", Toy())
    refused = runner.invoke(toy, ["x", "--size", "0"])
    assert refused.exit_code == 2 and "--size" in refused.output  # the bound, checked by the flag itself
    assert "The GAN." in runner.invoke(toy, ["--help"]).output


def test_layered_flags_pass_only_what_was_given_so_a_recipe_keeps_its_values():
    import dataclasses
    import inspect

    import typer

    import mrtrans.cli
    from mrtrans.cli import flags
    from mrtrans.config import PrepareConfig, described

    @dataclasses.dataclass(frozen=True)
    class Toy:
        size: int = dataclasses.field(default=2, metadata=described("The size."))
        spacing: tuple[float, ...] | None = dataclasses.field(default=None, metadata=described("Voxels."))
        loud: bool = dataclasses.field(default=False, metadata=described("Say more."))

    seen = []
    toy = typer.Typer()

    @toy.command()
    @flags(Toy, layered=True)
    def run(options: dict | None = None) -> None:
        seen.append(options)

    assert runner.invoke(toy, []).exit_code == 0 and seen[-1] == {}
    assert runner.invoke(toy, ["--spacing", "2,3", "--loud"]).exit_code == 0
    assert seen[-1] == {"spacing": "2,3", "loud": True}  # the loader reads the text as --set would
    published = set(inspect.signature(mrtrans.cli.prepare_brats).parameters)
    assert {f.name for f in dataclasses.fields(PrepareConfig)} <= published  # every recipe key is a flag
