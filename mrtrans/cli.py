"""The ``mrtrans`` command line: parse, load config, call one function. No logic lives here.

Error convention: a known bad input raises :class:`mrtrans.errors.MrtransError`; the command prints
``error: <message>`` on one line to stderr and exits with status 2. Operating-system errors (an
unwritable output, a full disk, a path under a file) are printed the same way, with the file.
``mrtrans --debug ...`` (or ``MRTRANS_DEBUG=1``) shows the traceback instead. Heavy modules are imported
inside commands so that ``--help`` is instant.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mrtrans import __version__
from mrtrans.config import (
    EvalConfig,
    ExportFormat,
    PrepareConfig,
    SynthConfig,
    TrainConfig,
    TranslateConfig,
    TranslatorConfig,
    argument_name,
    command_line_text,
    flag_name,
    flagged,
    from_dict,
    layer_preset_names,
    method_names,
    parse_assignments,
    publish,
    set_dotted,
)
from mrtrans.errors import MrtransError, describe_os_error
from mrtrans.logs import configure

# Commands import mrtrans.api (and through it torch, MONAI) inside themselves, so that `mrtrans --help` and every
# `--help` answer at once: the one kind of import inside functions that docs/architecture.md allows.

app = typer.Typer(
    name="mrtrans",
    help="Unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}
F = TypeVar("F", bound=Callable[..., Any])
UNIONS = (typing.Union, types.UnionType)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mrtrans {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Details too (DEBUG) on stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans."""
    if quiet and verbose:
        raise typer.BadParameter("give --quiet (-q) or --verbose (-v), not both", param_hint="-q/-v")
    _DEBUG["on"] = debug or os.environ.get("MRTRANS_DEBUG", "") not in ("", "0")
    configure(-1 if quiet else 1 if verbose else 0)  # stage lines of long commands: INFO on stderr


benchmark_app = typer.Typer(
    help="Experiments that test the method's claims (mrtrans benchmark hallucination).", no_args_is_help=True
)
app.add_typer(benchmark_app, name="benchmark")


