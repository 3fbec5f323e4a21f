"""The one project exception: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import errno


class MrtransError(Exception):
    """A known bad input or state. The message says what, which file, and what to do."""


_HINTS = {
    errno.EACCES: "no permission; choose an output you can write to, or fix the permissions",
    errno.EPERM: "not permitted; choose an output you can write to, or fix the permissions",
    errno.EROFS: "read-only file system; choose an output on a writable disk",
    errno.ENOSPC: "disk full; free space or choose an output on another disk",
    errno.EDQUOT: "disk quota exceeded; free space or choose an output on another disk",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "is a folder where a file is expected; choose another path",
    errno.EEXIST: "already exists; choose another path",
    errno.ENAMETOOLONG: "name too long; choose a shorter path",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: the file, what happened, what to do."""
    where = exc.filename if exc.filename is not None else "?"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1)
    return f"{where}: {what}" + (f" ({hint})" if hint else "")
