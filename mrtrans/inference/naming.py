"""Where translations go in the layouts pipelines use: BIDS derivatives and the names segmenters expect.

* **BIDS** (``translate BIDS_ROOT --bids-out DERIV``): the source images are found by their BIDS entities
  (pybids' ``BIDSLayout``: suffix ``FLAIR``, ``T1w`` (``ce-`` absent; ``t1ce``: present), ``T2w``, datatype
  ``anat``); each translation is written as ``DERIV/sub-X[/ses-Y]/anat/sub-X[_ses-Y][_acq-A][_run-R]_desc-mrtrans
  <Direction>_<suffix>.nii.gz`` (pybids' ``build_path``) with its JSON sidecar, and DERIV gets the
  ``dataset_description.json`` of a derivative dataset (``DatasetType: derivative``, ``GeneratedBy``).
* **Segmenters** (``--naming brats|nnunet``): the synthesized sequence under the name a BraTS or nnU-Net
  segmenter reads (``<ID>/<ID>_t1.nii.gz``, ``<case>_0001.nii.gz``), in a separate tree that mirrors the
  input's, never beside or over a real sequence.

Nothing here writes inside an input: BIDS keeps derivatives in ``ROOT/derivatives/``, but DERIV must lie
outside ROOT (a folder beside it; link it as ``ROOT/derivatives/mrtrans`` if the dataset is yours to change).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrtrans.config import OutputNaming
from mrtrans.data_prep.discovery import LAYOUTS, MSD_CHANNELS, sequence_files
from mrtrans.data_prep.normalization import Normalization
from mrtrans.domain import Direction
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path, nifti_suffix, sha256_file, strip_nifti_suffix
from mrtrans.outputs import check_inputs

BIDS_VERSION = "1.10.0"  # the specification the files written here follow
# BIDS suffix of each modality; t1ce is a T1w with a ce- (contrast agent) entity, t1 one without.
BIDS_SUFFIX = {"flair": "FLAIR", "t1": "T1w", "t1ce": "T1w", "t2": "T2w"}
# Every entity an anatomical image may carry that tells two images of one subject and session apart, in BIDS'
# order, so that no two sources share a derivative name (a pair that would is refused: translate_jobs).
DERIVATIVE_PATTERN = (
    "sub-{subject}[/ses-{session}]/anat/sub-{subject}[_ses-{session}][_acq-{acquisition}][_rec-{reconstruction}]"
    "[_run-{run}][_echo-{echo}][_flip-{flip}][_inv-{inv}][_mt-{mt}][_part-{part}][_chunk-{chunk}]"
    "_desc-{desc}_{suffix}{extension}"
)
KEPT_ENTITIES = (
    "subject",
    "session",
    "acquisition",
    "reconstruction",
    "run",
    "echo",
    "flip",
    "inv",
    "mt",
    "part",
    "chunk",
)


@dataclass(frozen=True)
class Job:
    """One translation: source volume, output volume, and what the sidecar adds (BIDS Sources...)."""

    source: Path
    output: Path
    sidecar: dict[str, Any]


def sidecar_path(output: Path) -> Path:
    """``x.nii.gz`` -> ``x.json`` (BIDS' sidecar rule: the same name, extension .json)."""
    return output.with_name(strip_nifti_suffix(output.name) + ".json")


def desc_label(direction: Direction) -> str:
    """The ``desc-`` label of a translation: ``mrtransFlair2t1`` (BIDS labels are alphanumeric)."""
    return "mrtrans" + direction.name.capitalize()


def bids_jobs(root: Path, deriv: Path, direction: Direction) -> list[Job]:
    """The source images of ``direction`` in the BIDS dataset ``root`` and their derivative paths in ``deriv``.

    Raises:
        MrtransError: not a BIDS dataset, DERIV inside it, or no image of the source sequence.
    """
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer
    from bids.layout.writing import build_path

    root, deriv = Path(root), Path(deriv)
    if not (root / "dataset_description.json").is_file():
        raise MrtransError(
            f"{root}: not a BIDS dataset (no dataset_description.json); give the dataset's root, or translate "
            "files with --out"
        )
    check_inputs(deriv, [root], option="--bids-out")
    # no validation (a dataset need not be valid to be translated) and no sidecar metadata (not used here)
    layout = BIDSLayout(root, validate=False, indexer=BIDSLayoutIndexer(validate=False, index_metadata=False))
    images = layout.get(
        suffix=BIDS_SUFFIX[direction.source], datatype="anat", extension=[".nii.gz", ".nii"], return_type="object"
    )
    wanted_ce = direction.source == "t1ce"
    images = [im for im in images if ("ceagent" in im.entities) == wanted_ce]
    if not images:
        raise MrtransError(
            f"{root}: no {BIDS_SUFFIX[direction.source]} image"
            + (" with a ce- entity" if wanted_ce else "")
            + f" under sub-*/[ses-*/]anat/ to translate {direction.name}"
        )
    jobs = []
    for image in sorted(images, key=lambda im: im.path):
        entities = {k: v for k, v in image.entities.items() if k in KEPT_ENTITIES}
        entities |= {
            "desc": desc_label(direction),
            "suffix": BIDS_SUFFIX[direction.target],
            "extension": ".nii.gz",
        }
        relative = os.path.relpath(image.path, layout.root)  # against the root as pybids recorded it (links kept)
        output = deriv / build_path({k: v for k, v in entities.items() if v is not None}, [DERIVATIVE_PATTERN])
        jobs.append(Job(Path(image.path), output, {"Sources": [f"bids:raw:{Path(relative).as_posix()}"]}))
    return jobs


def dataset_description(root: Path, version: str) -> dict[str, Any]:
    """The derivative dataset's ``dataset_description.json``."""
    try:
        raw_name = json.loads((root / "dataset_description.json").read_text()).get("Name", root.name)
    except (OSError, ValueError):
        raw_name = root.name
    return {
        "Name": f"mrtrans translations of {raw_name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "mrtrans",
                "Version": version,
                "Description": "Unpaired MRI sequence translation; every image of this dataset is synthetic.",
                "CodeURL": "https://github.com/mrtrans/mrtrans",
            }
        ],
        "SourceDatasets": [{"URL": Path(root).resolve().as_uri()}],
        "DatasetLinks": {"raw": Path(root).resolve().as_uri()},
    }


