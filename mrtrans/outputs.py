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


def write_marker(folder: Path, kind: OutputKind) -> None:
    record = {
        "kind": kind.name,
        "mrtrans_version": __version__,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / MARKER).write_text(json.dumps(record, indent=2))
    os.chmod(folder / MARKER, 0o666 & ~umask())


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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
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
