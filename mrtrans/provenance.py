"""What produced a result: package versions and the git commit of the code."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from mrtrans import __version__


@functools.cache
def versions() -> dict[str, str]:
    import monai
    import numpy
    import torch

    # str(): torch.__version__ is a TorchVersion object, which a weights_only load refuses.
    return {
        "mrtrans": str(__version__),
        "python": str(platform.python_version()),
        "torch": str(torch.__version__),
        "monai": str(monai.__version__),
        "numpy": str(numpy.__version__),
        "cuda": str(torch.version.cuda),
    }


@functools.cache
def git_commit() -> str:
    """The commit of the mrtrans checkout (with ``+dirty`` for local changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
