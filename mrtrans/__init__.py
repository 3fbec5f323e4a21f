"""mrtrans: unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans.

The public API is what ``__all__`` lists, plus the MONAI transforms in :mod:`mrtrans.monai`
(see docs/python.md). Every other module is internal and may change between versions. Names load
on first use, so ``import mrtrans`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.5.0"

_PUBLIC = {
    "synth_brats": "mrtrans.api",
    "prepare_brats": "mrtrans.api",
    "train": "mrtrans.api",
    "load_translator": "mrtrans.api",
    "translate": "mrtrans.api",
    "translate_files": "mrtrans.api",
    "evaluate": "mrtrans.api",
    "evaluate_volumes": "mrtrans.api",
    "reproduce_table1": "mrtrans.api",
    "benchmark_hallucination": "mrtrans.api",
    "export_model": "mrtrans.api",
    "Translator": "mrtrans.inference.translate",
    "TranslateReport": "mrtrans.inference.translate",
    "Direction": "mrtrans.domain",
    "MrtransError": "mrtrans.errors",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mrtrans' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
