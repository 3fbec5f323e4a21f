"""Seconds per training iteration (batch 1, 256x256, the paper's networks) per method.

Times ``mrtrans.training.step.optimisation_step`` -- exactly what ``mrtrans train`` runs per step --
for cyclegan, harmonicgan_hist and harmonicgan_vgg, and reports each against cyclegan (target:
the smoothness term adds at most 10%). On a GPU it also times fp32 against bf16 autocast with
channels_last (target: at least 1.8x the iterations/s). VGG timings use random weights of the
right shape (speed does not depend on the values).

    python benchmarks/bench_train.py [--repeats 5] [--size 256] [--device auto] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.config import SmoothFeatures, TrainConfig, load_config  # noqa: E402
from mrtrans.networks.vgg import VGG16Relu43  # noqa: E402
from mrtrans.training.loop import resolve_device  # noqa: E402
from mrtrans.training.pool import ImagePool  # noqa: E402
from mrtrans.training.step import (  # noqa: E402
    Discriminators,
    Generators,
    build_discriminator,
    build_generator,
    optimisation_step,
    smoothness_term,
)


def seconds_per_iteration(cfg: TrainConfig, device: torch.device, size: int, amp: bool, repeats: int, vgg_path: Path) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if (amp and device.type == "cuda") else torch.contiguous_format
    gens = Generators(build_generator(cfg.generator), build_generator(cfg.generator)).to(device, memory_format=fmt)
    discs = Discriminators(build_discriminator(cfg.discriminator), build_discriminator(cfg.discriminator)).to(device, memory_format=fmt)
    vgg = None
    if cfg.loss.lambda_smooth > 0 and cfg.loss.smooth_features is SmoothFeatures.vgg:
        from mrtrans.networks.vgg import load_vgg16_relu43

        vgg = load_vgg16_relu43(vgg_path).to(device, memory_format=fmt)
    smoothness = smoothness_term(cfg.loss, vgg) if cfg.loss.lambda_smooth > 0 else None
    opt_g = torch.optim.Adam(gens.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=2e-4, betas=(0.5, 0.999))
    pools = ImagePool(50, 0), ImagePool(50, 1)
    real_s = (torch.rand(1, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    real_t = (torch.rand(1, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")

    def step() -> None:
        optimisation_step(gens, discs, gens, discs, opt_g, opt_d, *pools, real_s, real_t, cfg.loss, smoothness, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return median_time(step, repeats, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = Path(tmp) / "vgg16.pth"
        torch.save(VGG16Relu43().state_dict(), vgg_path)
        precisions = [False, True] if device.type == "cuda" else [False]
        results: dict[tuple[str, bool], float] = {}
        for method in ("cyclegan", "harmonicgan_hist", "harmonicgan_vgg"):
            cfg = load_config(TrainConfig, method)
            for amp in precisions:
                results[method, amp] = seconds_per_iteration(cfg, device, args.size, amp, args.repeats, vgg_path)
    rows = []
    for (method, amp), sec in results.items():
        row = [method, "bf16 autocast + channels_last" if amp else "fp32", f"{sec:.3f}", f"{1 / sec:.2f}",
               f"{sec / results['cyclegan', amp]:.3f}"]  # fmt: skip
        if device.type == "cuda":
            row.append(f"{results[method, False] / results[method, True]:.2f}" if amp else "1.00")
        rows.append(row)
    header = ["method", "precision", "s / iteration", "iterations / s", "ratio to cyclegan"]
    if device.type == "cuda":
        header.append("speed-up over fp32")
    notes = (
        f"Batch 1, {args.size}x{args.size}, paper networks (ResNet-9 generators, 70x70 PatchGAN), one optimisation "
        f"step (G and F, then D_X and D_Y), median of {args.repeats} after 2 warm-up steps, device {device}. "
        "Targets: smoothness adds <= 10% (ratio to cyclegan <= 1.10); on GPU bf16 >= 1.8x fp32."
    )
    report(f"train: seconds per iteration ({device.type})", header, rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