def _generated_by_mrtrans(path: Path) -> bool:
    """Whether a dataset_description.json names mrtrans in GeneratedBy (a list of objects; anything else: no)."""
    description = read_sidecar(path)
    generated = None if description is None else description.get("GeneratedBy")
    if isinstance(generated, dict):  # not what BIDS asks (a list), but unambiguous
        generated = [generated]
    return isinstance(generated, list) and any(isinstance(g, dict) and g.get("Name") == "mrtrans" for g in generated)


def write_dataset_description(deriv: Path, root: Path, version: str) -> Path:
    """Write (or keep) DERIV/dataset_description.json.

    Raises:
        MrtransError: DERIV already holds another pipeline's derivative dataset.
    """
    path = deriv / "dataset_description.json"
    if path.exists():
        if not _generated_by_mrtrans(path):
            raise MrtransError(
                f"{path}: DERIV is another pipeline's dataset, or not a derivative description mrtrans wrote "
                "(GeneratedBy does not name mrtrans, or the file is not a JSON object with a GeneratedBy list); "
                "choose another --bids-out"
            )
        return path  # ours, from an earlier run: kept as it is
    deriv.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dataset_description(root, version), indent=2) + "\n")
    readme = deriv / "README.md"
    if not readme.exists():  # BIDS recommends one; this one says what the dataset is
        with atomic_path(readme) as tmp:
            tmp.write_text(
                f"# mrtrans translations of {root.name}\n\nEvery image of this derivative dataset is synthetic: a "
                "sequence translated from another by mrtrans (unpaired MRI translation), not a scanner acquisition. "
                "Each image's JSON sidecar names its source image, the model file and its sha256.\n"
            )
    return path


def segmenter_jobs(inputs: Path, out: Path, direction: Direction, naming: OutputNaming) -> list[Job]:
    """Each source volume under ``inputs`` and the name its translation gets in the tree ``out``.

    ``brats``: a BraTS root (2018-21 or 2023+ names, folder per subject) -> ``OUT/<ID>/<ID>_<target>.nii.gz``
    (``<ID>-<alias>`` for 2023+ names). ``nnunet``: a folder of ``<case>_<channel>.nii.gz`` (channels as in
    MSD Task01 / nnU-Net BraTS: 0000 FLAIR, 0001 T1, 0002 T1ce, 0003 T2) -> ``OUT/<case>_<target channel>``.

    Raises:
        MrtransError: OUT inside the inputs, no source volume found, or a name that
            collides with a real sequence in the input tree.
    """
    inputs, out = Path(inputs), Path(out)
    if not inputs.is_dir():
        raise MrtransError(f"{inputs}: --naming needs the input tree (a folder), not a file")
    check_inputs(out, [inputs])
    naming = OutputNaming(naming)
    jobs = (_brats_jobs if naming is OutputNaming.brats else _nnunet_jobs)(inputs, out, direction)
    if not jobs:
        raise MrtransError(f"{inputs}: no {direction.source} volume found for --naming {naming.value}")
    for job in jobs:  # the output tree mirrors the input's: a name that exists there, in any NIfTI form, is real
        mirrored = inputs / job.output.relative_to(out)
        stem = strip_nifti_suffix(mirrored.name)
        real = [
            mirrored.with_name(stem + ext) for ext in (".nii.gz", ".nii") if mirrored.with_name(stem + ext).exists()
        ]
        if real:
            raise MrtransError(
                f"{real[0]}: the input tree already has the {direction.target} sequence this would synthesize for "
                f"{job.source.name} ({job.output}); translate only the subjects that lack it"
            )
    return jobs


def _brats_jobs(inputs: Path, out: Path, direction: Direction) -> list[Job]:
    jobs = []
    for subject_id, layout, src in sequence_files(inputs, direction.source):
        spec = LAYOUTS[layout]  # the target's name in the subject's own naming scheme
        sep, alias = spec.separator, spec.names[direction.target]
        relative = src.parent.relative_to(inputs)
        jobs.append(Job(src, out / relative / f"{subject_id}{sep}{alias}{nifti_suffix(src)}", {}))
    return jobs


