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

from mrtrans.errors import MrtransError
from mrtrans.io import nifti_suffix, strip_nifti_suffix

SEG = "seg"


class Layout(str, enum.Enum):
    """The input layouts prepare-brats, translate --naming and the audit know; each has one entry in LAYOUTS."""

    brats2020 = "brats2018-2021"
    brats2023 = "brats2023+"
    msd = "msd-task01"


@dataclass(frozen=True)
class LayoutSpec:
    """How one input layout names its files and what its seg labels mean.

    ``names``: modality value (or ``seg``) -> the file-name suffix after ``<ID><separator>`` (a folder per subject;
    ``_`` and ``-`` are both read, ``separator`` is the one written); ``channels``: modality -> channel of a 4D image
    (a layout of 4D images has no ``names``); ``seg_labels``: the values a seg may hold (0 background);
    ``core_labels``: the tumor core without edema (the whole tumor is every label > 0).
    """

    seg_labels: tuple[int, ...]
    core_labels: tuple[int, ...]
    names: dict[str, str] = field(default_factory=dict)
    separator: str = "_"
    channels: dict[str, int] = field(default_factory=dict)


# The registry: a new naming scheme is one entry here (and a member of Layout), read by discovery, prepare-brats'
# seg check, the audit's tumor regions and translate --naming.
LAYOUTS: dict[Layout, LayoutSpec] = {
    # BraTS 2018-2021: 1 necrosis/non-enhancing, 2 edema, 4 enhancing.
    Layout.brats2020: LayoutSpec(
        (0, 1, 2, 4), (1, 4), names={"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", SEG: "seg"}
    ),
    # BraTS 2023+: 1 necrosis, 2 edema, 3 enhancing.
    Layout.brats2023: LayoutSpec(
        (0, 1, 2, 3), (1, 3), names={"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", SEG: "seg"}, separator="-"
    ),
    # Medical Segmentation Decathlon Task01_BrainTumour: 4D images (dataset.json "modality": FLAIR, T1w, t1gd, T2w),
    # 1 edema, 2 non-enhancing, 3 enhancing.
    Layout.msd: LayoutSpec((0, 1, 2, 3), (2, 3), channels={"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}),
}

# File-name suffix (after the subject ID and its separator) -> modality or "seg", over every folder layout.
ALIASES: dict[str, str] = {suffix: key for spec in LAYOUTS.values() for key, suffix in spec.names.items()}
MSD_CHANNELS = LAYOUTS[Layout.msd].channels


def layout_of(suffixes: list[str]) -> Layout:
    """The folder layout of a subject's file-name suffixes: the last layout that alone names one of them (BraTS
    2023+'s ``t1n``...), else the first (suffixes every layout shares, such as ``seg``)."""
    folders = [layout for layout, spec in LAYOUTS.items() if spec.names]

    def owners(suffix: str) -> list[Layout]:
        return [layout for layout in folders if suffix in LAYOUTS[layout].names.values()]

    alone = [owners(s)[0] for s in suffixes if len(owners(s)) == 1]
    return max(alone, key=folders.index) if alone else folders[0]


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
    suffixes: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or nifti_suffix(path) is None or path.name.startswith("."):
            continue
        suffix = _split_name(strip_nifti_suffix(path), sid)
        if suffix is None or suffix not in ALIASES:
            continue
        key = ALIASES[suffix]
        suffixes.append(suffix)
        if key in files:
            report.skipped.append((sid, f"two files for {key}: {files[key].name} and {path.name}; keep one"))
            return
        files[key] = path
    if not files:
        return
    if SEG not in files:
        report.skipped.append((sid, "no segmentation file (<ID>_seg.nii.gz or <ID>-seg.nii.gz)"))
        return
    report.subjects.append(Subject(sid, layout_of(suffixes), files))


def sequence_files(root: str | Path, modality: str) -> list[tuple[str, Layout, Path]]:
    """(subject ID, layout, file) of every BraTS-named ``modality`` volume under ``root`` (2018-21 or 2023+ names,
    in a folder per subject); unlike :func:`discover_subjects` a subject needs no seg and no other sequence."""
    found = []
    for folder, files in _walk(Path(root), DiscoveryReport(Path(root), [], [])).items():
        for path in files:
            suffix = _split_name(strip_nifti_suffix(path), folder.name)
            if suffix is not None and ALIASES.get(suffix) == modality:
                found.append((folder.name, layout_of([suffix]), path))
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