def command(name: str | None = None, group: typer.Typer = app) -> Callable[[F], F]:
    """Register a command that turns MrtransError into one line on stderr and exit status 2."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (MrtransError, OSError) as exc:
                if _DEBUG["on"]:
                    raise
                text = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
                typer.echo(f"error: {text}", err=True)
                raise typer.Exit(2) from None

        group.command(name)(wrapper)
        return fn

    return decorate


def flags(schema: type, layered: bool = False) -> Callable[[F], F]:
    """The command's flags generated from the keys of a config schema (``mrtrans.config``) that carry a help text
    (:func:`mrtrans.config.flagged`): each key's flag, help text, default and bounds come from its field, so a key
    given a help text in the schema is a flag with no change here.

    The command is written with one parameter ``config`` of type ``schema``; it receives the flags as that object,
    checked as a config file's keys are. ``layered``: the command reads config files too (prepare-brats' recipes,
    train's method configs), so a flag not given must leave the files' value alone: the command is written with a
    parameter ``options`` instead and receives the flags that were given, ``{dotted key: value}``, for the loader.
    """
    keys = flagged(schema)

    def option(f: dataclasses.Field[Any], tp: Any) -> inspect.Parameter:
        default = f.default
        optional = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in UNIONS else []
        inner = optional[0] if optional else tp
        bounded = {k: f.metadata[k] for k in ("min", "max") if f.metadata.get(k) is not None}
        if typing.get_origin(inner) is tuple:  # a list on the command line: comma-separated, as --set reads it; the
            inner, bounded, default = str, {}, command_line_text(default)  # loader checks each value's bounds
        if layered:  # not given: None, the files' value stays; the loader checks the bounds and names the key
            shown = command_line_text(default)
            info = typer.Option(flag_name(f), help=f.metadata.get("help", ""), show_default=shown or "none")
            tp, default = inner | None, None
        else:
            info = typer.Option(flag_name(f), help=f.metadata.get("help", ""), **bounded)
            tp = inner | None if optional else inner
        keyword = inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(argument_name(f), keyword, default=default, annotation=Annotated[tp, info])

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        into = "options" if layered else "config"
        own = [p for p in sig.parameters.values() if p.name != into]
        published = sig.replace(parameters=[*own, *(option(f, tp) for _, f, tp in keys)])

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            given = {key: kwargs.pop(argument_name(f)) for key, f, _ in keys}
            if layered:
                return fn(**kwargs, options={k: v for k, v in given.items() if v is not None})
            tree: dict[str, Any] = {}
            for key, value in given.items():
                set_dotted(tree, key, value)
            try:
                config = from_dict(schema, tree)
            except MrtransError as exc:  # the loader names the key; on the command line, name its flag
                text = str(exc)
                for key, f, _ in keys:
                    text = text.replace(f"config key '{key}'", flag_name(f))
                raise MrtransError(text) from None
            return fn(**kwargs, config=config)

        return publish(wrapper, published)  # type: ignore[no-any-return]

    return decorate


# `--set section.key=value`, repeatable, on every command that reads a config: any key of its schema without a flag
# of its own (the config reference: docs/training.md, docs/evaluation.md); checked by the config loader.
# The method configs (and layer presets such as cpu_small) `--config`/`--method` take by name, for --help.
METHOD_PRESETS = ", ".join(method_names())
LAYER_PRESETS = ", ".join(layer_preset_names())


def key_flag(schema: type, key: str) -> Any:
    """The typer option of one schema key (its flag and help text), for a command that takes the key by hand."""
    f = {f.name: f for f in dataclasses.fields(schema)}[key]
    return typer.Option(flag_name(f), help=f.metadata.get("help", ""))


CheckpointOption = Annotated[str, key_flag(TranslatorConfig, "checkpoint")]

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set any config key, e.g. --set loss.sigma=1 (repeat); named options win over it.",
    ),
]

# Options several commands share, declared once.
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")]


def _sets(items: list[str] | None) -> dict[str, Any]:
    return parse_assignments(items)


@command("synth-brats")
@flags(SynthConfig)
def synth_brats(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to create; one subfolder per subject (BraTS 2020 layout).")
    ],
    overwrite: OverwriteOption = False,
    config: SynthConfig = SynthConfig(),
) -> None:
    """Write synthetic BraTS-like subjects (FLAIR, T1, T1ce, T2, seg) for trying the pipeline."""
    from tqdm import tqdm

    from mrtrans.api import synth_brats as run_synth

    with tqdm(total=config.subjects, desc="synth-brats", unit="subject") as bar:
        ids = run_synth(out, config=config, overwrite=overwrite, progress=bar.update)
    typer.echo(f"wrote {len(ids)} subjects to {out}")


@command("prepare-brats")
@flags(PrepareConfig, layered=True)
def prepare_brats(
    root: Annotated[Path, typer.Argument(help="Dataset root: BraTS 2018-2021, BraTS 2023+ or MSD Task01 layout.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for the prepared slice set.")],
    config: Annotated[
        str, typer.Option("--config", help="Recipe YAML or a name in data_prep/ (default: the paper's protocol).")
    ] = "paper_protocol",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Subjects processed in parallel.")] = 1,
    overwrite: OverwriteOption = False,
    sets: SetOption = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Turn BraTS volumes into balanced healthy/tumor 2D slice sets, split by patient. Every key of the recipe
    (mrtrans.config.PrepareConfig) is a flag; a flag given wins over the recipe and --set."""
    from tqdm import tqdm

    from mrtrans.api import prepare_brats as run_prepare

    bar = tqdm(desc="prepare-brats", unit="subject", total=0)

    def on_start(report, n):  # type: ignore[no-untyped-def]
        tqdm.write(report.summary())
        bar.reset(total=n)

    with bar:
        summary = run_prepare(
            root,
            out,
            config,
            workers=workers,
            overwrite=overwrite,
            overrides={**_sets(sets), **(options or {})},  # a flag given wins over --set
            progress=bar.update,
            on_start=on_start,
        )
    _echo_prepared(summary)


def _echo_prepared(summary: Any) -> None:
    """prepare-brats' notes (resampled subjects), skipped subjects with why, and the counts it wrote."""
    for note in summary.notes:
        typer.echo(note)
    for sid, reason in summary.skipped:
        typer.echo(f"skipped {sid}: {reason}")
    counts = ", ".join(f"{k}={v}" for k, v in summary.counts.items())
    typer.echo(f"wrote {summary.out} ({counts})")