def _nnunet_jobs(inputs: Path, out: Path, direction: Direction) -> list[Job]:
    source, target = MSD_CHANNELS[direction.source], MSD_CHANNELS[direction.target]
    jobs = []
    for src in sorted(inputs.rglob(f"*_{source:04d}.nii*")):
        case = strip_nifti_suffix(src.name)[: -len(f"_{source:04d}")]
        relative = src.parent.relative_to(inputs)
        jobs.append(Job(src, out / relative / f"{case}_{target:04d}{nifti_suffix(src)}", {}))
    return jobs


def sidecar(
    source: Path,
    extra: dict[str, Any],
    direction: Direction,
    kind: str,
    model: dict[str, str],
    normalization: dict[str, Any],
    version: str,
    skull_stripped: bool = True,
) -> dict[str, Any]:
    """The JSON sidecar of one translation: what it is (synthetic), from what, by which model.

    ``model``: ``path``, ``sha256`` and ``chosen`` (which checkpoint, by what rule) of the checkpoint.
    ``skull_stripped``: the source passed the skull-stripping check (BIDS derivatives require ``SkullStripped``;
    translate keeps the input's zero background, so the translation is stripped when its source was).
    """
    return {
        "Description": f"Synthetic {direction.target} translated from {direction.source} by mrtrans; not a "
        "scanner acquisition.",
        "Synthetic": True,
        "SkullStripped": skull_stripped,
        **extra,
        "SourceFile": str(Path(source).resolve()),
        "SourceSHA256": sha256_file(source),
        "Direction": direction.name,
        "ModelKind": kind,
        "ModelCheckpoint": model["path"],
        "ModelCheckpointSHA256": model["sha256"],
        "ModelCheckpointChosen": model["chosen"],
        "Preprocessing": normalization,
        "MrtransVersion": version,
        "GeneratedOn": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def check_distinct_outputs(jobs: list[Job]) -> None:
    """Refuse a job list in which two sources would be written to one output (or its sidecar), before any work.

    Raises:
        MrtransError: naming both sources and the output.
    """
    seen: dict[Path, Path] = {}
    for job in jobs:
        for path in (job.output, sidecar_path(job.output)):
            key = path.resolve()
            if key in seen and seen[key].resolve() != job.source.resolve():
                raise MrtransError(
                    f"{seen[key]} and {job.source}: both would be written as {path}; give the inputs names that "
                    "differ in more than their extension (BIDS: in an entity the derivative keeps), or translate "
                    "them into separate outputs"
                )
            seen[key] = job.source


def stale_reason(record: dict[str, Any] | None, wanted: dict[str, Any]) -> str | None:
    """Why an earlier translation, described by its sidecar ``record``, is not what this command would write now
    (None: it is). ``wanted`` is the sidecar this command would write (:func:`sidecar`).

    The translation is what the command would write when it came from the same source file with the same
    content, the same direction, the same model file (by sha256) and the same preprocessing, with the same
    BIDS fields; when it is ours but anything differs it is written again, for the reason returned.
    """
    if record is None:
        return "no record of what made it (no sidecar)"
    since = f" since it was written ({record.get('GeneratedOn', 'date unknown')})"
    if record.get("Direction") != wanted["Direction"]:
        return f"other direction ({record.get('Direction')}, now {wanted['Direction']})"
    if record.get("SourceFile") != wanted["SourceFile"]:
        return f"other source file ({record.get('SourceFile')})"
    if record.get("SourceSHA256") != wanted["SourceSHA256"]:
        return "source changed" + since
    if record.get("ModelCheckpointSHA256") != wanted["ModelCheckpointSHA256"]:
        return f"other model file ({record.get('ModelCheckpoint')}, now {wanted['ModelCheckpoint']})"
    if not _same_preprocessing(record.get("Preprocessing"), wanted["Preprocessing"]):
        return "other preprocessing"
    volatile = {"GeneratedOn", "MrtransVersion", "ModelCheckpoint", "ModelCheckpointChosen", "Description"}
    other = sorted(k for k in set(record) | set(wanted) if k not in volatile and record.get(k) != wanted.get(k))
    return f"other sidecar fields ({', '.join(other)})" if other else None


def _same_preprocessing(recorded: Any, wanted: dict[str, Any]) -> bool:
    """Whether two sidecars' ``Preprocessing`` records are the same normalisation (as typed records, so a record
    of an earlier version that spells the same recipe differently counts as the same)."""
    try:
        return Normalization.from_record(recorded) == Normalization.from_record(wanted)
    except MrtransError:
        return False


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar record at ``path`` (None when absent or unreadable)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def written_by_translate_sidecar(path: Path) -> bool:
    """Whether the JSON at ``path`` is a sidecar ``mrtrans translate`` wrote (replaced with its image, if at all)."""
    record = read_sidecar(path)
    return record is not None and record.get("Synthetic") is True and "MrtransVersion" in record
