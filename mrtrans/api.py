"""The public Python API: the CLI's commands as functions with the CLI's arguments.

Import these from ``mrtrans`` (``mrtrans.prepare_brats``, ``mrtrans.load_translator``...). The CLI
(`mrtrans.cli`) only parses options and calls these, so a notebook and a shell run the same code.
Names outside ``mrtrans.__all__`` and ``mrtrans.monai`` are internal and may change between versions.

Every function raises :class:`mrtrans.MrtransError` for a bad input, with the file and what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mrtrans import __version__
from mrtrans.config import (
    EvalConfig,
    PrepareConfig,
    SynthConfig,
    TrainConfig,
    TranslateConfig,
    TranslatorConfig,
    epoch_schedule,
    load_config,
    schema_keys,
    takes,
    takes_flagged,
)
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.inference import naming as layouts
from mrtrans.inference.translate import (
    TranslateReport,
    Translator,
    check_mask,
    cohort_part,
    expand_inputs,
    file_jobs,
    load_translator,
    translate_jobs,
)

# Each function imports the engine of its command (training, evaluation, the experiments, export) inside itself, so
# that the first use of one name of ``mrtrans`` (which loads this module) does not load every engine: the one kind of
# import inside functions that docs/architecture.md allows.

__all__ = [
    "synth_brats",
    "prepare_brats",
    "train",
    "load_translator",
    "translate",
    "translate_files",
    "evaluate",
    "evaluate_volumes",
    "reproduce_table1",
    "benchmark_hallucination",
    "export_model",
]

ConfigSpec = str | Path | dict[str, Any] | Sequence[str | Path | dict[str, Any]]
# Dotted config keys and values (``{"loss.sigma": 1.0}``), applied after the config files: any key of the
# command's schema, as ``--set section.key=value`` on the command line. Named options win over them.
Overrides = Mapping[str, Any] | None


def _with(named: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    """``overrides`` and the named options that were given (not None), the named ones last."""
    return {**dict(overrides or {}), **{k: v for k, v in named.items() if v is not None}}


@takes(SynthConfig)
def synth_brats(
    out: str | Path,
    *,
    config: SynthConfig = SynthConfig(),
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write synthetic BraTS-like subjects (FLAIR, T1, T1ce, T2, seg; BraTS 2020 layout) to ``out``.

    Args:
        out: the folder to create.
        overwrite: replace ``out`` if an earlier synth-brats wrote it.
        progress: called with 1 after each subject.

    Returns:
        The subject IDs written.
    """
    from mrtrans.synth import write_synthetic_brats

    return write_synthetic_brats(out, config, overwrite=overwrite, progress=progress)


def prepare_brats(
    root: str | Path,
    out: str | Path,
    config: ConfigSpec = "paper_protocol",
    *,
    workers: int = 1,
    overwrite: bool = False,
    overrides: Overrides = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[Any, int], None] | None = None,
    **options: Any,
) -> Any:
    """``mrtrans prepare-brats``: BraTS volumes -> balanced healthy/tumor slice sets, split by patient.

    Args:
        root: dataset root (BraTS 2018-2021, 2023+ or MSD Task01 layout).
        out: folder to create.
        config: recipe YAML, a name in ``data_prep/`` or a dict.
        options: any key of the recipe (:class:`mrtrans.config.PrepareConfig`), e.g. ``image_size=64``,
            ``modalities=("flair", "t1")``, ``spacing=2`` (mm: in-plane, or (in-plane, through-plane)),
            ``bias_field_correction=True`` (N4, repeated by translate), ``allow_unstripped=True``,
            ``target_tumor_fraction=0``; None leaves the recipe's value.

    Returns:
        The summary (``out``, ``counts``, ``skipped`` subjects with reasons).

    Raises:
        MrtransError: an option that is not a key of the recipe, or a bad value (named).
    """
    from mrtrans.data_prep.prepare import prepare_brats as run_prepare

    unknown = sorted(set(options) - set(schema_keys(PrepareConfig)))
    if unknown:
        raise MrtransError(
            f"prepare_brats: unknown option {', '.join(unknown)}; the recipe's keys are "
            f"{', '.join(schema_keys(PrepareConfig))}"
        )
    if isinstance(options.get("modalities"), (list, tuple)):
        options["modalities"] = ",".join(options["modalities"])
    if isinstance(options.get("spacing"), (int, float)):
        options["spacing"] = [options["spacing"]]
    cfg = load_config(PrepareConfig, config, _with(options, overrides), folder="data_prep")
    return run_prepare(root, out, cfg, workers=workers, overwrite=overwrite, progress=progress, on_start=on_start)