@command("train")
@flags(TrainConfig, layered=True)
def train(
    direction: Annotated[
        str, typer.Argument(help="flair2t1 or t12flair (any <source>2<target> of the prepared pair).")
    ],
    data: Annotated[Path, typer.Option("--data", help="Folder written by prepare-brats.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (config, checkpoints, losses, samples).")],
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            help=f"Method config, a name in configs/ ({METHOD_PRESETS}) or a YAML path; default harmonicgan_hist.",
        ),
    ] = None,
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset", help=f"Extra config layered on top: a size/schedule preset ({LAYER_PRESETS}) or a YAML."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="Total epochs, split half constant lr, half linear decay (paper: 200)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT from its last checkpoint.")] = False,
    sets: SetOption = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Train a translation method on a prepared slice set: HarmonicGAN by default, or any --config of configs/ (the
    paper's CycleGAN, DiscoGAN, DistanceGAN, UNIT; CUT, FastCUT; pix2pix, the paired upper bound: docs/methods.md).
    With validation patients in the set, best.pt is kept beside last.pt. Multi-GPU (cycle methods and UNIT):
    torchrun --nproc_per_node=N -m mrtrans train ...
    """
    from mrtrans.api import train as run_train

    checkpoint = run_train(
        direction,
        data,
        out,
        config,
        preset,
        epochs=epochs,
        resume=resume,
        overrides={**_sets(sets), **(options or {})},  # a flag given wins over --set
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line rather than one per process
        typer.echo(f"checkpoint: {checkpoint}")


@command("translate")
@flags(TranslateConfig)
def translate(
    inputs: Annotated[
        str,
        typer.Argument(
            help="A NIfTI file, a folder of them, or a quoted glob ('scans/*_flair.nii.gz'); with --bids-out a BIDS "
            "dataset's root; with --naming the segmenter's input tree."
        ),
    ],
    model: Annotated[Path, typer.Option("--model", help="Run folder of `mrtrans train`, or a checkpoint file.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output .nii.gz for one input, else a folder (names follow the inputs)."),
    ] = None,
    config: TranslateConfig = TranslateConfig(),
) -> None:
    """Translate whole volumes (NIfTI files or DICOM series folders); outputs keep the input's grid (shape, affine,
    qform/sform, header). Inputs at another voxel size than the model's are resampled to it and back."""
    from tqdm import tqdm

    from mrtrans.api import translate_files
    from mrtrans.inference.translate import cohort_part, expand_inputs

    files = None
    if config.bids_out is None and config.naming is None:  # plain files: known up front, for the progress bar
        found = expand_inputs(inputs)
        files = cohort_part(found, config.num_parts, config.part_id)
        if not files:
            typer.echo(f"part {config.part_id} of {config.num_parts}: nothing to do ({len(found)} inputs in all)")
            return
        config = dataclasses.replace(config, num_parts=1, part_id=0)  # the part is chosen here
    total = None if files is None else len(files)
    with tqdm(total=total, desc="translate", unit="volume", disable=total == 1) as bar:
        report = translate_files(inputs if files is None else files, out, model, config=config, progress=bar.update)
    _echo_translated(report)


def _echo_translated(report: Any) -> None:
    """One line per volume translate wrote, wrote again, kept or failed; exit 2 when one failed."""
    for path in report.written:
        typer.echo(f"wrote {path}")
    for path, why in report.replaced:
        typer.echo(f"wrote {path} again ({why})")
    for path in report.kept:
        typer.echo(f"kept {path} (made by an earlier translate from this source and model; --overwrite redoes it)")
    for _, reason in report.failed:
        typer.echo(f"failed: {reason}", err=True)
    if report.failed:
        done = len(report.written) + len(report.replaced) + len(report.kept) + len(report.failed)
        typer.echo(f"error: {len(report.failed)} of {done} volumes failed (listed above)", err=True)
        raise typer.Exit(2)


@command("export")
def export(
    model: Annotated[Path, typer.Argument(help="Run folder of `mrtrans train`, or a checkpoint file.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to create: the network file and preprocessing.json.")],
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="onnx (needs: pip install 'mrtrans\\[export]'), torchscript, or monai-bundle (a MONAI bundle: "
            "python -m monai.bundle run).",
        ),
    ] = ExportFormat.onnx,
    direction: Annotated[str | None, key_flag(TranslatorConfig, "direction")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if an earlier export wrote it.")] = False,
) -> None:
    """Write one direction's generator as ONNX or TorchScript, with its preprocessing (spacing, field size,
    intensity recipe) in preprocessing.json, to run it without mrtrans."""
    from mrtrans.api import export_model

    folder = export_model(model, out, format, direction, overwrite=overwrite)
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name[0] != ".")
    typer.echo(f"wrote {folder} ({', '.join(written)})")


