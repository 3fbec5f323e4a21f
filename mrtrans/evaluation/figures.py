"""Figure grids: source | translation | real | |error|, tumor contour, for the best, median and worst slices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mrtrans.evaluation.evaluate import Scored


def pick_slices(mae: np.ndarray, count: int) -> list[tuple[str, int]]:
    """(name, index) of the best, median and worst slices by MAE (fewer if count < 3)."""
    order = np.argsort(mae, kind="stable")
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    return [(name, int(i)) for name, i in picks[:count]]


def write_figures(folder: Path, scored: list[tuple[str, "Scored"]], count: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    for label, s in scored:
        if not len(s.per_slice):
            continue  # the audit's ceiling rows have no translation to show
        whole = s.per_slice[(s.per_slice["protocol"] == "paper") & (s.per_slice["region"] == "whole")]
        picks = pick_slices(whole["mae"].to_numpy(), count)
        direction = whole["direction"].iloc[0]
        fig, axes = plt.subplots(len(picks), 4, figsize=(10, 2.6 * len(picks)), squeeze=False)
        for row, (name, i) in enumerate(picks):
            error = np.abs(s.pred[i] - s.real[i])
            panels = [("source", s.source[i], "gray", (-1, 1)), ("translation", s.pred[i], "gray", (-1, 1)),
                      ("real", s.real[i], "gray", (-1, 1)), ("|error|", error, "magma", (0, 1))]  # fmt: skip
            for col, (title, img, cmap, (lo, hi)) in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(np.rot90(img), cmap=cmap, vmin=lo, vmax=hi)
                if (s.seg[i] > 0).any() and col in (1, 2):
                    ax.contour(np.rot90(s.seg[i] > 0), levels=[0.5], colors="red", linewidths=0.6)
                ax.set_title(f"{title}" if col else f"{name}: {whole['subject'].iloc[i]} z={whole['slice_index'].iloc[i]}\n"
                             f"MAE {whole['mae'].iloc[i]:.1f}", fontsize=7)  # fmt: skip
                ax.axis("off")
        fig.suptitle(f"{label} {direction}", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / f"{label}_{direction}.png", dpi=80)
        plt.close(fig)
