"""The public Python API (mrtrans.*, mrtrans.monai) and the examples of docs/python.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import mrtrans
from mrtrans.errors import MrtransError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python.md"


@pytest.fixture(scope="module")
def flair(synth_root: Path) -> Path:
    return next(synth_root.glob("*/*_flair.nii.gz"))


@pytest.fixture(scope="module")
def translator(tiny_run: Path) -> mrtrans.Translator:
    return mrtrans.load_translator(tiny_run, device="cpu")


def test_public_names_resolve_and_import_mrtrans_is_light() -> None:
    code = (
        "import sys, mrtrans; assert 'torch' not in sys.modules, 'import mrtrans pulled in torch'; "
        "[getattr(mrtrans, n) for n in mrtrans.__all__]; print(sorted(mrtrans.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "load_translator" in out and "prepare_brats" in out
    with pytest.raises(AttributeError):
        mrtrans.no_such_name  # noqa: B018


@pytest.mark.slow
def test_inference_never_imports_the_training_code(tiny_run: Path, flair: Path) -> None:
    """translate, evaluate and the MONAI transform load models without mrtrans.training (DDP, optimisers)."""
    code = (
        "import sys, mrtrans, mrtrans.monai, mrtrans.evaluation.evaluate\n"
        f"t = mrtrans.load_translator({str(tiny_run)!r}, device='cpu')\n"
        f"out = t({str(flair)!r})\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('mrtrans.training'))\n"
        "assert not loaded, loaded\n"
        "print('ok', out.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_every_input_kind_gives_the_file_translation(
    translator: mrtrans.Translator, flair: Path, tmp_path: Path
) -> None:
    report = mrtrans.translate_files(flair, tmp_path / "t1.nii.gz", translator)
    assert report.written == [tmp_path / "t1.nii.gz"]
    expected = nib.load(report.written[0]).get_fdata(dtype=np.float32)
    img = nib.load(flair)
    data = img.get_fdata(dtype=np.float32)

    from_path = translator(flair)
    assert isinstance(from_path, nib.Nifti1Image)
    np.testing.assert_array_equal(from_path.affine, img.affine)
    np.testing.assert_array_equal(np.asarray(from_path.dataobj), expected)

    from_image = mrtrans.translate(img, translator)
    assert isinstance(from_image, nib.Nifti1Image)
    assert from_image.header.get_zooms() == img.header.get_zooms()
    np.testing.assert_array_equal(np.asarray(from_image.dataobj), expected)

    from_array = mrtrans.translate(data, translator, affine=img.affine)
    assert isinstance(from_array, np.ndarray) and from_array.dtype == np.float32
    np.testing.assert_array_equal(from_array, expected)

    channel_first = translator(data[None], affine=img.affine)
    assert channel_first.shape == (1, *data.shape)
    np.testing.assert_array_equal(channel_first[0], expected)

    tensor = translator(torch.from_numpy(data), affine=torch.from_numpy(img.affine))
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_array_equal(tensor.numpy(), expected)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_mask_limits_the_output(translator: mrtrans.Translator, flair: Path) -> None:
    img = nib.load(flair)
    data = img.get_fdata(dtype=np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:, :, data.shape[2] // 2 :] = data[:, :, data.shape[2] // 2 :] > 0
    out = translator(data, affine=img.affine, mask=mask)
    assert not out[~mask].any() and out[mask].any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((8, 8, 8), np.float32),), "needs its 4x4 affine"),
        ((np.ones((8, 8), np.float32), np.eye(4)), "expected a 3D volume"),
        ((np.ones((8, 8, 8), np.float32), np.eye(3)), "expected (4, 4)"),
        ((np.full((8, 8, 8), np.nan, np.float32), np.eye(4)), "NaN or Inf"),
        ((np.zeros((8, 8, 8), np.float32), np.eye(4)), "no brain"),
        (("not a volume",), "not found"),
        ((3.0,), "cannot translate a float"),
        ((np.ones((8, 8, 8), np.float32), np.zeros((4, 4))), "bottom row"),
        ((np.ones((8, 8, 8), np.float32), np.diag([1.0, 0.0, 1.0, 1.0])), "singular"),
        ((np.ones((8, 8, 8), np.float32), np.full((4, 4), np.nan)), "NaN or Inf"),
        ((np.ones((8, 8, 8), np.float32), [["a"] * 4] * 4), "not a numeric 4x4"),
        ((np.ones((8, 8, 8), np.float32), np.vstack([np.eye(4)[:3], [1, 0, 0, 1]])), "bottom row"),
    ],
)
@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_bad_inputs_are_refused_with_what_to_do(translator: mrtrans.Translator, args: tuple, message: str) -> None:
    with pytest.raises(MrtransError, match=re.escape(message)):
        translator(*args)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translated_fills_a_missing_t1_in_a_monai_pipeline(translator: mrtrans.Translator, flair: Path) -> None:
    from monai.data import MetaTensor
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from mrtrans.monai import Translated

    keys = ["flair", "t1"]
    pipeline = Compose(
        [
            LoadImaged(keys=keys, allow_missing_keys=True, image_only=True),
            EnsureChannelFirstd(keys=keys, allow_missing_keys=True),
            Translated(keys="flair", model=translator, output_key="t1", only_if_missing=True),
        ]
    )
    only_flair = pipeline({"flair": str(flair)})
    t1 = only_flair["t1"]
    assert isinstance(t1, MetaTensor) and t1.shape == only_flair["flair"].shape
    np.testing.assert_allclose(t1.affine.numpy(), nib.load(flair).affine, atol=1e-6)
    np.testing.assert_array_equal(t1.pixdim, only_flair["flair"].pixdim)
    assert "flair2t1" in t1.meta["mrtrans_translation"]
    np.testing.assert_array_equal(t1.numpy()[0], np.asarray(translator(flair).dataobj))

    real_t1 = str(flair).replace("_flair", "_t1")
    both = pipeline({"flair": str(flair), "t1": real_t1})  # present: left alone
    np.testing.assert_array_equal(both["t1"].numpy()[0], nib.load(real_t1).get_fdata(dtype=np.float32))

    forced = Translated(keys="flair", model=translator, output_key="t1")(both)  # not only_if_missing: replaced
    np.testing.assert_array_equal(forced["t1"].numpy(), t1.numpy())


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_translated_defaults_and_plain_arrays(translator: mrtrans.Translator, flair: Path) -> None:
    from mrtrans.monai import Translated

    img = nib.load(flair)
    data = img.get_fdata(dtype=np.float32)
    out = Translated(keys="flair", model=translator)({"flair": data, "flair_meta_dict": {"affine": img.affine}})
    np.testing.assert_array_equal(out["flair_t1"], np.asarray(translator(flair).dataobj))
    with pytest.raises(MrtransError, match="LoadImaged"):
        Translated(keys="flair", model=translator)({"flair": data})
    with pytest.raises(MrtransError, match="one output key per key"):
        Translated(keys=["flair", "t2"], model=translator, output_key="t1")
    assert Translated(keys="t2", model=translator, allow_missing_keys=True)({"flair": data}) == {"flair": data}
    with pytest.raises(MrtransError, match="key 't2' is not in the data"):
        Translated(keys="t2", model=translator)({"flair": data})


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_volumes_the_header_or_the_values_make_unusable_are_refused(
    translator: mrtrans.Translator, flair: Path, tmp_path: Path
) -> None:
    img = nib.load(flair)
    data = img.get_fdata(dtype=np.float64)
    cases = {
        "complex": (data.astype(np.complex64), "complex-valued"),
        "huge": (data * 1e39, "beyond float32's range"),
    }
    for name, (values, message) in cases.items():
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(values, img.affine), path)
        before = path.read_bytes()
        with pytest.raises(MrtransError, match=re.escape(message)):
            translator(path)
        assert path.read_bytes() == before
    claim = tmp_path / "claims_3000.nii"  # a header that claims 3000^3 voxels over a few bytes of data
    header = nib.Nifti1Header()
    header.set_data_shape((3000, 3000, 3000))
    header.set_data_dtype(np.int16)
    claim.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(MrtransError, match=r"claims_3000.nii: header claims 3000 x 3000 x 3000 voxels"):
        translator(claim)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_docs_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/python.md, in order, in one namespace, in an empty folder."""
    blocks = python_blocks(DOCS.read_text())
    assert len(blocks) >= 4, "docs/python.md lost its examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/python.md block {number}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"docs/python.md block {number} failed: {type(exc).__name__}: {exc}\n{block}") from exc
    assert (tmp_path / "report" / "summary.csv").is_file()


def test_docs_list_every_public_name() -> None:
    text = DOCS.read_text()
    missing = [name for name in mrtrans.__all__ if name != "__version__" and name not in text]
    assert not missing, f"public names not in docs/python.md: {missing}"
