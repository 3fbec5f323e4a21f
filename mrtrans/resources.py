"""Where the declarative folders (configs/, data_prep/, evaluation/) are.

In a wheel they ship as ``mrtrans/_resources/<name>`` (hatchling force-include); in a
checkout or an editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Path of ``configs``, ``data_prep`` or ``evaluation``, installed or in a checkout."""
    installed = _PACKAGE / "_resources" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
