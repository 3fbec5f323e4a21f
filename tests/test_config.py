import dataclasses
import inspect

import pytest
import yaml

from mrtrans.config import (
    GanMode,
    PrepareConfig,
    SmoothFeatures,
    TrainConfig,
    TranslateConfig,
    TranslatorConfig,
    bounds,
    described,
    load_config,
    options_table,
    resolve_config_path,
    save_config,
    takes,
    takes_flagged,
    to_dict,
)
from mrtrans.errors import MrtransError


def test_defaults_are_the_paper_settings():
    cfg = TrainConfig()
    assert cfg.loss.gan_mode is GanMode.lsgan
    assert (cfg.loss.lambda_cycle, cfg.loss.lambda_gan) == (10.0, 1.0)
    # The paper leaves the scale of Eq. 6 open: lambda 5 on the brain-pair graph was chosen by the benchmark.
    assert (cfg.loss.lambda_smooth, cfg.loss.smooth_normalization.value) == (5.0, "brain_pairs")
    assert (cfg.loss.patch_size, cfg.loss.histogram_bins) == (None, 16)  # None: a 32x32-node graph, 8x8 at 256
    from mrtrans.config import resolve_patch_size

    assert resolve_patch_size(cfg, 256).loss.patch_size == 8 and resolve_patch_size(cfg, 64).loss.patch_size == 2
    assert (cfg.optim.lr, cfg.optim.beta1) == (2e-4, 0.5)
    assert (cfg.optim.epochs_constant, cfg.optim.epochs_decay) == (100, 100)
    assert (cfg.data.image_size, cfg.data.pool_size) == (None, 50)  # None: as prepared (256 by default)
    assert cfg.generator.num_res_blocks == 9
    p = PrepareConfig()
    assert (p.train_slices, p.test_slices) == (1400, 300)


def test_presets_load_and_differ_where_they_should():
    cyc = load_config(TrainConfig, "cyclegan")
    hist = load_config(TrainConfig, "harmonicgan_hist")
    vgg = load_config(TrainConfig, "harmonicgan_vgg")
    assert cyc.loss.lambda_smooth == 0.0 and hist.loss.lambda_smooth == 5.0
    assert vgg.loss.smooth_features is SmoothFeatures.vgg
    assert cyc.generator == hist.generator == vgg.generator


def test_files_layer_and_overrides_win(tmp_path):
    cfg = load_config(TrainConfig, ["cyclegan", "cpu_small"], {"optim.lr": "1e-3", "run.max_steps": 5})
    assert cfg.loss.lambda_smooth == 0.0 and cfg.generator.base_channels == 16
    assert cfg.optim.lr == 1e-3 and cfg.run.max_steps == 5
    assert load_config(TrainConfig, "cyclegan", {"optim.lr": None}).optim.lr == 2e-4


