"""The words every layer shares: MRI sequences, translation directions, their display names, and the sequences on
which a tumor's core is what shows (the label conventions of each input layout are entries of
``mrtrans.data_prep.discovery.LAYOUTS``). The bottom layer of mrtrans: it imports nothing of the package but its error
type, and everything else may import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mrtrans.errors import MrtransError


class Modality(str, enum.Enum):
    """MRI sequences of BraTS. Aliases of the file names are resolved in data_prep.discovery."""

    flair = "flair"
    t1 = "t1"
    t1ce = "t1ce"
    t2 = "t2"


# How tables, figures and metadata name each sequence (one spelling everywhere).
DISPLAY = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}


def display_name(modality: str) -> str:
    """``flair`` -> ``FLAIR`` (unknown names as they are)."""
    return DISPLAY.get(str(modality), str(modality))


@dataclass(frozen=True)
class Direction:
    """A translation direction such as FLAIR -> T1 (``flair2t1``)."""

    source: str
    target: str

    @property
    def name(self) -> str:
        return f"{self.source}2{self.target}"

    @property
    def label(self) -> str:
        """``FLAIR → T1``: how reports name the direction."""
        return f"{display_name(self.source)} → {display_name(self.target)}"

    def reversed(self) -> Direction:
        return Direction(self.target, self.source)

    @classmethod
    def parse(cls, text: str) -> Direction:
        """``flair2t1`` -> Direction("flair", "t1"); modality names may contain digits (``t12flair``)."""
        names = [m.value for m in Modality]
        for a in names:
            for b in names:
                if a != b and text.lower() == f"{a}2{b}":
                    return cls(a, b)
        raise MrtransError(
            f"unknown direction {text!r}; use <source>2<target> with modalities {', '.join(names)} (e.g. flair2t1, "
            "t12flair)"
        )


def direction_label(name: str) -> str:
    """``flair2t1`` -> ``FLAIR → T1``."""
    return Direction.parse(name).label


CORE_SEQUENCES = ("t1", "t1ce")  # sequences on which edema is barely visible
