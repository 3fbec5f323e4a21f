"""Find subjects under a dataset root, for the BraTS layouts people actually have.

* BraTS 2018-2021: ``<ID>/<ID>_{flair,t1,t1ce,t2,seg}.nii[.gz]``, possibly nested under ``HGG/``,
  ``LGG/`` or ``MICCAI_BraTS20xx_TrainingData/``.
* BraTS 2023+: ``<ID>/<ID>-{t2f,t1n,t1c,t2w,seg}.nii.gz``.
* Medical Segmentation Decathlon Task01_BrainTumour: 4D ``imagesTr/<ID>.nii.gz`` with channels
  FLAIR, T1w, t1gd, T2w, and ``labelsTr/<ID>.nii.gz``.

File-name aliases are resolved here and nowhere else.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from mrtrans.domain import Modality
from mrtrans.errors import MrtransError
from mrtrans.io import nifti_suffix, strip_nifti_suffix

SEG = "seg"

# File-name suffix (after the subject ID and its separator) -> modality or "seg".
ALIASES: dict[str, str] = {
    "flair": Modality.flair.value,
    "t1": Modality.t1.value,
    "t1ce": Modality.t1ce.value,
    "t2": Modality.t2.value,
    "seg": SEG,
    # BraTS 2023+
    "t2f": Modality.flair.value,
    "t1n": Modality.t1.value,
    "t1c": Modality.t1ce.value,
    "t2w": Modality.t2.value,
}

# Channel order of the MSD Task01_BrainTumour 4D images (dataset.json "modality").
MSD_CHANNELS: dict[str, int] = {
    Modality.flair.value: 0,
    Modality.t1.value: 1,
    Modality.t1ce.value: 2,
    Modality.t2.value: 3,
}


class Layout(str, enum.Enum):
    brats2020 = "brats2018-2021"
    brats2023 = "brats2023+"
    msd = "msd-task01"


# The label values a seg of each layout may hold (0 background): BraTS 2018-21 1 necrosis/non-enhancing,
# 2 edema, 4 enhancing; BraTS 2023+ 1, 2, 3; MSD Task01 1 edema, 2 non-enhancing, 3 enhancing.
SEG_LABELS = {Layout.brats2020: (0, 1, 2, 4), Layout.brats2023: (0, 1, 2, 3), Layout.msd: (0, 1, 2, 3)}


@dataclass(frozen=True)
class Subject:
    """One patient: where each modality and the seg are.

    ``files`` maps a modality value (``"flair"``...) or ``"seg"`` to its file; for the MSD layout all
    modalities point to the same 4D file and ``channels`` says which channel is which.
    """

    subject_id: str
    layout: Layout
    files: dict[str, Path]
    channels: dict[str, int] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        return [k for k in self.files if k != SEG]


@dataclass
class DiscoveryReport:
    root: Path
    subjects: list[Subject]
    skipped: list[tuple[str, str]]  # (subject or path, reason)

    def summary(self) -> str:
        layouts = sorted({s.layout.value for s in self.subjects})
        mods = sorted({m for s in self.subjects for m in s.modalities()})
        lines = [
            f"found {len(self.subjects)} subjects under {self.root} "
            f"(layout: {', '.join(layouts) or 'none'}; modalities: {', '.join(mods) or 'none'})"
        ]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def subject_of(path: str | Path) -> str:
    """Subject ID of a BraTS-named file: ``Brats18_X_1_t1.nii.gz`` / ``BraTS-GLI-0001-t1n.nii.gz`` -> the ID."""
    name = strip_nifti_suffix(path)
    for alias in sorted(ALIASES, key=len, reverse=True):
        for sep in ("_", "-"):
            if name.lower().endswith(sep + alias):
                return name[: -len(alias) - 1]
    return name


def _is_visible(path: Path) -> bool:
    return not any(part.startswith((".", "__MACOSX")) for part in path.parts)


def _split_name(name: str, subject_id: str) -> str | None:
    """``BraTS20_001_flair`` with id ``BraTS20_001`` -> ``flair``; None if it is not that subject's."""
    for sep in ("_", "-"):
        prefix = subject_id + sep
        if name.startswith(prefix):
            return name[len(prefix) :].lower()
    return None


