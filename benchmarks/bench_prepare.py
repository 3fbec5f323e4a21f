"""Seconds per subject of prepare-brats' per-subject work against the floor of reading the files.

The floor is nibabel reading and decompressing the same three files (two modalities + seg).
The prepare time is the whole worker: MONAI load, checks, RAS, brain mask, normalisation,
crop/pad, slice stats, input hashing and the scratch write. Target: within 3x of the floor.

    python benchmarks/bench_prepare.py [--root BRATS_ROOT] [--subjects 3] [--repeats 3] [--no-append]

Without --root it writes synthetic 240x240x155 subjects to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.config import PrepareConfig, SynthConfig  # noqa: E402
from mrtrans.data_prep.discovery import discover_subjects  # noqa: E402
from mrtrans.data_prep.prepare import process_subject  # noqa: E402
from mrtrans.synth import write_synthetic_brats  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "brats"
            write_synthetic_brats(root, SynthConfig(subjects=args.subjects, shape=(240, 240, 155), seed=0))
        subjects = discover_subjects(root).subjects[: args.subjects]
        cfg = PrepareConfig()
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()

        def read_floor() -> None:
            for s in subjects:
                for key in ("flair", "t1", "seg"):
                    np.asanyarray(nib.load(s.files[key]).dataobj)

        def prepare() -> None:
            for s in subjects:
                result = process_subject(s, cfg, str(scratch))
                assert result.error is None, result.error

        floor = median_time(read_floor, args.repeats) / len(subjects)
        full = median_time(prepare, args.repeats) / len(subjects)
        shape = "x".join(map(str, nib.load(subjects[0].files["flair"]).shape))
    source = "synthetic" if args.root is None else str(args.root)
    rows = [
        ["read + decompress (floor)", f"{floor:.3f}", "1.00"],
        ["prepare-brats per-subject pipeline", f"{full:.3f}", f"{full / floor:.2f}"],
    ]
    notes = (
        f"{len(subjects)} subjects of {shape} ({source}), median of {args.repeats} runs, one process. "
        "Target: ratio <= 3."
    )
    report(
        "prepare-brats: seconds per subject", ["what", "s / subject", "ratio to floor"], rows, notes, not args.no_append
    )


if __name__ == "__main__":
    main()