@takes_flagged(TrainConfig)
def train(
    direction: str,
    data: str | Path,
    out: str | Path,
    config: ConfigSpec | None = None,
    preset: ConfigSpec | None = None,
    *,
    epochs: int | None = None,
    resume: bool = False,
    overrides: Overrides = None,
    show_progress: bool = True,
    named: dict[str, Any] | None = None,
) -> Path:
    """``mrtrans train``: train HarmonicGAN (default) or CycleGAN on a prepared slice set.

    Args:
        direction: ``"flair2t1"`` (any ``<source>2<target>`` of the prepared pair).
        config: method config(s): ``harmonicgan_hist`` (default), ``cyclegan``, ``harmonicgan_vgg``, a YAML
            path or a dict; ``preset`` layers more on top (e.g. ``cpu_small``).
        epochs: total epochs, half at constant lr, half in linear decay (``optim.epochs_constant`` and
            ``optim.epochs_decay``).
        resume: continue the run in ``out``; without ``config`` it keeps the run's own resolved config.
        overrides: any key, dotted (``{"loss.sigma": 1.0}``); the keyword arguments below win over it.

    Returns:
        The last checkpoint's path (``out/checkpoints/last.pt``).
    """
    from mrtrans.training.loop import train as run_train
    from mrtrans.training.resume import load_run_config

    out = Path(out)
    overrides = _with({**epoch_schedule(epochs), **(named or {})}, overrides)
    if resume and not config and (out / "config.yaml").is_file():
        cfg = load_run_config(out / "config.yaml", overrides)  # a resumed run keeps its own resolved config
    else:
        cfg = load_config(TrainConfig, [*_listed(config or "harmonicgan_hist"), *_listed(preset)], overrides)
    return run_train(data, out, Direction.parse(direction), cfg, resume=resume, show_progress=show_progress)


def _listed(spec: ConfigSpec | None) -> list[str | Path | dict[str, Any]]:
    if spec is None:
        return []
    return [spec] if isinstance(spec, (str, Path, dict)) else list(spec)


@takes(TranslatorConfig)
def translate(
    image: Any,
    model: str | Path | Translator,
    *,
    affine: Any = None,
    mask: Any = None,
    config: TranslatorConfig = TranslatorConfig(),
) -> Any:
    """Translate one volume in memory; the result has the input's kind and grid.

    Args:
        image: a NIfTI path or a ``nibabel`` image (-> ``nibabel`` image), a MONAI ``MetaTensor``
            (-> MetaTensor), a numpy array or torch tensor with ``affine`` (-> the same); (X, Y, Z)
            or (1, X, Y, Z).
        model: a run folder, a checkpoint, or a :class:`Translator` from :func:`load_translator`
            (load once when translating many volumes).
        mask: a brain mask on the image's grid (default: its non-zero voxels).

    Returns:
        Normalised target-sequence intensities in [0, 1], zero outside the brain. Use
        :func:`translate_files` to write files.
    """
    return load_translator(model, config=config)(image, affine=affine, mask=mask)


