"""One logger for the project: ``mrtrans``; every module logs to its child ``logging.getLogger(__name__)``.

Stage lines of long commands (``[  12 s] train 2 of 4 runs ...``) are INFO, details DEBUG, problems WARNING.
The library adds no handler (a Python user chooses, e.g. ``logging.basicConfig(level=logging.INFO)``); the
CLI calls :func:`configure`: INFO to stderr, ``--quiet`` WARNING, ``--verbose`` DEBUG. Results a command
prints for its user (paths written, tables) go to stdout; logs go to stderr, so a pipeline can keep them apart.
"""

from __future__ import annotations

import logging
import sys

NAME = "mrtrans"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def configure(verbosity: int = 0) -> logging.Logger:
    """Send the ``mrtrans`` logger to stderr as bare lines at the level of ``verbosity`` (-1, 0 or 1)."""
    logger = logging.getLogger(NAME)
    for handler in [h for h in logger.handlers if getattr(h, "mrtrans_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)  # the stream of this call (a test runner swaps sys.stderr)
    handler.mrtrans_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    logger.propagate = False  # the CLI's lines once, whatever the root logger does
    return logger
