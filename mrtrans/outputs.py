"""Who may write where: the one rule every command follows for its outputs.

A command never deletes or overwrites anything it did not create:

* An output folder is written under a hidden temporary name beside its destination and moved into
  place when complete (:func:`atomic_dir`). It then carries a marker file (``MARKER``) saying which
  command made it. ``--overwrite`` replaces only a folder whose marker names the same kind of output;
  a folder without one (data, a folder the user made, an output of another command) is never removed.
* An output is never the same as, inside, or around an input of the command
  (``prepare-brats ROOT --out ROOT/..`` would otherwise remove the data it reads).
* Checks run before any work (:func:`check_output`), and again before the final move.
* One writer per output: a lock file beside the destination (:func:`output_lock`) makes a second
  command into the same output stop with a line that names the first. A lock whose process is gone
  (killed, machine restarted) is taken over.
* Leftovers of a killed run into that output (temporary folders carrying the marker) are removed by
  the next run into it, under the lock; nothing without the marker is touched.
* Experiments (demo, reproduce-table1, benchmark hallucination) claim their folder here too
  (:func:`claim_experiment`, :func:`start_fresh`): the marker carries the experiment's record (its config
  and data root), so a re-run continues only the same experiment.
* A translated NIfTI file carries its mark in its header (``descrip``, :func:`written_by_translate`):
  a single file has no folder to hold a marker.

Outputs of older versions, which wrote no marker, are recognised by what they hold (:func:`made_by`).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from mrtrans import __version__
from mrtrans.errors import MrtransError

MARKER = ".mrtrans-output.json"


class OutputKind(str, enum.Enum):
    """What a marked folder holds; ``--overwrite`` replaces a folder of the same kind only."""

    synth = "synthetic BraTS subjects (mrtrans synth-brats)"
    prepared = "prepared slice set (mrtrans prepare-brats)"
    report = "evaluation report (mrtrans evaluate)"
    demo = "demo folder (mrtrans demo)"
    run = "training run (mrtrans train)"
    export = "exported model (mrtrans export)"
    benchmark = "hallucination benchmark (mrtrans benchmark hallucination)"
    reproduction = "Table 1 reproduction (mrtrans reproduce-table1)"


# The start of the NIfTI ``descrip`` of every translation: how translate's --overwrite knows its own files.
TRANSLATION_DESCRIPTION_PREFIX = "mrtrans "
# mrtrans < 0.3 kept an experiment's record in a file of its own, beside no marker.
LEGACY_RECORD_FILES = {OutputKind.benchmark: "benchmark.json", OutputKind.reproduction: "reproduction.json"}
# What an unmarked demo folder of mrtrans < 0.2 held, and nothing else.
LEGACY_DEMO_ENTRIES = {"brats", "prepared", "runs", "translated", "report", "cache"}


def umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def marker_kind(folder: Path) -> OutputKind | None:
    """The kind recorded in ``folder``'s marker, or None when there is no readable marker."""
    try:
        return OutputKind[json.loads((folder / MARKER).read_text())["kind"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def made_by(folder: Path, kind: OutputKind) -> bool:
    """Whether ``folder`` is a ``kind`` output: its marker says so, or it is an unmarked one of an older version."""
    if marker_kind(folder) is kind:
        return True
    if (folder / MARKER).exists():
        return False
    if kind is OutputKind.run:
        return (folder / "run.json").is_file()  # runs of mrtrans < 0.2
    if kind is OutputKind.demo:  # demos of mrtrans < 0.2: exactly what the demo wrote
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        return bool(names) and names <= LEGACY_DEMO_ENTRIES and (folder / "prepared" / "prepare.json").is_file()
    if kind is OutputKind.report:  # reports of mrtrans < 0.2
        return (folder / "summary.csv").is_file() and (folder / "per_slice.csv").is_file()
    if kind in LEGACY_RECORD_FILES:
        return (folder / LEGACY_RECORD_FILES[kind]).is_file()  # experiments of mrtrans < 0.3
    return False


def adopt_legacy(folder: Path, kind: OutputKind) -> None:
    """Mark an unmarked ``kind`` output of an older version (:func:`made_by`), so the usual rules (check_output,
    ``--overwrite`` of the same kind) apply to it; anything else is left as it is."""
    if folder.is_dir() and not (folder / MARKER).exists() and made_by(folder, kind):
        write_marker(folder, kind)


def write_marker(folder: Path, kind: OutputKind, record: dict | None = None) -> None:
    """Write ``folder``'s marker (atomically: a half-written marker would lock the folder out of later runs).

    Args:
        record: what an experiment records of itself (config, data root); compared by :func:`claim_experiment`.
    """
    marker = {
        "kind": kind.name,
        "mrtrans_version": __version__,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **({"record": record} if record is not None else {}),
    }
    tmp = folder / f".{MARKER}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(marker, indent=2))
    os.chmod(tmp, 0o666 & ~umask())
    os.replace(tmp, folder / MARKER)


def written_by_translate(path: Path) -> bool:
    """True when ``path`` is a NIfTI file whose header says ``mrtrans translate`` wrote it."""
    import nibabel as nib

    try:
        descrip = nib.load(str(path)).header["descrip"].tobytes()
    except Exception:  # not NIfTI, unreadable: not ours
        return False
    return descrip.startswith(TRANSLATION_DESCRIPTION_PREFIX.encode())


def _experiment_record(out: Path, kind: OutputKind) -> dict:
    """The record an earlier run of experiment ``kind`` left in ``out`` (its marker, or an older version's file).

    Raises:
        MrtransError: ``out`` was made by something else, or its record is damaged.
    """
    marked = (out / MARKER).exists()
    path = out / MARKER if marked else out / LEGACY_RECORD_FILES.get(kind, MARKER)
    if not made_by(out, kind) and not (marked and marker_kind(out) is None):
        raise MrtransError(f"{out}: exists and was not made by {kind.value}; choose another --out")
    try:
        content = json.loads(path.read_text())
        record = content.get("record", {}) if marked else content
        if (
            not isinstance(content, dict)
            or not isinstance(record, dict)
            or not isinstance(record.get("config", {}), dict)
        ):
            raise ValueError("not a record")
    except (OSError, ValueError, AttributeError) as exc:
        raise MrtransError(
            f"{path}: damaged record of an earlier {kind.value} ({type(exc).__name__}); if this folder is yours to "
            "discard, remove it, else choose another --out"
        ) from None
    return record


def claim_experiment(
    out: str | Path, kind: OutputKind, record: dict, inputs: Iterable[str | Path] = (), not_binding: Iterable[str] = ()
) -> None:
    """Create ``out`` as a marked ``kind`` folder, or accept it when an earlier run of the same experiment made it.

    ``record`` (``{"config": ..., "root": ...}``) goes into the marker; an existing folder is accepted only when its
    record equals this one in everything but the config keys in ``not_binding`` (what a re-run may change, e.g.
    the evaluation settings). The marker then holds the latest record.

    Raises:
        MrtransError: ``out`` overlaps an input, was made by something else, or holds another experiment.
    """
    out = Path(out)
    check_inputs(out, inputs)  # before anything is written: never into the user's dataset
    if out.exists() and not out.is_dir():
        raise MrtransError(f"{out}: is a file, not a folder; choose another --out")
    skip = set(not_binding)

    def binding(rec: dict) -> dict:
        return {"root": rec.get("root"), **{k: v for k, v in rec.get("config", {}).items() if k not in skip}}

    if out.is_dir() and any(out.iterdir()):
        if binding(_experiment_record(out, kind)) != binding(record):
            raise MrtransError(
                f"{out}: holds a {kind.value} with other data, methods, seeds or training; choose another --out "
                "(or give the same options as before to continue it)"
            )
    else:
        make_folder(out)
    write_marker(out, kind, record)


def start_fresh(out: str | Path, kind: OutputKind, overwrite: bool = False) -> Path:
    """Make ``out`` an empty, marked ``kind`` folder; an existing one is replaced only with ``overwrite`` and only
    when it is a ``kind`` output (an older version's unmarked one included). Call under :func:`output_lock`.

    Raises:
        MrtransError: as :func:`check_output`.
    """
    out = Path(out)
    if overwrite:
        adopt_legacy(out, kind)  # an unmarked output of an older version, to be replaced
    check_output(out, kind, overwrite)
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)  # a `kind` folder (its marker says so): everything in it was made by that command
    out.mkdir(parents=True)
    write_marker(out, kind)
    return out


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def check_inputs(out: str | Path, inputs: Iterable[str | Path], option: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside one of the command's inputs.

    Raises:
        MrtransError: naming the input and the relation.
    """
    out_r = Path(out).resolve()
    for inp in inputs:
        relation = _relation(out_r, Path(inp).resolve())
        if relation:
            raise MrtransError(
                f"{option} {out}: {relation} the input {inp}; write outputs to a folder outside the inputs"
            )


def check_output(out: str | Path, kind: OutputKind, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
    """Everything that would stop writing ``out``, checked before any work.

    Raises:
        MrtransError: ``out`` overlaps an input, is a file, exists without ``overwrite``, or
            exists and was not made by the same kind of command.
    """
    out = Path(out)
    check_inputs(out, inputs)
    if out.exists() and not out.is_dir():
        raise MrtransError(f"{out}: is a file, not a folder; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise MrtransError(f"{out}: output folder exists and is not empty; choose another --out or pass --overwrite")
    found = marker_kind(out)
    if found is None:
        raise MrtransError(
            f"{out}: exists and was not made by mrtrans (no {MARKER}); --overwrite only replaces mrtrans outputs. "
            f"Choose another --out, or remove the folder yourself"
        )
    if found is not kind:
        raise MrtransError(
            f"{out}: holds output of another kind ({found.value}; this command writes: {kind.value}); "
            f"--overwrite replaces only the same kind of output"
        )


def make_folder(folder: str | Path) -> Path:
    """``mkdir -p`` with one clear line when a part of the path is a file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise MrtransError(
            f"{folder}: cannot create this folder, a part of its path is a file; choose another path"
        ) from None
    return folder


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs. A value no process can have (0 or less, beyond the platform's
    pid range) is not alive: 0 and negative values would otherwise ask about process groups."""
    if isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):  # beyond the pid range: no such process
        return False
    return True


UNREADABLE_LOCK_STALE_S = 60.0  # a writer fills its lock at once: one still unreadable after this is debris


@contextlib.contextmanager
def output_lock(final: str | Path, stale_after: float | None = None) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``final`` while writing it; a second writer is refused.

    A lock is taken over when its holder is known to be gone: a process of this host that no longer runs, a
    lock file that is still unreadable after a minute, or - with ``stale_after`` (seconds) - a lock of
    another host older than that (a job killed on another cluster node cannot be asked whether it runs).

    Raises:
        MrtransError: another live process holds the lock.
    """
    final = Path(final)
    make_folder(final.parent)
    lock = _lock_path(final)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError):
                holder, age = {}, time.time() - _mtime(lock)
            holder = holder if isinstance(holder, dict) else {}
            known = isinstance(holder.get("pid"), int) and isinstance(holder.get("host"), str)
            here = known and holder["host"] == me["host"]
            stale = (
                (here and not _alive(holder["pid"]))
                or (not known and age > UNREADABLE_LOCK_STALE_S)
                or (known and not here and stale_after is not None and age > stale_after)
            )
            if stale:
                lock.unlink(missing_ok=True)  # our own kind of file, left by a process that is gone
                continue
            who = f"pid {holder['pid']} on {holder['host']}" if known else "a lock being written, or an unreadable one"
            raise MrtransError(
                f"{final}: another mrtrans command ({who}) is writing this output; wait for it, or remove {lock} "
                f"if that process is not running"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - the stale lock came back between two tries
        raise MrtransError(f"{final}: could not take the lock {lock}; try again")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def remove_leftovers(final: str | Path) -> list[Path]:
    """Remove temporary folders of earlier, killed runs into ``final`` (call under its lock).

    Only hidden ``.<name>.*.tmp`` folders that carry the marker are removed: mrtrans made them.
    """
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for path in final.parent.glob(f".{final.name}.*.tmp"):
        if path.is_dir() and not path.is_symlink() and marker_kind(path) is not None:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(
    final: str | Path, kind: OutputKind, overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; move it onto ``final`` if the block succeeds.

    The folder is marked as ``kind`` from the start (so a leftover is recognisably ours). An existing
    ``final`` is replaced only under the rules of :func:`check_output`, checked on entry and again
    before the move.

    Raises:
        MrtransError: see :func:`check_output` and :func:`output_lock`.
    """
    final = Path(final)
    inputs = list(inputs)
    check_output(final, kind, overwrite, inputs)
    with output_lock(final):
        remove_leftovers(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        try:
            os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the result is an ordinary folder
            write_marker(tmp, kind)
            yield tmp
            check_output(final, kind, overwrite, inputs)  # something may have appeared meanwhile
            old = None
            if final.is_dir() and any(final.iterdir()):
                old = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
                os.rename(final, old)  # marked (checked above): a leftover if we are killed now
            os.replace(tmp, final)  # rename(2) replaces an empty folder
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