@takes(TranslateConfig)
def translate_files(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path | None,
    model: str | Path | Translator,
    *,
    config: TranslateConfig = TranslateConfig(),
    progress: Callable[[int], None] | None = None,
) -> TranslateReport:
    """``mrtrans translate``: NIfTI files in, NIfTI files out on each input's exact grid, each with a JSON sidecar.

    Args:
        inputs: a file, a folder of NIfTI files, a glob pattern, or a list of files; with ``bids_out`` a BIDS
            dataset's root; with ``naming`` the segmenter's input tree.
        out: an output ``.nii.gz`` for one input, else a folder (names follow the inputs); None with ``bids_out``.
        model: a run folder, a checkpoint, or a :class:`Translator` (then the model's keys below are its own).
        progress: called with 1 after each volume.

    Returns:
        The report: ``written``, ``kept`` and ``failed`` (path, reason) volumes.
    """

    bids_out, naming, mask = config.bids_out, config.naming, config.mask
    if bids_out is not None and (out is not None or naming is not None):
        raise MrtransError("--bids-out writes its own tree: give it without --out and --naming")
    if bids_out is None and out is None:
        raise MrtransError("give --out (or --bids-out for a BIDS dataset)")
    translator = load_translator(model, config=config)
    wanted = translator.direction
    if bids_out is not None:
        jobs = layouts.bids_jobs(Path(inputs), bids_out, wanted)
    elif naming is not None:
        jobs = layouts.segmenter_jobs(Path(inputs), Path(out), wanted, naming)
    else:
        files = expand_inputs(inputs) if isinstance(inputs, (str, Path)) else sorted(Path(p) for p in inputs)
        jobs = file_jobs(files, Path(out))
    layouts.check_distinct_outputs(jobs)  # on the whole cohort, before DERIV gets its description
    chosen = set(cohort_part([j.source for j in jobs], config.num_parts, config.part_id))
    jobs = [j for j in jobs if j.source in chosen]
    check_mask(mask, jobs)  # before DERIV gets its description
    if bids_out is not None and jobs:
        layouts.write_dataset_description(bids_out, Path(inputs), __version__)
    return translate_jobs(jobs, translator, mask, config.overwrite, progress)


@takes_flagged(EvalConfig)
def evaluate(
    runs: str | Path | Sequence[str | Path],
    data: str | Path,
    out: str | Path,
    config: ConfigSpec = "default",
    *,
    audit: bool = True,
    audit_steps: int | None = None,
    cache_dir: str | Path | None = None,
    reference: str | None = None,
    overwrite: bool = False,
    overrides: Overrides = None,
    checkpoint: str = "last",
    allow_training_patients: bool = False,
    named: dict[str, Any] | None = None,
) -> Path:
    """``mrtrans evaluate``: score runs on the prepared paired test slices, beside the copy-source baseline.

    Args:
        runs: run folders (or checkpoints); their folder names label the tables.
        checkpoint: each run folder's ``last`` (default) or ``best`` checkpoint; the report's checkpoints.csv
            names the file and the rule that chose it.
        data: the prepared set the runs were trained on.
        audit: run the trained tumor instruments: the additions detector and the segmenter (each trained on the real
            target training slices, or reused from the cache); per-lesion CNR presence runs either way.
        audit_steps: training steps of the detector and the segmenter.
        reference: run label the others are compared with; default the first CycleGAN run.
        allow_training_patients: score runs on test patients they trained on (refused otherwise; every table then
            says so).

    Returns:
        The report folder (``summary.csv``, ``per_slice.csv``, ``report.md``, figures/...).
    """
    from mrtrans.evaluation.evaluate import evaluate_runs

    runs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    named = {
        "audit.steps": audit_steps,
        "segmentation.steps": audit_steps,
        "audit.enabled": None if audit else False,
        "segmentation.enabled": None if audit else False,
        **(named or {}),
    }
    cfg = load_config(EvalConfig, config, _with(named, overrides), folder="evaluation")
    return evaluate_runs(
        runs,
        Path(data),
        Path(out),
        cfg,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        overwrite=overwrite,
        reference=reference,
        checkpoint=checkpoint,
        allow_training_patients=allow_training_patients,
    )


def evaluate_volumes(
    pred: Sequence[str | Path],
    ref: Sequence[str | Path],
    seg: Sequence[str | Path],
    out: str | Path,
    direction: str = "flair2t1",
    name: str = "translate",
    rules: ConfigSpec = "paper_protocol",
    overwrite: bool = False,
) -> Path:
    """``mrtrans evaluate-volumes``: score translated volumes against references, paired by subject ID.

    Returns:
        The report folder.
    """
    from mrtrans.evaluation.evaluate import evaluate_volumes as run_volumes

    prep = load_config(PrepareConfig, rules, folder="data_prep")
    paths = [[Path(p) for p in group] for group in (pred, ref, seg)]
    return run_volumes(*paths, Path(out), Direction.parse(direction), name=name, rules=prep, overwrite=overwrite)


