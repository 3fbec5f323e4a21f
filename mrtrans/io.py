"""NIfTI read/write that keeps geometry, and atomic writes of files.

Every output file of mrtrans goes through :func:`atomic_path` (folders: :func:`mrtrans.outputs.atomic_dir`):
data is written next to its destination under a hidden temporary name and renamed into place only
when complete, so a crash or Ctrl-C never leaves a half-written file or dataset behind. Files get
the usual permissions (0666 less the umask), as any other output.
"""

from __future__ import annotations

import contextlib
import locale
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from mrtrans.errors import MrtransError
from mrtrans.outputs import make_folder, umask

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_suffix(path: str | Path) -> str | None:
    """Return ``.nii.gz`` or ``.nii`` for a NIfTI path, else None."""
    name = Path(path).name.lower()
    return next((s for s in NIFTI_SUFFIXES if name.endswith(s)), None)


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file, or of a folder's files (a DICOM series: names and contents, sorted), as hex."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        if path.is_dir():
            h.update(item.relative_to(path).as_posix().encode())
        with open(item, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def strip_nifti_suffix(path: str | Path) -> str:
    """File name without its NIfTI suffix: ``a/b_flair.nii.gz`` -> ``b_flair``."""
    name = Path(path).name
    suffix = nifti_suffix(name)
    return name[: -len(suffix)] if suffix else name


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` if the block succeeds.

    The temporary name keeps the final suffix (e.g. ``.nii.gz``) so writers that choose their
    format by extension behave the same.
    """
    final = Path(final)
    make_folder(final.parent)
    suffix = nifti_suffix(final) or final.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~umask())  # mkstemp makes it private (0600)
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_partial_files(final: str | Path) -> list[Path]:
    """Remove files that :func:`atomic_path` left beside ``final`` when its process was killed (call under its lock).

    Only plain files named like ``atomic_path``'s temporaries of this very output (``.<name>.*.tmp<suffix>``) are
    removed.
    """
    final = Path(final)
    suffix = nifti_suffix(final) or final.suffix
    if not final.parent.is_dir():
        return []
    removed = [p for p in final.parent.glob(f".{final.name}.*.tmp{suffix}") if p.is_file() and not p.is_symlink()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_nifti(path: str | Path) -> nib.Nifti1Image:
    """Open a NIfTI file and read its data, turning every failure into one clear error.

    Raises:
        MrtransError: the file is missing, not NIfTI, or truncated/corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise MrtransError(f"{path}: file not found")
    if nifti_suffix(path) is None:
        raise MrtransError(f"{path}: not a NIfTI file (expected .nii or .nii.gz)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel/gzip/zlib raise many types for a bad file
        raise MrtransError(
            f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc}); re-export or re-download it"
        ) from exc
    shape = tuple(int(n) for n in img.shape)
    voxels = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if voxels > MAX_VOXELS:  # check the header's claim before allocating anything
        raise MrtransError(
            f"{path}: header claims {' x '.join(map(str, shape))} voxels ({voxels * 4 / 2**30:.0f} GiB as float32), "
            f"more than mrtrans reads ({MAX_VOXELS:.0e}); check the file's header"
        )
    if np.issubdtype(img.get_data_dtype(), np.complexfloating):
        raise MrtransError(
            f"{path}: complex-valued image ({img.get_data_dtype()}); give a magnitude image (e.g. abs())"
        )
    try:
        with np.errstate(over="ignore"):  # values beyond float32 are reported by read_volume, with the file
            img.get_fdata(dtype=np.float32)  # force decompression now, so truncation is caught here
    except MemoryError:
        raise MrtransError(f"{path}: not enough memory to read {' x '.join(map(str, shape))} voxels") from None
    except Exception as exc:  # nibabel/gzip/zlib raise many types for a bad file
        raise MrtransError(
            f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc}); re-export or re-download it"
        ) from exc
    return img


MAX_VOXELS = 2 * 10**9  # 8 GiB of float32: far beyond any MR volume


def read_volume(path: str | Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a 3D volume as float32 and check it is usable.

    Returns:
        ``(data, image)``: data of shape (X, Y, Z) in the file's voxel order, and the image whose
        affine and header describe it.

    Raises:
        MrtransError: unreadable, not 3D (a 4D file with one volume is accepted), NaN/Inf, or empty.
    """
    img = load_nifti(path)
    raw = np.asanyarray(img.dataobj)
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise MrtransError(f"{path}: expected a 3D volume, got shape {raw.shape}; pass one 3D image per file")
    if not np.isfinite(raw).all():
        raise MrtransError(f"{path}: contains NaN or Inf values; fix the file (e.g. replace them by 0)")
    if np.issubdtype(raw.dtype, np.floating) and np.abs(raw).max() > np.finfo(np.float32).max:
        raise MrtransError(f"{path}: values up to {np.abs(raw).max():.3g}, beyond float32's range; rescale the image")
    data = raw.astype(np.float32, copy=False)
    if not np.any(data):
        raise MrtransError(f"{path}: volume is empty (all zeros)")
    return data, img


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Run SimpleITK/GDCM calls without their console warnings ("No Series were found") and with the
    process locale restored afterwards (GDCM's DICOM writer leaves LC_CTYPE at "C", which turns Python's
    default text encoding into ASCII for the rest of the process)."""
    import SimpleITK as sitk

    saved = locale.setlocale(locale.LC_ALL)
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
        locale.setlocale(locale.LC_ALL, saved)


def dicom_series(folder: str | Path) -> list[str]:
    """The DICOM series IDs in ``folder`` (not its subfolders); empty when it holds none."""
    import SimpleITK as sitk

    with quiet_itk():
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or [])


def itk_message(exc: BaseException) -> str:
    """The informative part of an ITK exception (its 'Description:' line, else its first lines), one line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    described = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
    return (described[0] if described else " ".join(lines[:3]))[:300] or type(exc).__name__


DICOM_SPACING_TOLERANCE = 0.01  # relative: slice gaps may differ by 1% (rounded positions), no more


def check_dicom_slices(folder: Path, files: list[str]) -> None:
    """Refuse a series whose slices would not make one regular grid: unreadable slice headers, slices of
    several sizes or orientations, or positions along the slice normal that are not evenly spaced (a
    missing, duplicated or misplaced slice). ITK would average such gaps into one spacing, silently.

    Raises:
        MrtransError: naming the file or the gap, and what to do.
    """
    import SimpleITK as sitk

    heads = []
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            with quiet_itk():
                reader.ReadImageInformation()
        except RuntimeError as exc:
            raise MrtransError(
                f"{name}: cannot read this DICOM slice ({itk_message(exc)}); replace it or remove it "
                "from the series folder"
            ) from None
        tags = {k: reader.GetMetaData(k).strip() for k in ("0020|0032", "0020|0037") if reader.HasMetaDataKey(k)}
        heads.append((name, tuple(reader.GetSize()[:2]), tags))
    if len(heads) < 2:
        return
    sizes = {size for _, size, _ in heads}
    if len(sizes) > 1:
        odd = next(name for name, size, _ in heads if size != heads[0][1])
        raise MrtransError(
            f"{folder}: slices of different sizes ({', '.join('x'.join(map(str, s)) for s in sorted(sizes))}; "
            f"e.g. {Path(odd).name}); remove the slices that do not belong to the series"
        )
    if any(len(tags) < 2 for _, _, tags in heads):
        return  # no patient geometry in the headers: ITK's own spacing is all there is
    try:
        orientations = [np.array([float(v) for v in tags["0020|0037"].split("\\")]) for _, _, tags in heads]
        positions = np.array([[float(v) for v in tags["0020|0032"].split("\\")] for _, _, tags in heads])
    except ValueError:
        raise MrtransError(f"{folder}: slice positions or orientations are not numbers in the DICOM headers") from None
    if any(len(o) != 6 or not np.allclose(o, orientations[0], atol=1e-4) for o in orientations):
        raise MrtransError(
            f"{folder}: slices with different orientations; the series is not one volume - export it again or split it"
        )
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    order = np.argsort(positions @ normal)
    along = (positions @ normal)[order]
    gaps = np.diff(along)
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > DICOM_SPACING_TOLERANCE * max(step, 1e-6) + 1e-4)
    if step <= 1e-4 or len(bad):
        k = int(bad[0]) if len(bad) else 0
        a, b = Path(files[order[k]]).name, Path(files[order[k + 1]]).name
        listed = {Path(f).resolve() for f in files}
        left_out = sorted(p.name for p in folder.iterdir() if p.is_file() and p.resolve() not in listed)
        extra = f"; files not read as slices of the series (unreadable?): {', '.join(left_out[:5])}" if left_out else ""
        raise MrtransError(
            f"{folder}: slices are not evenly spaced: {gaps[k]:.3g} mm between {a} and {b}, {step:.3g} mm "
            f"elsewhere ({len(files)} slices; a missing, duplicated or misplaced slice?){extra}; complete the "
            "series or export it again"
        )


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read the one DICOM series in ``folder`` (SimpleITK) as :func:`read_volume` reads a NIfTI file.

    The image's geometry is the series' (ITK's LPS world turned into NIfTI's RAS), so a NIfTI written
    with it as reference lies where the series lies.

    Raises:
        MrtransError: no series, several series, unreadable, slices that do not make one regular grid
            (:func:`check_dicom_slices`), or not a usable 3D volume.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    series = dicom_series(folder)
    if not series:
        raise MrtransError(f"{folder}: no DICOM series found (and no NIfTI files)")
    if len(series) > 1:
        raise MrtransError(
            f"{folder}: holds {len(series)} DICOM series ({', '.join(series[:3])}...); "
            "put each series in its own folder and pass that"
        )
    reader = sitk.ImageSeriesReader()
    with quiet_itk():
        files = list(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    check_dicom_slices(folder, files)
    try:
        with quiet_itk():
            reader.SetFileNames(files)
            image = reader.Execute()
    except RuntimeError as exc:
        raise MrtransError(f"{folder}: cannot read the DICOM series ({itk_message(exc)})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MrtransError(
            f"{folder}: expected a 3D single-channel series, got {image.GetDimension()}D "
            f"with {image.GetNumberOfComponentsPerPixel()} components"
        )
    data = sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0)  # sitk arrays are (Z, Y, X)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units("mm")
    if not np.isfinite(data).all() or not np.any(data):
        raise MrtransError(f"{folder}: the series is empty or contains NaN/Inf")
    return data, img


def image_like(
    data: np.ndarray,
    reference: nib.Nifti1Image | None = None,
    affine: np.ndarray | None = None,
    dtype: np.dtype | type | None = None,
    description: str | None = None,
) -> nib.Nifti1Image:
    """An in-memory NIfTI image of ``data`` with the reference's geometry and header.

    With a ``reference`` image the result gets its header (pixdim, units, qform and sform with
    their codes, intent); only the data type, scaling and the optional description change.

    Args:
        data: array with the reference's shape (or any 3D array with ``affine``).
        reference: image whose geometry the result takes.
        affine: used when there is no reference (codes set to 1, scanner).
        dtype: on-disk type; defaults to ``data.dtype``.
        description: the header's ``descrip`` field (80 characters at most).
    """
    dtype = np.dtype(dtype or data.dtype)
    if reference is not None:
        header = reference.header.copy()
        img = nib.Nifti1Image(data.astype(dtype, copy=False), None, header=header)
        # Keep both transforms and their codes exactly as the input had them.
        qform, qcode = reference.get_qform(coded=True)
        sform, scode = reference.get_sform(coded=True)
        img.set_qform(qform if qform is not None else reference.affine, int(qcode))
        img.set_sform(sform if sform is not None else reference.affine, int(scode))
    else:
        if affine is None:
            raise MrtransError("a NIfTI image needs a reference image or an affine")
        img = nib.Nifti1Image(data.astype(dtype, copy=False), affine)
        img.set_qform(affine, 1)
        img.set_sform(affine, 1)
        img.header.set_xyzt_units("mm", "sec")  # an affine in millimetres, as NIfTI readers (and BIDS) expect it said
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)  # the data are stored as given, never rescaled
    if description is not None:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    return img


def write_nifti(
    data: np.ndarray,
    path: str | Path,
    reference: nib.Nifti1Image | None = None,
    affine: np.ndarray | None = None,
    dtype: np.dtype | type | None = None,
    description: str | None = None,
) -> Path:
    """Write :func:`image_like` of the arguments to ``path`` atomically (``.nii`` or ``.nii.gz``).

    Returns:
        The written path.
    """
    path = Path(path)
    if nifti_suffix(path) is None:
        raise MrtransError(f"{path}: output must end in .nii or .nii.gz")
    img = image_like(data, reference, affine, dtype, description)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
