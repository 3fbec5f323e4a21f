"""What the BIDS layer costs: ``mrtrans translate`` of a synthetic cohort as a BIDS dataset (``--bids-out``)
against the same volumes as a plain folder (``--out``), both with their sidecars.

The BIDS run adds pybids' indexing of the dataset, the derivative names (``build_path``), the BIDS URIs of the
sidecars and ``dataset_description.json``; the translation work is the same. Target: under 5% more time. The
default cohort is small (64 x 64 x 48 volumes, the ``cpu_small`` generator at 64 px, untrained weights: speed does
not depend on them), which makes the relative overhead larger than on real volumes, not smaller; ``--shape 240 240
155 --image-size 256`` is BraTS' size.

    python benchmarks/bench_bids.py [--subjects 20] [--repeats 3] [--device cpu] [--shape X Y Z] [--image-size S]
        [--no-append]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from mrtrans.api import translate_files  # noqa: E402
from mrtrans.checkpoint import model_payload, save_checkpoint  # noqa: E402
from mrtrans.config import SynthConfig, TrainConfig, load_config, to_dict  # noqa: E402
from mrtrans.inference.translate import load_translator  # noqa: E402
from mrtrans.models import build_generator  # noqa: E402
from mrtrans.synth import write_synthetic_brats  # noqa: E402


def cohort(tmp: Path, subjects: int, shape: tuple[int, int, int] = (64, 64, 48)) -> tuple[Path, Path]:
    """The same FLAIR volumes as a BIDS dataset (every third subject with a session) and as a plain folder."""
    write_synthetic_brats(tmp / "brats", SynthConfig(subjects=subjects, shape=shape, seed=0))
    bids, plain = tmp / "bids", tmp / "plain"
    plain.mkdir()
    for i, src in enumerate(sorted((tmp / "brats").glob("*/*_flair.nii.gz"))):
        ses = "ses-1" if i % 3 == 0 else None
        anat = bids / f"sub-{i:02d}" / (ses or "") / "anat"
        anat.mkdir(parents=True)
        shutil.copy(src, anat / (f"sub-{i:02d}" + (f"_{ses}" if ses else "") + "_FLAIR.nii.gz"))
        shutil.copy(src, plain / f"sub-{i:02d}_FLAIR.nii.gz")
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.10.0"}))
    return bids, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 48], help="volume shape (BraTS: 240 240 155)")
    parser.add_argument("--image-size", type=int, default=64, help="the model's slice size")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bids, plain = cohort(tmp, args.subjects, tuple(args.shape))
        cfg = load_config(TrainConfig, "cpu_small")
        torch.manual_seed(0)
        models = {n: build_generator(cfg.generator).state_dict() for n in ("gen_s2t", "gen_t2s")}
        norm = {"lower_percentile": 0.5, "upper_percentile": 99.5, "range": [-1.0, 1.0], "image_size": args.image_size}
        ckpt = save_checkpoint(model_payload("cyclegan", "flair", "t1", to_dict(cfg), norm, models), tmp / "m.pt")
        translator = load_translator(ckpt, device=args.device)
        times: dict[str, list[float]] = {"plain": [], "bids": []}
        for r in range(args.repeats + 1):  # alternating, the first round a warm-up
            for mode in ("plain", "bids"):
                out = tmp / f"{mode}_out_{r}"
                start = time.perf_counter()
                if mode == "plain":
                    result = translate_files(plain, out, translator)
                else:
                    result = translate_files(bids, None, translator, bids_out=out)
                elapsed = time.perf_counter() - start
                assert len(result.written) == args.subjects and not result.failed, result.failed
                if r:
                    times[mode].append(elapsed)
    median = {m: sorted(v)[len(v) // 2] for m, v in times.items()}
    overhead = median["bids"] / median["plain"] - 1
    rows = [
        ["plain folder (--out)", f"{median['plain']:.2f}", f"{median['plain'] / args.subjects:.3f}", ""],
        [
            "BIDS dataset (--bids-out)",
            f"{median['bids']:.2f}",
            f"{median['bids'] / args.subjects:.3f}",
            f"{overhead:+.1%}",
        ],
    ]
    notes = (
        f"{args.subjects} synthetic subjects, FLAIR {'x'.join(map(str, args.shape))} each (a third with a session), "
        f"cpu_small generator at {args.image_size} px (untrained), device {translator.device}, median of "
        f"{args.repeats} alternating rounds after a warm-up; both write a JSON sidecar per volume. Target: BIDS "
        "overhead under 5%."
    )
    report(
        "translate: the BIDS layer's overhead",
        ["input", "s / cohort", "s / volume", "overhead"],
        rows,
        notes,
        not args.no_append,
    )


if __name__ == "__main__":
    main()
