"""What mrtrans assumes of an input volume, checked rather than assumed.

The models are trained on skull-stripped BraTS volumes: background exactly 0 (the image minimum), the
brain the non-zero voxels. A volume that breaks this is translated wrongly without any error (a -1
background is taken for brain everywhere; the scalp of a head that was not skull-stripped is
translated as brain), so translate and prepare-brats check it first. All checks take (X, Y, Z) arrays in
RAS order (axial slices along Z); thresholds were measured on BraTS (docs/translate.md).
"""

from __future__ import annotations

import numpy as np
from nibabel import affines, orientations

# A skull-stripped BraTS volume is 7-20% brain (measured on the 12 real BraTS 2018 subjects of the sample);
# a volume with almost no zero voxels has no zero background at all.
MAX_FOREGROUND_SHARE = 0.9
# A head fills its field of view; a stripped brain sits inside it. Share of the axial slices' outline
# (the field's border pixels) that the mask covers, on the slice where that is largest (0 on all 48
# real BraTS volumes of the sample).
MAX_BORDER_SHARE = 0.2
# The scalp (fat) is the brightest tissue of a head in T1, FLAIR and T2; a stripped brain's edge is cortex
# and CSF. Median of the foreground's outer 3-voxel shell over the median of its inside: at most 1.04 on
# the sample's FLAIR/T1/T1ce and 1.61 on its T2 (bright CSF); a head scores above 2.
MAX_RIM_RATIO = 2.0
RIM_WIDTH = 3

WHAT_TO_DO = (
    "skull-strip the volume first (e.g. HD-BET, SynthStrip) with background 0, or pass --mask with a "
    "brain mask; --allow-unstripped translates it anyway"
)


def ras_spacing(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Voxel size in mm along the RAS-reoriented axes (x, y in-plane, z through-plane)."""
    to_ras = orientations.ornt_transform(
        orientations.io_orientation(affine), orientations.axcodes2ornt(("R", "A", "S"))
    )
    ras_affine = affine @ orientations.inv_ornt_aff(to_ras, shape[:3])
    x, y, z = (float(v) for v in affines.voxel_sizes(ras_affine))
    return x, y, z


def background_problem(volume: np.ndarray) -> str | None:
    """Why ``volume`` (any orientation) has no zero background at its minimum, or None."""
    low = float(volume.min())
    if low < 0 and float(np.mean(volume == low)) > 0.05:
        return (
            f"background is {low:g}, not 0 (its most common low value); mrtrans expects background 0 at the image "
            "minimum"
        )
    share = float(np.mean(volume != 0))
    if share > MAX_FOREGROUND_SHARE:
        return (
            f"{share:.0%} of the voxels are non-zero, so there is no zero background (brain = non-zero voxels); "
            "mrtrans expects a skull-stripped volume with background 0"
        )
    return None


def border_share(mask: np.ndarray) -> float:
    """Largest share, over axial slices, of the field's in-plane border pixels that ``mask`` covers."""
    if mask.shape[0] < 3 or mask.shape[1] < 3:
        return 1.0
    edges = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]], axis=0)  # (border pixels, Z)
    return float(edges.mean(axis=0).max())


def rim_ratio(volume: np.ndarray, mask: np.ndarray, width: int = RIM_WIDTH) -> float:
    """Median of the outer ``width``-voxel in-plane shell of ``mask`` over the median of its inside (0: too small)."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)  # in-plane erosion: thin slabs keep their inside
    inner = ndimage.binary_erosion(mask, structure, iterations=width)
    if inner.sum() < 100:
        return 0.0
    return float(np.median(volume[mask & ~inner]) / max(float(np.median(volume[inner])), 1e-6))


def unstripped_problem(volume: np.ndarray, mask: np.ndarray) -> str | None:
    """Why the foreground ``mask`` of ``volume`` (X, Y, Z, RAS) looks like a head, not a skull-stripped brain, or
    None.
    """
    share = border_share(mask)
    if share > MAX_BORDER_SHARE:
        return (
            f"the foreground touches the field's edge along {share:.0%} of an axial slice's border, as a head "
            "does, not a skull-stripped brain"
        )
    ratio = rim_ratio(volume, mask)
    if ratio > MAX_RIM_RATIO:
        return (
            f"the foreground's outer rim is {ratio:.1f}x as bright as its inside, as a scalp is, not a "
            "skull-stripped brain's edge"
        )
    return None


def convention_problem(volume: np.ndarray, mask: np.ndarray | None) -> str | None:
    """The first broken input convention of ``volume`` (RAS) whose brain is its non-zero voxels, or None.

    A user's brain ``mask`` says where the brain is: nothing is checked then.
    """
    if mask is not None:
        return None
    return background_problem(volume) or unstripped_problem(volume, volume != 0)


def extent_problem(masks: dict[str, np.ndarray], max_missing: float) -> str | None:
    """Why the sequences' brains disagree (one misses more than ``max_missing`` of another's), or None.

    BraTS 2018's Brats18_2013_20_1 has a FLAIR whose field of view lacks a third of the brain that the
    T1 shows: its slices would pair an empty FLAIR with a full T1.
    """
    names = list(masks)
    for a in names:
        for b in names:
            if a == b:
                continue
            inside = int(masks[b].sum())
            missing = int((masks[b] & ~masks[a]).sum()) / max(inside, 1)
            if missing > max_missing:
                return (
                    f"{a} lacks {missing:.0%} of the brain that {b} shows (cut field of view?); the sequences must "
                    f"cover the same brain (allowed: {max_missing:.0%}, prepare key max_extent_mismatch)"
                )
    return None


# Voxel sizes within 1% of the wanted one are used as they are (prepare-brats and translate alike).
SPACING_TOLERANCE = 0.01


def spacing_differs(have: tuple[float, ...], want: tuple[float | None, ...]) -> bool:
    """Whether any axis of ``have`` differs from ``want`` (None: any size) by more than ``SPACING_TOLERANCE``."""
    return any(w is not None and abs(h / w - 1.0) > SPACING_TOLERANCE for h, w in zip(have, want))
