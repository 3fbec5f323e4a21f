"""A PNG of a few healthy and tumor test slices per modality, for a quick look at a prepared set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_contact_sheet(
    folder: Path, manifest: pd.DataFrame, source: str, target: str, b_min: float, b_max: float, per_label: int = 4
) -> Path:
    """Write ``folder/contact_sheet.png``: rows source, target, seg; columns healthy then tumor slices.

    Slices are shown in radiological habit (anterior up) by rotating the ``[x, y]`` arrays.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = manifest[manifest["split"] == "test"]
    picks = []
    for label in ("healthy", "tumor"):
        rows = test[test["label"] == label]
        idx = np.linspace(0, len(rows) - 1, num=min(per_label, len(rows))).astype(int) if len(rows) else []
        picks += [(label, int(rows.iloc[i]["array_index"]), rows.iloc[i]["subject"]) for i in idx]
    images = {m: np.load(folder / "test" / f"{m}.npy", mmap_mode="r") for m in (source, target)}
    seg = np.load(folder / "test" / "seg.npy", mmap_mode="r")
    fig, axes = plt.subplots(3, max(len(picks), 1), figsize=(2 * max(len(picks), 1), 6.3), squeeze=False)
    for col, (label, i, sid) in enumerate(picks):
        for row, m in enumerate((source, target)):
            ax = axes[row, col]
            ax.imshow(np.rot90(np.asarray(images[m][i], np.float32)), cmap="gray", vmin=b_min, vmax=b_max)
            ax.set_title(f"{label} {m}\n{sid}" if row == 0 else m, fontsize=7)
        axes[2, col].imshow(np.rot90(np.asarray(seg[i])), cmap="viridis", vmin=0, vmax=4, interpolation="nearest")
        axes[2, col].set_title("seg", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    path = folder / "contact_sheet.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
