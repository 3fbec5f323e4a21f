"""How large is the smoothness term, and does its size depend on image size and background?

On the paired test slices of a prepared set, one direction of Eq. 6 is evaluated with the translation
set to the real target and the reconstruction to the real source (what a perfect translator would
give), under each normalisation, at the prepared size and with the same slices area-downsampled to
64x64. Also the gradient norm of the term w.r.t. the translation, next to that of the L1 cycle term
at lambda_cycle = 10 (F = identity stand-in: the cycle gradient is 10 * sign(.)/n per pixel).
Prints a table and appends it to docs/benchmarks.md.

    python benchmarks/bench_smoothness_scale.py --data prepared_real --slices 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from mrtrans.config import LossConfig, SmoothNormalization  # noqa: E402
from mrtrans.data_prep.slices import PreparedSlices, to_tensor  # noqa: E402
from mrtrans.methods.steps import smoothness_term  # noqa: E402


def measure(x: torch.Tensor, y: torch.Tensor, norm: SmoothNormalization) -> tuple[float, float]:
    """(L_smooth, ||dL/dG(x)|| / ||d cycle/dG(x)||) for one slice."""
    term = smoothness_term(LossConfig(smooth_normalization=norm, patch_size=8))  # 8 at both sizes, as recorded
    fake = y.clone().requires_grad_()
    loss = term(x, fake, x)
    (grad,) = torch.autograd.grad(loss, fake)
    cycle_grad_norm = 10.0 / np.sqrt(x.numel())  # |10 * sign / n| over n pixels
    return float(loss), float(grad.norm()) / cycle_grad_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    data = PreparedSlices(args.data)
    src, tgt = data.modalities
    n = min(args.slices, len(data.test(src)))
    xs, ys = to_tensor(data.test(src)[:n]), to_tensor(data.test(tgt)[:n])
    size = data.image_size
    rows = []
    for norm in SmoothNormalization:
        for s in sorted({size, 64}, reverse=True):
            vals, ratios = [], []
            for i in range(n):
                x, y = xs[i : i + 1], ys[i : i + 1]
                if s != size:  # area-downsample; background stays exactly -1
                    x, y = (F.interpolate(t, size=(s, s), mode="area") for t in (x, y))
                v, r = measure(x, y, norm)
                vals.append(v)
                ratios.append(r)
            q, qr = np.percentile(vals, [50, 25, 75]), np.percentile(ratios, [50, 25, 75])
            rows.append(
                [
                    norm.value,
                    f"{s}x{s}",
                    f"{q[0]:.4f} ({q[1]:.4f}-{q[2]:.4f})",
                    f"{qr[0]:.3f} ({qr[1]:.3f}-{qr[2]:.3f})",
                ]
            )
    report(
        "Smoothness term scale (bench_smoothness_scale.py)",
        ["normalisation", "size", "L_smooth, median (IQR)", "gradient norm / 10x cycle's, median (IQR)"],
        rows,
        notes=f"{n} paired test slices of {args.data.name} ({src}->{tgt}); translation = real target, "
        "reconstruction = real source.",
        append=not args.no_append,
    )


if __name__ == "__main__":
    main()
