"""Seconds to score 300 paired 256x256 test slices with every metric (no translation, no detector).

Times ``mrtrans.evaluation.evaluate.score_slices``: both protocols, three regions each, MAE, MSE,
PSNR, SSIM maps, and tumor contrast -- what ``mrtrans evaluate`` computes per run and direction.
Target: seconds, not minutes.

    python benchmarks/bench_evaluate.py [--slices 300] [--repeats 3] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, report  # noqa: E402

from mrtrans.domain import Direction  # noqa: E402
from mrtrans.evaluation.evaluate import score_slices  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, s = args.slices, 256
    yy, xx = np.mgrid[:s, :s]
    brain = np.broadcast_to(((yy - 128) / 90) ** 2 + ((xx - 128) / 110) ** 2 < 1, (n, s, s)).copy()
    real = np.where(brain, rng.uniform(-0.5, 1, (n, s, s)), -1).astype(np.float32)
    pred = np.clip(real + rng.normal(0, 0.1, real.shape), -1, 1).astype(np.float32)
    seg = np.zeros((n, s, s), np.uint8)
    seg[: n // 2, 100:140, 90:130] = 2
    slices = pd.DataFrame(
        {"subject": "s", "slice_index": np.arange(n), "label": ["tumor"] * (n // 2) + ["healthy"] * (n - n // 2)}
    )
    t = median_time(
        lambda: score_slices("r", "m", Direction("flair", "t1"), real, pred, real, brain, seg, slices, (-1, 1)),
        args.repeats,
    )
    rows = [
        [
            f"score {n} slice pairs ({s}x{s}), 2 protocols x 3 regions x 4 metrics + contrast",
            f"{t:.2f}",
            f"{1000 * t / n:.1f}",
        ]
    ]
    notes = f"median of {args.repeats}, one process. Target: seconds, not minutes."
    report("evaluate: scoring time", ["what", "s", "ms / slice"], rows, notes, not args.no_append)


if __name__ == "__main__":
    main()
