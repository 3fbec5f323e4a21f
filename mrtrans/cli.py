"""The ``mrtrans`` command line: parse, load config, call one function. No logic lives here.

Error convention: a known bad input raises :class:`mrtrans.errors.MrtransError`; the command prints
``error: <message>`` on one line to stderr and exits with status 2. ``mrtrans --debug ...`` (or
``MRTRANS_DEBUG=1``) shows the traceback instead. Heavy modules are imported inside commands so
that ``--help`` is instant.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mrtrans import __version__
from mrtrans.errors import MrtransError

app = typer.Typer(
    name="mrtrans",
    help="Unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}
F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mrtrans {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans."""
    _DEBUG["on"] = debug or os.environ.get("MRTRANS_DEBUG", "") not in ("", "0")


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a command that turns MrtransError into one line on stderr and exit status 2."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MrtransError as exc:
                if _DEBUG["on"]:
                    raise
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None

        app.command(name)(wrapper)
        return fn

    return decorate


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 16:
        raise MrtransError(f"--shape {text!r}: expected three integers >= 16 separated by commas, e.g. 240,240,155")
    return shape  # type: ignore[return-value]


@command("synth-brats")
def synth_brats(
    out: Annotated[Path, typer.Argument(help="Folder to create; one subfolder per subject (BraTS 2020 layout).")],
    subjects: Annotated[int, typer.Option("--subjects", min=1, help="Number of subjects.")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same files.")] = 0,
    shape: Annotated[str, typer.Option("--shape", help="Volume shape X,Y,Z in 1 mm voxels.")] = "240,240,155",
    tumor_fraction: Annotated[
        float, typer.Option("--tumor-fraction", min=0.0, max=1.0, help="Share of subjects with a tumor.")
    ] = 0.67,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Write synthetic BraTS-like subjects (FLAIR, T1, T1ce, T2, seg) for trying the pipeline."""
    from tqdm import tqdm

    from mrtrans.config import SynthConfig, load_config
    from mrtrans.synth import write_synthetic_brats

    cfg = load_config(
        SynthConfig,
        overrides={"subjects": subjects, "seed": seed, "shape": _parse_shape(shape), "tumor_fraction": tumor_fraction},
    )
    with tqdm(total=cfg.subjects, desc="synth-brats", unit="subject") as bar:
        ids = write_synthetic_brats(out, cfg, overwrite=overwrite, progress=bar.update)
    typer.echo(f"wrote {len(ids)} subjects to {out}")