@command("evaluate")
@flags(EvalConfig, layered=True)
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Folder written by prepare-brats (its paired test slices).")],
    out: Annotated[
        Path, typer.Option("--out", help="Report folder (CSV tables, report.md, brain.tex, paper.tex, figures).")
    ],
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run folders of `mrtrans train` (or checkpoint files). None: only the baseline, the ceiling "
            "and the sanity rows - what the instrument can see on this data."
        ),
    ] = None,
    config: Annotated[str, typer.Option("--config", help="Evaluation YAML or a name in evaluation/.")] = "default",
    audit_steps: Annotated[
        int | None, typer.Option("--audit-steps", min=1, help="Training steps of the tumor detector and the segmenter.")
    ] = None,
    no_audit: Annotated[
        bool,
        typer.Option(
            "--no-audit", help="Skip the trained tumor instruments (detector, segmenter); CNR presence still runs."
        ),
    ] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where trained detectors are cached.")] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference", help="Run (folder name) the others are compared with; default the first CycleGAN run."
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    checkpoint: CheckpointOption = "last",
    allow_training_patients: Annotated[
        bool,
        typer.Option(
            "--allow-training-patients",
            help="Score a run on test patients it trained on (refused otherwise); every table then says so.",
        ),
    ] = False,
    sets: SetOption = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Score runs on the paired test slices beside the copy-source baseline: MAE/MSE/PSNR/SSIM with patient-bootstrap
    CIs (brain_shared, brain and paper protocols), paired comparisons, seeds, per-lesion tumor presence (keepable
    lesions first), what a segmenter of the real sequence finds, and additions."""
    from mrtrans.api import evaluate as run_evaluate

    report = run_evaluate(
        runs or [],
        data,
        out,
        config,
        audit=not no_audit,
        audit_steps=audit_steps,
        cache_dir=cache_dir,
        reference=reference,
        overwrite=overwrite,
        overrides={**_sets(sets), **(options or {})},  # a flag given wins over --set
        checkpoint=checkpoint,
        allow_training_patients=allow_training_patients,
    )
    typer.echo(f"report: {report} (report.md, summary.csv, per_slice.csv, tumor_summary.csv, figures/)")


@command("evaluate-volumes")
def evaluate_volumes(
    pred: Annotated[list[Path], typer.Option("--pred", help="Translated volume (repeat per subject).")],
    ref: Annotated[list[Path], typer.Option("--ref", help="Real target-modality volume, same grid (repeat).")],
    seg: Annotated[list[Path], typer.Option("--seg", help="Seg of the subject, same grid (repeat).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder.")],
    direction: Annotated[
        str, typer.Option("--direction", help="Direction of the translation, e.g. flair2t1.")
    ] = "flair2t1",
    name: Annotated[str, typer.Option("--name", help="Name of the method in the tables.")] = "translate",
    rules: Annotated[
        str,
        typer.Option(
            "--rules", help="Slice rules: a prepare recipe YAML or name in data_prep/ (default: paper_protocol)."
        ),
    ] = "paper_protocol",
    overwrite: OverwriteOption = False,
) -> None:
    """Score `mrtrans translate` outputs ([0, 1]) against reference volumes, paired by subject ID: the slices
    prepare-brats' rules keep, plus through-plane consistency and coronal/sagittal SSIM (no audit)."""
    from mrtrans.api import evaluate_volumes as run_volumes

    report = run_volumes(pred, ref, seg, out, direction, name=name, rules=rules, overwrite=overwrite)
    typer.echo(f"report: {report}")


@command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo makes.")] = Path("demo"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start afresh, replacing a demo in OUT (else it is continued).")
    ] = False,
) -> None:
    """Run the whole job on synthetic data: synth -> prepare -> train CycleGAN and HarmonicGAN -> translate ->
    evaluate. Interrupted (Ctrl-C, a kill), the same command continues where it stopped.
    """
    import signal

    from mrtrans.experiments.demo import demo_status, run_demo

    def stop(signum: int, frame: object) -> None:  # a kill is handled as Ctrl-C: say where the demo stands
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        report = run_demo(out, overwrite=overwrite)
    except KeyboardInterrupt:
        typer.echo(
            f"\ninterrupted: {demo_status(out)}. Run the same command again (make demo, or mrtrans demo --out "
            f"{out}) to continue from there; finished stages are kept.",
            err=True,
        )
        raise typer.Exit(130) from None
    typer.echo(
        f"\nResults: {report}/report.md (tables), {report}/summary.csv, {report}/figures/, "
        f"translated volume in {out}/translated/, runs in {out}/runs/"
    )


