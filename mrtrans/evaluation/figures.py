"""Figure grids: source | translation | real | |error|, tumor contour, for the best, median and worst slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrtrans.evaluation.scored import Scored


def pick_slices(mae: np.ndarray, count: int) -> list[tuple[str, int]]:
    """(name, index) of the best, median and worst slices by MAE (fewer if count < 3)."""
    order = np.argsort(mae, kind="stable")
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    return [(name, int(i)) for name, i in picks[:count]]


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_volume_figures(
    folder: Path, name: str, volumes: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    """Per subject: the coronal and the sagittal plane through the brain's centre, translation above reference.

    Args:
        volumes: (subject, pred, reference, seg), (X, Y, Z) RAS arrays in [0, 1].
    """
    plt = _pyplot()
    folder.mkdir(exist_ok=True)
    for subject, pred, ref, seg in volumes:
        centre = [
            int(np.mean(np.flatnonzero(ref.any(axis=tuple(a for a in range(3) if a != k))))) if ref.any() else 0
            for k in range(3)
        ]
        cuts = {"coronal": lambda v, c=centre: v[:, c[1], :], "sagittal": lambda v, c=centre: v[c[0], :, :]}
        fig, axes = plt.subplots(2, 2, figsize=(6, 6), squeeze=False)
        for col, (plane, cut) in enumerate(cuts.items()):
            for row, (title, vol) in enumerate((("translation", pred), ("reference", ref))):
                ax = axes[row, col]
                ax.imshow(np.rot90(cut(vol)), cmap="gray", vmin=0, vmax=1, aspect="auto")
                if (cut(seg) > 0).any():
                    ax.contour(np.rot90(cut(seg) > 0), levels=[0.5], colors="red", linewidths=0.6)
                ax.set_title(f"{plane}: {title}", fontsize=8)
                ax.axis("off")
        fig.suptitle(f"{name} {subject} (slice-to-slice flicker shows as stripes)", fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"{name}_{subject}_planes.png", dpi=80)
        plt.close(fig)


def write_figures(folder: Path, scored: list[tuple[str, Scored]], count: int) -> None:
    plt = _pyplot()

    folder.mkdir(exist_ok=True)
    for label, s in scored:
        if not len(s.per_slice) or label == "copy-source":
            continue  # the audit's ceiling and sanity rows have no translation to show, nor the baseline
        whole = s.per_slice[(s.per_slice["protocol"] == "paper") & (s.per_slice["region"] == "whole")]
        picks = pick_slices(whole["mae"].to_numpy(), count)
        direction = whole["direction"].iloc[0]
        fig, axes = plt.subplots(len(picks), 4, figsize=(10, 2.6 * len(picks)), squeeze=False)
        for row, (name, i) in enumerate(picks):
            error = np.abs(s.pred[i] - s.real[i])
            panels = [
                ("source", s.source[i], "gray", (-1, 1)),
                ("translation", s.pred[i], "gray", (-1, 1)),
                ("real", s.real[i], "gray", (-1, 1)),
                ("|error|", error, "magma", (0, 1)),
            ]
            for col, (title, img, cmap, (lo, hi)) in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(np.rot90(img), cmap=cmap, vmin=lo, vmax=hi)
                if (s.seg[i] > 0).any() and col in (1, 2):
                    ax.contour(np.rot90(s.seg[i] > 0), levels=[0.5], colors="red", linewidths=0.6)
                ax.set_title(
                    f"{title}"
                    if col
                    else f"{name}: {whole['subject'].iloc[i]} z={whole['slice_index'].iloc[i]}\n"
                    f"MAE {whole['mae'].iloc[i]:.1f}",
                    fontsize=7,
                )
                ax.axis("off")
        fig.suptitle(f"{label} {direction}", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / f"{label}_{direction}.png", dpi=80)
        plt.close(fig)
