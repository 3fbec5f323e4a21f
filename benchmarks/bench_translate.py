"""Seconds per BraTS-size volume for ``mrtrans translate`` against the bare generator forward pass.

The bare time is the batched forward of the paper's generator (ResNet-9, 256x256) over the same
slices that translate runs through it (the axial slices that contain brain), tensors already in
memory. The translate time is everything: reading the NIfTI, reorientation, normalisation,
pad/crop, forward, inverse, writing the output. Target: within 1.25x of the bare forward.
Weights are untrained (speed does not depend on their values).

    python benchmarks/bench_translate.py [--input FLAIR.nii.gz] [--batch-size 16] [--repeats 1] [--device auto] [--no-append]
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
from mrtrans.config import Modality, TrainConfig, to_dict  # noqa: E402
from mrtrans.inference.translate import load_translator, translate_files  # noqa: E402
from mrtrans.io import write_nifti  # noqa: E402
from mrtrans.models import build_generator  # noqa: E402
from mrtrans.synth import synth_subject  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = args.input
        if src is None:
            images, _ = synth_subject((240, 240, 155), seed=0, index=0, with_tumor=True)
            src = write_nifti(images[Modality.flair], tmp / "flair.nii.gz", affine=np.eye(4))
        cfg = TrainConfig()
        torch.manual_seed(0)
        models = {n: build_generator(cfg.generator).state_dict() for n in ("gen_s2t", "gen_t2s")}
        norm = {"lower_percentile": 0.5, "upper_percentile": 99.5, "range": [-1.0, 1.0], "image_size": 256}
        ckpt = save_checkpoint(model_payload("harmonicgan-histogram", "flair", "t1", to_dict(cfg), norm, models), tmp / "m.pt")
        translator = load_translator(ckpt, device=args.device, batch_size=args.batch_size)
        data = np.asanyarray(nib.load(src).dataobj)
        n_slices = int((data != 0).any(axis=(0, 1)).sum())
        slices = torch.rand(n_slices, 1, 256, 256) * 2 - 1
        gen, dev = translator.generator, translator.device
        amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

        @torch.no_grad()
        def bare() -> None:
            for start in range(0, n_slices, args.batch_size):
                with amp:
                    gen(slices[start : start + args.batch_size].to(dev)).float().cpu()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        def full() -> None:
            result = translate_files([src], tmp / "out.nii.gz", translator, overwrite=True)
            assert not result.failed, result.failed

        t_bare = median_time(bare, args.repeats, warmup=1)
        t_full = median_time(full, args.repeats, warmup=0)
        shape = "x".join(map(str, data.shape))
    rows = [["bare generator forward (floor)", f"{t_bare:.2f}", "1.00"],
            ["mrtrans translate, whole volume", f"{t_full:.2f}", f"{t_full / t_bare:.3f}"]]  # fmt: skip
    source = "synthetic" if args.input is None else str(args.input)
    notes = (f"One {shape} volume ({source}), {n_slices} slices with brain, batch {args.batch_size}, paper generator "
             f"(ResNet-9, 256x256), device {translator.device}, median of {args.repeats}. Target: ratio <= 1.25.")  # fmt: skip
    report(f"translate: seconds per volume ({translator.device.type})", ["what", "s / volume", "ratio to forward"], rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
