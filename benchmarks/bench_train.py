"""Seconds per training iteration (batch 1, 256x256, the paper's networks) per method.

Times the optimisation step -- exactly what ``mrtrans train`` runs per step, ``mrtrans.methods``' ``step`` -- for
cyclegan, harmonicgan_hist, harmonicgan_vgg, unit, discogan, distancegan and distancegan_cycle (any configs/ method
with --methods), and reports each
against cyclegan (targets: the smoothness term adds at most 10%; the other papers' methods within 1.5x).
On a GPU it also times the variants of the step: fp32, bf16
autocast, channels_last on and off, torch.compile on and off (target: bf16 at least 1.8x the
iterations/s of fp32; the issue's goal: about 13 ms per HarmonicGAN-histogram step on an H100). VGG
timings use random weights of the right shape (speed does not depend on the values).

    python benchmarks/bench_train.py [--repeats 5] [--size 256] [--device auto] [--methods ...] [--no-append]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.config import SmoothFeatures, TrainConfig, load_config, resolve_patch_size  # noqa: E402
from mrtrans.devices import resolve_device  # noqa: E402
from mrtrans.methods import MethodData, Placement, build_method  # noqa: E402
from mrtrans.networks.vgg import VGG16Relu43  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """How the step runs: precision, memory format, compilation (the ``run.amp/channels_last/compile`` keys)."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        parts = ["bf16" if self.amp else "fp32"] + ["channels_last"] * self.channels_last + ["compile"] * self.compile
        return " + ".join(parts)


CUDA_VARIANTS = (
    Variant(),
    Variant(amp=True),
    Variant(amp=True, channels_last=True),
    Variant(amp=True, compile=True),
    Variant(amp=True, channels_last=True, compile=True),
)


def seconds_per_iteration(
    cfg: TrainConfig, device: torch.device, size: int, variant: Variant, repeats: int, vgg_path: Path
) -> float:
    """The median time of ``method.step`` (what ``mrtrans train`` runs per step) on random slices."""
    torch.manual_seed(0)
    fmt = torch.channels_last if (variant.channels_last and device.type == "cuda") else torch.contiguous_format
    if cfg.loss.lambda_smooth > 0 and cfg.loss.smooth_features is SmoothFeatures.vgg:
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, vgg_weights=str(vgg_path)))
    cfg = resolve_patch_size(cfg, size)
    # statistics (DistanceGAN) as training computes them, here of random slices
    slices = (torch.rand(16, 1, size, size) * 2 - 1).numpy()
    method = build_method(cfg, MethodData(slices, slices, (-1.0, 1.0)), Placement(device, fmt, variant.compile))
    method.distribute()
    real_s = (torch.rand(1, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    real_t = (torch.rand(1, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    amp = variant.amp and device.type == "cuda"
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)

    def step() -> None:
        method.step(real_s, real_t, autocast, measure_gradients=False)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return median_time(step, repeats, warmup=3 if variant.compile else 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=[
            "cyclegan",
            "harmonicgan_hist",
            "harmonicgan_vgg",
            "unit",
            "discogan",
            "distancegan",
            "distancegan_cycle",
        ],
    )
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    variants = CUDA_VARIANTS if device.type == "cuda" else (Variant(),)
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = Path(tmp) / "vgg16.pth"
        torch.save(VGG16Relu43().state_dict(), vgg_path)
        results: dict[tuple[str, Variant], float] = {}
        for method in args.methods:
            cfg = load_config(TrainConfig, method)
            for variant in variants:
                results[method, variant] = seconds_per_iteration(
                    cfg, device, args.size, variant, args.repeats, vgg_path
                )
    base = args.methods[0]
    rows = []
    for (method, variant), sec in results.items():
        rows.append(
            [
                method,
                variant.name,
                f"{sec:.4f}",
                f"{1 / sec:.2f}",
                f"{sec / results[base, variant]:.3f}",
                f"{results[method, Variant()] / sec:.2f}",
            ]
        )
    header = ["method", "variant", "s / iteration", "iterations / s", f"ratio to {base}", "speed-up over fp32"]
    notes = (
        f"Batch 1, {args.size}x{args.size}, each method's networks as its config builds them (ResNet-9 + 70x70 "
        "PatchGAN for CycleGAN, HarmonicGAN, DistanceGAN and CUT; UNIT's and DiscoGAN's own; pix2pix: U-Net-256 + "
        "conditional PatchGAN); one optimisation step as `method.step` takes it (CUT, FastCUT and pix2pix: both "
        f"directions' independent models, as both_directions trains them), median of {args.repeats} after 2 warm-up "
        f"steps, device {device}. Targets: smoothness adds "
        "<= 10% (ratio to cyclegan <= 1.10); unit, discogan, distancegan within 1.5x; on GPU bf16 >= 1.8x fp32."
    )
    report(f"train: seconds per iteration ({device.type})", header, rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