def _walk(root: Path, report: DiscoveryReport) -> dict[Path, list[Path]]:
    """Every visible folder under ``root`` -> its NIfTI files. Linked folders are followed (split
    folders are often built of links into one data store), each real folder once, so a link loop
    ends; a folder that cannot be read is reported as skipped rather than silently missing."""
    found: dict[Path, list[Path]] = {}
    seen: set[tuple[int, int]] = set()

    def unreadable(exc: OSError) -> None:
        report.skipped.append((str(exc.filename), f"cannot read this folder ({exc.strerror}); fix its permissions"))

    for top, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(top)
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if _is_visible(Path(d)))
        found[here] = sorted(here / f for f in files if nifti_suffix(f) and _is_visible(Path(f)))
    return found


def _discover_msd(images_dir: Path, report: DiscoveryReport) -> None:
    labels_dir = images_dir.parent / "labelsTr"
    for image in sorted(p for p in images_dir.iterdir() if nifti_suffix(p) and _is_visible(p.relative_to(images_dir))):
        sid = strip_nifti_suffix(image)
        label = next(
            (labels_dir / f"{sid}{s}" for s in (".nii.gz", ".nii") if (labels_dir / f"{sid}{s}").exists()), None
        )
        if label is None:
            report.skipped.append((sid, f"no label file in {labels_dir}"))
            continue
        files = {m: image for m in MSD_CHANNELS} | {SEG: label}
        report.subjects.append(Subject(sid, Layout.msd, files, dict(MSD_CHANNELS)))


def _discover_folder(folder: Path, report: DiscoveryReport) -> None:
    sid = folder.name
    files: dict[str, Path] = {}
    layout = Layout.brats2020
    for path in sorted(folder.iterdir()):
        if not path.is_file() or nifti_suffix(path) is None or path.name.startswith("."):
            continue
        suffix = _split_name(strip_nifti_suffix(path), sid)
        if suffix is None or suffix not in ALIASES:
            continue
        key = ALIASES[suffix]
        if suffix in ("t2f", "t1n", "t1c", "t2w"):
            layout = Layout.brats2023
        if key in files:
            report.skipped.append((sid, f"two files for {key}: {files[key].name} and {path.name}; keep one"))
            return
        files[key] = path
    if not files:
        return
    if SEG not in files:
        report.skipped.append((sid, "no segmentation file (<ID>_seg.nii.gz or <ID>-seg.nii.gz)"))
        return
    report.subjects.append(Subject(sid, layout, files))


def sequence_files(root: str | Path, modality: str) -> list[tuple[str, Layout, Path]]:
    """(subject ID, layout, file) of every BraTS-named ``modality`` volume under ``root`` (2018-21 or 2023+ names,
    in a folder per subject); unlike :func:`discover_subjects` a subject needs no seg and no other sequence."""
    found = []
    for folder, files in _walk(Path(root), DiscoveryReport(Path(root), [], [])).items():
        for path in files:
            suffix = _split_name(strip_nifti_suffix(path), folder.name)
            if suffix is not None and ALIASES.get(suffix) == modality:
                layout = Layout.brats2023 if suffix in ("t2f", "t1n", "t1c", "t2w") else Layout.brats2020
                found.append((folder.name, layout, path))
    return found


def discover_subjects(root: str | Path) -> DiscoveryReport:
    """Find every subject under ``root`` in any supported layout.

    Raises:
        MrtransError: ``root`` is not a folder, or holds no subject at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise MrtransError(f"{root}: not a folder; pass the folder that holds the BraTS subjects")
    report = DiscoveryReport(root, [], [])
    tree = _walk(root, report)
    msd_dirs = sorted(p for p in tree if p.name == "imagesTr")
    for images_dir in msd_dirs:
        _discover_msd(images_dir, report)
    seen_dirs = {d.parent for d in msd_dirs}
    folders = sorted(p for p, files in tree.items() if files)
    for folder in folders:
        if folder.name in ("imagesTr", "labelsTr", "imagesTs") and folder.parent in seen_dirs:
            continue
        _discover_folder(folder, report)
    ids = [s.subject_id for s in report.subjects]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        report.skipped += [
            (i, "subject ID found more than once under the root; keep one copy") for i in sorted(duplicates)
        ]
        report.subjects = [s for s in report.subjects if s.subject_id not in duplicates]
    if not report.subjects:
        raise MrtransError(
            f"{root}: no BraTS subjects found (expected <ID>/<ID>_flair.nii.gz ..., <ID>/<ID>-t2f.nii.gz ..., "
            f"or MSD imagesTr/ + labelsTr/)"
            + (f"; skipped: {report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else "")
        )
    report.subjects.sort(key=lambda s: s.subject_id)
    return report
