"""Seconds per training iteration (batch 1, 256x256, the paper's networks) per method.

Times the optimisation step -- exactly what ``mrtrans train`` runs per step, ``mrtrans.methods``' ``step`` -- for
cyclegan, harmonicgan_hist, harmonicgan_vgg, unit, discogan, distancegan and distancegan_cycle (any configs/ method
with --methods), and reports each
against cyclegan (targets: the smoothness term adds at most 10%; the other papers' methods within 1.5x).
On a GPU it also times the variants of the step: fp32, bf16
autocast, channels_last on and off, torch.compile on and off (target: bf16 at least 1.8x the
iterations/s of fp32; the issue's goal: about 13 ms per HarmonicGAN-histogram step on an H100). VGG
timings use random weights of the right shape (speed does not depend on the values).

The slices are synthetic brain slices prepared as ``prepare-brats`` prepares them (``--slices synthetic``, the
default: a brain on a background, as the smoothness graph sees real data) or uniform noise (``--slices random``:
every patch is a graph node). ``--smoothness both`` times methods with a smoothness term twice, with today's
graph computation and with the dense all-pairs one of mrtrans <= 0.4 (``dense_smoothness_loss``), in one run.
``--preset cpu_small --size 64`` is the CPU preset of the hallucination benchmark; ``--threads 1`` what a grid
job gets when jobs share the cores.

    python benchmarks/bench_train.py [--repeats 5] [--size 256] [--device auto] [--methods ...] [--preset ...]
        [--threads N] [--slices synthetic|random] [--smoothness graph|dense|both] [--no-append]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.config import SmoothFeatures, TrainConfig, load_config, resolve_patch_size  # noqa: E402
from mrtrans.devices import resolve_device  # noqa: E402
from mrtrans.methods import MethodData, Placement, build_method, method_class  # noqa: E402
from mrtrans.networks.vgg import VGG16Relu43  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """How the step runs: precision, memory format, compilation (the ``run.amp/channels_last/compile`` keys), and
    the smoothness term's computation (``graph``: today's; ``dense``: mrtrans <= 0.4's all-pairs tensors)."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    smoothness: str = "graph"

    @property
    def name(self) -> str:
        parts = ["bf16" if self.amp else "fp32 (TF32 off)"]
        parts += ["channels_last"] * self.channels_last + ["compile"] * self.compile
        return " + ".join(parts + (["dense smoothness (<= 0.4)"] if self.smoothness == "dense" else []))

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``fp32``, ``bf16``, ``bf16+compile``, ``bf16+channels_last+compile``..."""
        words = set(text.split("+"))
        unknown = words - {"fp32", "bf16", "compile", "channels_last"}
        if unknown or len(words & {"fp32", "bf16"}) != 1:
            raise SystemExit(f"--variants {text!r}: fp32 or bf16, optionally +compile and +channels_last")
        return cls(amp="bf16" in words, channels_last="channels_last" in words, compile="compile" in words)


def synthetic_slices(size: int, count: int = 16) -> np.ndarray:
    """(count, size, size) FLAIR training slices of synthetic subjects (the CPU preset's at 64 px), prepared at
    ``size`` by ``prepare-brats``: a brain on the background value, as training sees them."""
    from mrtrans.config import PrepareConfig, SynthConfig
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.data_prep.slices import PreparedSlices
    from mrtrans.synth import write_synthetic_brats

    with tempfile.TemporaryDirectory() as tmp:
        shape = (max(64, size), max(64, size), 48)  # the CPU preset's volumes at 64 px, as large as the slices above
        synth = SynthConfig(subjects=16, shape=shape, tumor_fraction=0.5, seed=3, tumor_scale=1.6)
        write_synthetic_brats(Path(tmp) / "brats", synth)
        recipe = PrepareConfig(
            train_slices=count, test_slices=4, image_size=size, min_tumor_pixels=10, min_brain_fraction=0.15
        )
        prepare_brats(Path(tmp) / "brats", Path(tmp) / "prepared", recipe)
        return np.asarray(PreparedSlices(Path(tmp) / "prepared").train("flair"), np.float32)


CUDA_VARIANTS = (
    Variant(),
    Variant(amp=True),
    Variant(amp=True, channels_last=True),
    Variant(amp=True, compile=True),
    Variant(amp=True, channels_last=True, compile=True),
)


def seconds_per_iteration(
    cfg: TrainConfig,
    device: torch.device,
    size: int,
    variant: Variant,
    repeats: int,
    vgg_path: Path,
    slices: np.ndarray | None = None,
) -> float:
    """The median time of ``method.step`` (what ``mrtrans train`` runs per step) on ``slices`` (random if None)."""
    import mrtrans.methods.steps as method_steps
    from mrtrans.losses.smoothness import dense_smoothness_loss, smoothness_loss

    torch.manual_seed(0)
    fmt = torch.channels_last if (variant.channels_last and device.type == "cuda") else torch.contiguous_format
    if cfg.loss.lambda_smooth > 0 and cfg.loss.smooth_features is SmoothFeatures.vgg:
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, vgg_weights=str(vgg_path)))
    cfg = resolve_patch_size(method_class(cfg.method).resolve(cfg, size), size)  # as training resolves it
    if slices is None:
        slices = (torch.rand(16, size, size) * 2 - 1).numpy()
    # The smoothness term is bound when the method is built: "dense" builds it with 0.4's computation.
    method_steps.smoothness_loss = dense_smoothness_loss if variant.smoothness == "dense" else smoothness_loss
    try:
        # statistics (DistanceGAN) as training computes them
        method = build_method(cfg, MethodData(slices, slices, (-1.0, 1.0)), Placement(device, fmt, variant.compile))
    finally:
        method_steps.smoothness_loss = smoothness_loss
    method.distribute()
    real_s = torch.from_numpy(slices[:1, None]).to(device).contiguous(memory_format=fmt)
    real_t = torch.from_numpy(slices[1:2, None]).to(device).contiguous(memory_format=fmt)
    amp = variant.amp and device.type == "cuda"
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)

    def step() -> None:
        method.step(real_s, real_t, autocast, measure_gradients=False)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return median_time(step, repeats, warmup=3 if variant.compile else 2)


def _ratio(reference: float | None, sec: float) -> str:
    return "–" if reference is None else f"{reference / sec:.2f}"


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
    parser.add_argument("--preset", nargs="*", default=[], help="configs/ presets on top of each method")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--slices", choices=["synthetic", "random"], default="synthetic")
    parser.add_argument("--smoothness", choices=["graph", "dense", "both"], default="graph")
    parser.add_argument(
        "--variants", nargs="*", default=None, help="fp32, bf16, bf16+compile, bf16+channels_last... (CUDA)"
    )
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    variants = CUDA_VARIANTS if device.type == "cuda" else (Variant(),)
    if args.variants:
        variants = tuple(Variant.parse(v) for v in args.variants)
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False  # "fp32" is float32: TF32 would make it another precision
    kinds = ["graph", "dense"] if args.smoothness == "both" else [args.smoothness]
    slices = synthetic_slices(args.size) if args.slices == "synthetic" else None
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path = Path(tmp) / "vgg16.pth"
        torch.save(VGG16Relu43().state_dict(), vgg_path)
        results: dict[tuple[str, Variant], float] = {}
        for method in args.methods:
            cfg = load_config(TrainConfig, [method, *args.preset])
            for variant in variants:
                for kind in kinds if cfg.loss.lambda_smooth > 0 else ["graph"]:
                    timed = dataclasses.replace(variant, smoothness=kind)
                    results[method, timed] = seconds_per_iteration(
                        cfg, device, args.size, timed, args.repeats, vgg_path, slices
                    )
    base = args.methods[0]
    rows = []
    for (method, variant), sec in results.items():
        plain = dataclasses.replace(variant, smoothness="graph")
        rows.append(
            [
                method,
                variant.name,
                f"{sec:.4f}",
                f"{1 / sec:.2f}",
                "–" if (base, plain) not in results else f"{sec / results[base, plain]:.3f}",
                _ratio(results.get((method, dataclasses.replace(Variant(), smoothness=variant.smoothness))), sec),
            ]
        )
    header = ["method", "variant", "s / iteration", "iterations / s", f"ratio to {base}", "speed-up over fp32"]
    if device.type == "cuda":  # the goal: a paper-length run (280k steps) in 30 minutes
        header.append("ms / step (goal 6.5)")
        for row, sec in zip(rows, results.values()):
            row.append(f"{1000 * sec:.1f}")
    notes = (
        f"Batch 1, {args.size}x{args.size}, {args.slices} slices, presets {args.preset or 'none'}, "
        f"{torch.get_num_threads()} thread(s), each method's networks as its config builds them (ResNet-9 + 70x70 "
        "PatchGAN for CycleGAN, HarmonicGAN, DistanceGAN and CUT; UNIT's and DiscoGAN's own; pix2pix: U-Net-256 + "
        "conditional PatchGAN); one optimisation step as `method.step` takes it (CUT, FastCUT and pix2pix: both "
        f"directions' independent models, as both_directions trains them), median of {args.repeats} after 2 warm-up "
        f"steps, device {device}. Targets: HarmonicGAN-histogram <= 1.25x cyclegan at the CPU preset (64 px, "
        "cpu_small) and <= 1.10x at 256 px; unit, discogan, distancegan within 1.5x; on GPU bf16 >= 1.8x fp32."
    )
    report(f"train: seconds per iteration ({device.type})", header, rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