def reproduce_table1(
    out: str | Path,
    root: str | Path | None = None,
    scale: str = "paper",
    *,
    config: ConfigSpec | None = None,
    methods: Sequence[str] = (),
    seeds: int | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    overrides: Overrides = None,
) -> Path:
    """``mrtrans reproduce-table1``: the paper's six methods trained and scored on one prepared set (resumable).

    Args:
        out: the reproduction's folder (a new one, or one an earlier call with the same settings made).
        root: a BraTS root; None makes synthetic subjects.
        scale: ``paper`` or ``cpu`` (the presets in ``evaluation/``); ``config`` replaces the preset.
        methods: method configs beyond the paper's (``cut``, ``fastcut``, ``pix2pix``...), in rows after its six.
        seeds: seeds 0..N-1 per method.
        jobs, threads: training runs at a time, torch threads per run (default: the usable cores over the jobs).

    Returns:
        The path of ``table1.md`` (``table1.csv`` and ``report/`` beside it).
    """
    from mrtrans.experiments.reproduce import ReproduceConfig
    from mrtrans.experiments.reproduce import reproduce_table1 as run_reproduce

    if scale not in ("paper", "cpu"):
        raise MrtransError(f"--scale {scale!r}: use paper or cpu")
    named = {"seeds": None if seeds is None else list(range(seeds)), "jobs": jobs, "threads": threads}
    cfg = load_config(ReproduceConfig, config or f"reproduce_{scale}", _with(named, overrides), folder="evaluation")

    extra = tuple(m for m in methods if m not in cfg.methods)
    return run_reproduce(out, dataclasses.replace(cfg, methods=cfg.methods + extra), root=root)


def benchmark_hallucination(
    out: str | Path,
    root: str | Path | None = None,
    config: ConfigSpec = "hallucination_cpu",
    *,
    methods: Sequence[str] | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    train_presets: Sequence[str] = (),
    overrides: Overrides = None,
) -> Path:
    """``mrtrans benchmark hallucination``: do translators erase or add tumors (balanced and skewed settings)?

    Args:
        out: the benchmark's folder (a new one, or one an earlier call with the same settings made).
        root: a BraTS root; None makes synthetic subjects.
        config: a benchmark YAML or a name in ``evaluation/`` (``hallucination_cpu``, ``_real``, ``_paper``).
        methods: method configs (the first is the reference); seeds: seeds 0..N-1.
        jobs, threads: training runs at a time, torch threads per run (default: the usable cores over the jobs).
        train_presets: training configs layered on every method, after the benchmark's own (``train_presets``).

    Returns:
        The path of ``hallucination.md``.
    """

    from mrtrans.experiments.hallucination import HallucinationConfig, run_hallucination_benchmark

    named = {
        "methods": list(methods) if methods else None,
        "seeds": None if seeds is None else list(range(seeds)),
        "epochs": epochs,
        "jobs": jobs,
        "threads": threads,
    }
    cfg = load_config(HallucinationConfig, config, _with(named, overrides), folder="evaluation")
    if train_presets:
        cfg = dataclasses.replace(cfg, train_presets=(*cfg.train_presets, *train_presets))
    return run_hallucination_benchmark(out, cfg, root=None if root is None else Path(root))


def export_model(
    model: str | Path, out: str | Path, format: str = "onnx", direction: str | None = None, overwrite: bool = False
) -> Path:
    """``mrtrans export``: one direction's generator as ONNX or TorchScript (with preprocessing.json), or a MONAI
    bundle; ``format`` is ``--format``: ``onnx``, ``torchscript`` or ``monai-bundle``.

    Returns:
        The folder written.
    """
    from mrtrans.export import export_model as run_export

    return run_export(model, out, format, direction, overwrite=overwrite)