@pytest.mark.parametrize(
    "content, key",
    [
        ({"loss": {"lambda_smoth": 1.0}}, "loss.lambda_smoth"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"optim": {"lr": -1.0}}, "optim.lr"),
        ({"optim": {"beta1": 1.5}}, "optim.beta1"),
        ({"loss": {"gan_mode": "wgan"}}, "loss.gan_mode"),
        ({"generator": {"num_res_blocks": 2.5}}, "generator.num_res_blocks"),
        ({"run": {"amp": "maybe"}}, "run.amp"),
        ({"nonsense": 1}, "nonsense"),
        ({"loss": 3}, "loss"),
    ],
)
def test_bad_values_name_the_key(tmp_path, content, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(MrtransError) as info:
        load_config(TrainConfig, path)
    assert f"'{key}'" in str(info.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(MrtransError, match="cyclegan"):
        resolve_config_path("no_such_preset")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("loss: [unclosed")
    with pytest.raises(MrtransError, match="broken.yaml"):
        load_config(TrainConfig, path)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(TrainConfig, "harmonicgan_vgg", {"run.seed": 3})
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(TrainConfig, tmp_path / "config.yaml") == cfg
    assert to_dict(cfg)["loss"]["smooth_features"] == "vgg"


def test_a_run_config_from_before_the_brain_normalisation_resumes_with_all_pairs(tmp_path):
    from mrtrans.config import SmoothNormalization, TrainConfig, save_config, to_dict
    from mrtrans.training.resume import load_run_config

    tree = to_dict(TrainConfig())
    del tree["loss"]["smooth_normalization"]  # what an mrtrans 0.1 run wrote
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    assert load_run_config(path).loss.smooth_normalization is SmoothNormalization.all_pairs
    save_config(TrainConfig(), path)  # a current run keeps its own choice
    assert load_run_config(path, {"run.max_steps": 3}).loss.smooth_normalization is SmoothNormalization.brain_pairs
    assert load_run_config(path, {"run.max_steps": 3}).run.max_steps == 3


# --- one declaration per option: the schema's keys become keyword arguments (takes) -------------------------


@dataclasses.dataclass(frozen=True)
class _Toy:
    name: str = dataclasses.field(default="a", metadata=described("The name."))
    size: int | None = dataclasses.field(default=None, metadata=described("The size.") | bounds(1))
    mode: GanMode = dataclasses.field(default=GanMode.lsgan, metadata=described("The GAN.", flag="--gan"))


def test_takes_publishes_the_schema_keys_and_checks_them_as_a_config_file_does():
    @takes(_Toy)
    def run(first, config=_Toy(), *, extra=0):
        """Run."""
        return first, config, extra

    assert list(inspect.signature(run).parameters) == ["first", "name", "size", "mode", "extra", "config"]
    assert run(1, "b", 3, extra=2) == (1, _Toy("b", 3), 2)  # positional in the schema's order, as config is
    assert run(1, mode="vanilla")[1].mode is GanMode.vanilla  # a choice by its value
    assert run(1, config=_Toy(size=4))[1].size == 4
    assert "size (default None): The size." in run.__doc__
    with pytest.raises(MrtransError, match="'size': 0 is below the minimum 1"):
        run(1, size=0)
    with pytest.raises(MrtransError, match="'mode': 'x' is not one of: lsgan, vanilla"):
        run(1, mode="x")
    with pytest.raises(MrtransError, match="give config= or the keys size, not both"):
        run(1, size=2, config=_Toy())
    with pytest.raises(TypeError):
        run(1, colour="red")  # not a key of the schema


def test_options_table_lists_each_key_with_its_flag_default_and_help():
    rows = options_table(_Toy).splitlines()
    assert rows[2:] == [
        "| `--name` | `name` | `a` | The name. |",
        "| `--size` | `size` | none | The size. |",
        "| `--gan` | `mode` | `lsgan` | The GAN. |",
    ]


def test_the_translate_keys_are_one_schema_for_the_cli_the_api_and_the_monai_transforms():
    import mrtrans
    from mrtrans.monai import Translate, Translated

    model_keys = [f.name for f in dataclasses.fields(TranslatorConfig)]
    for fn in (mrtrans.load_translator, mrtrans.translate, Translate, Translated):
        assert set(model_keys) <= set(inspect.signature(fn).parameters), fn
    every = {f.name for f in dataclasses.fields(TranslateConfig)}
    assert every <= set(inspect.signature(mrtrans.translate_files).parameters)


def test_takes_flagged_gives_the_flagged_nested_keys_as_keyword_arguments_that_default_to_the_files():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        steps: int | None = dataclasses.field(default=None, metadata=described("Steps.", flag="--max-steps"))
        quiet: int = 3  # no help text: not a flag

    @dataclasses.dataclass(frozen=True)
    class Outer:
        run: Inner = Inner()
        lr: float = dataclasses.field(default=1.0, metadata=described("Rate."))

    @takes_flagged(Outer)
    def run(a, *, named=None):
        return a, named

    assert list(inspect.signature(run).parameters) == ["a", "max_steps", "lr"]
    assert run(1) == (1, {}) and run(1, max_steps=5, lr=None) == (1, {"run.steps": 5})
    assert "max_steps (run.steps): Steps." in run.__doc__
    assert options_table(Outer).splitlines()[2] == "| `--max-steps` | `run.steps` | none | Steps. |"
    import mrtrans

    assert {"max_steps", "batch_size", "lr", "lambda_smooth", "device", "seed"} <= set(
        inspect.signature(mrtrans.train).parameters
    )


@pytest.mark.parametrize("name", ["TrainConfig", "PrepareConfig", "EvalConfig", "TranslateConfig", "SynthConfig"])
def test_every_command_s_flags_are_distinct(name):
    """Two keys of one command with the same flag would be one option that sets either: refused here."""
    import mrtrans.config
    from mrtrans.config import argument_name, flagged

    names = [argument_name(f) for _, f, _ in flagged(getattr(mrtrans.config, name))]
    assert names and len(names) == len(set(names))
