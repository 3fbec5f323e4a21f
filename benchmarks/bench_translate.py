"""Seconds per slice of ``mrtrans translate`` by batch size, and what resampling an input adds.

Rows: the whole command on one BraTS-size volume at 1 mm (read, reorient, normalise, pad/crop,
forward, inverse, write) at the CPU default batch (1) and at 16 (the former default, CUDA's); the
bare batched forward of the same slices (the floor); and the same volume given at 0.5 mm and 2 mm
in-plane, which translate resamples to the model's 1 mm and back (target: under 10% more than the
1 mm volume). Paper generator (ResNet-9, 256x256), untrained weights (speed does not depend on them).

    python benchmarks/bench_translate.py [--input FLAIR.nii.gz] [--batch-sizes 1,16] [--repeats 1] \
        [--device auto] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.checkpoint import model_payload, save_checkpoint  # noqa: E402
from mrtrans.config import TrainConfig, to_dict  # noqa: E402
from mrtrans.data_prep.transforms import resample_brain  # noqa: E402
from mrtrans.domain import Modality
from mrtrans.inference.translate import load_translator, translate_files  # noqa: E402
from mrtrans.io import write_nifti  # noqa: E402
from mrtrans.models import build_generator  # noqa: E402
from mrtrans.synth import synth_subject  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated; default: the device's default and 16")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = args.input
        if src is None:
            images, _ = synth_subject((240, 240, 155), seed=0, index=0, with_tumor=True)
            src = write_nifti(images[Modality.flair], tmp / "flair.nii.gz", affine=np.eye(4))
        cfg = TrainConfig()
        torch.manual_seed(0)
        models = {n: build_generator(cfg.generator).state_dict() for n in ("gen_s2t", "gen_t2s")}
        norm = {
            "lower_percentile": 0.5,
            "upper_percentile": 99.5,
            "range": [-1.0, 1.0],
            "image_size": 256,
            "spacing": [1.0, 1.0, 1.0],
        }
        ckpt = save_checkpoint(
            model_payload("harmonicgan-histogram", "flair", "t1", to_dict(cfg), norm, models), tmp / "m.pt"
        )
        default = load_translator(ckpt, device=args.device)
        sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else sorted({default.batch_size, 16})
        img = nib.load(src)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        n_slices = int((data != 0).any(axis=(0, 1)).sum())

        def whole(path: Path, translator) -> float:
            def run() -> None:
                result = translate_files([path], tmp / "out.nii.gz", translator, overwrite=True)
                assert not result.failed, result.failed

            return median_time(run, args.repeats, warmup=0)

        times = {}
        for size in sizes:
            translator = load_translator(ckpt, device=args.device, batch_size=size)
            times[size] = whole(src, translator)
            label = f"translate, batch {size}" + (" (default here)" if size == default.batch_size else "")
            rows.append([label, f"{times[size]:.1f}", f"{times[size] / n_slices:.3f}", ""])
        slices = torch.rand(n_slices, 1, 256, 256) * 2 - 1
        gen, dev = default.generator, default.device

        @torch.no_grad()
        def bare() -> None:
            for start in range(0, n_slices, default.batch_size):
                gen(slices[start : start + default.batch_size].to(dev)).float().cpu()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        t_bare = median_time(bare, args.repeats, warmup=1)
        rows.append(
            [f"bare forward, batch {default.batch_size} (floor)", f"{t_bare:.1f}", f"{t_bare / n_slices:.3f}", ""]
        )
        base = times[default.batch_size]
        for mm in (0.5, 2.0):
            scan, _, affine = resample_brain(data, data != 0, img.affine, pixdim=(mm, mm, -1))
            path = write_nifti(scan, tmp / f"at_{mm}.nii.gz", affine=affine)
            t = whole(path, default)
            rows.append(
                [
                    f"translate, input at {mm:g} mm in-plane ({scan.shape[0]}x{scan.shape[1]}), resampled to 1 mm and "
                    "back",
                    f"{t:.1f}",
                    f"{t / n_slices:.3f}",
                    f"{100 * (t / base - 1):+.1f}%",
                ]
            )
    shape = "x".join(map(str, data.shape))
    source = "synthetic" if args.input is None else str(args.input)
    notes = (
        f"One {shape} 1 mm volume ({source}), {n_slices} axial slices with brain; paper generator (ResNet-9, 256x256), "
        f"device {default.device}, median of {args.repeats}. s / slice = whole command / slices with brain. "
        "Resampling overhead: against the 1 mm volume at the default batch; target under +10%."
    )
    report(
        f"translate: batch size and resampling ({default.device.type})",
        ["what", "s / volume", "s / slice", "vs 1 mm"],
        rows,
        notes,
        not args.no_append,
    )


if __name__ == "__main__":
    main()