@command("reproduce-table1")
def reproduce_table1(
    out: Annotated[Path, typer.Option("--out", help="Folder for data, runs, report and table1.md; resumable.")],
    root: Annotated[
        Path | None, typer.Argument(help="BraTS dataset root; omitted: synthetic subjects made by the command.")
    ] = None,
    scale: Annotated[
        str,
        typer.Option(
            "--scale", help="paper (the paper's protocol and schedule; GPU days) or cpu (~30 min on 2 cores)."
        ),
    ] = "paper",
    config: Annotated[
        str | None, typer.Option("--config", help="A reproduction YAML instead of --scale's preset.")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help=f"A method beyond the paper's six, in rows after them (repeat or comma list): {METHOD_PRESETS}.",
        ),
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="Number of seeds (0..N-1) per method.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Training runs in parallel.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Torch threads per training run (default: the cores this process may use, shared out over --jobs; "
            "1 on a machine busy with other work).",
        ),
    ] = None,
    sets: SetOption = None,
) -> None:
    """Train CycleGAN, DiscoGAN, DistanceGAN, UNIT, HarmonicGAN-histogram and HarmonicGAN-VGG on one prepared set,
    evaluate them, and write the paper's Table 1 for both directions with confidence intervals, beside the
    published numbers, plus the tumor audit per method. A killed run continues where it stopped."""
    from mrtrans.api import reproduce_table1 as run_reproduce

    methods = [m.strip() for item in method or [] for m in item.split(",") if m.strip()]
    table = run_reproduce(
        out, root, scale, config=config, methods=methods, seeds=seeds, jobs=jobs, threads=threads, overrides=_sets(sets)
    )
    typer.echo(f"table: {table}")


@command("hallucination", group=benchmark_app)
def benchmark_hallucination(
    out: Annotated[
        Path, typer.Option("--out", help="Benchmark folder (data, runs, report, hallucination.md); resumable.")
    ],
    root: Annotated[
        Path | None, typer.Argument(help="BraTS dataset root; omitted: synthetic subjects made by the benchmark.")
    ] = None,
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="Benchmark YAML or a name in evaluation/: hallucination_cpu (default, 35 runs: about 8 h on "
            "2 cores; its balanced setting with 3 seeds, best and last scored: 1 h 50 min), "
            "hallucination_real (a BraTS root at 2 mm), "
            "hallucination_paper (a GPU).",
        ),
    ] = "hallucination_cpu",
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method", help=f"Method config ({METHOD_PRESETS}, or a YAML), repeat; the first is the reference."
        ),
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="Number of seeds (0..N-1).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs per run.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Training runs in parallel.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Torch threads per training run (default: the cores this process may use, shared out over --jobs; "
            "1 on a machine busy with other work).",
        ),
    ] = None,
    train_preset: Annotated[
        list[str] | None,
        typer.Option(
            "--train-preset", help=f"Training config layered on every method ({LAYER_PRESETS}, or a YAML); repeat."
        ),
    ] = None,
    sets: SetOption = None,
) -> None:
    """Train CycleGAN and HarmonicGAN in the balanced setting and on skewed target domains; do they erase or add tumors?

    Cohen et al. (2018): a target domain without tumors pushes a translator to remove them, one with only
    tumors to add them; balanced is the paper's own setting. Writes OUT/hallucination.md: the smoothness
    graph's statistics (can the term act at this scale?), what the audit can decide, the tumor outcomes over
    seeds, and per setting and direction an answer - better, worse, equivalent (within the preset's margin),
    inconclusive (too few lesions to tell: the report gives the smallest difference it could detect), not at
    this scale, or cannot decide - from a hierarchical bootstrap over seeds, patients and lesions.
    """
    from mrtrans.api import benchmark_hallucination as run_benchmark

    table = run_benchmark(
        out,
        root,
        config,
        methods=method,
        seeds=seeds,
        epochs=epochs,
        jobs=jobs,
        threads=threads,
        train_presets=train_preset or (),
        overrides=_sets(sets),
    )
    typer.echo(f"table: {table}")
