"""Scans as they come (issue 12): spacing, input conventions, DICOM, cohorts, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrtrans.cli import app
from mrtrans.inference.translate import load_translator

runner = CliRunner()


@pytest.mark.slow  # trains (make test-fast trains nothing)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_gives_the_checkpoint_output(tiny_run: Path, tmp_path: Path, fmt: str) -> None:
    result = runner.invoke(
        app, ["export", str(tiny_run), "--out", str(tmp_path / "x"), "--format", fmt, "--direction", "t12flair"]
    )
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "x" / "preprocessing.json").read_text())
    assert recipe["spacing_mm"] == [1.0, 1.0] and recipe["field_size"] == 64
    assert recipe["direction"] == {"source": "t1", "target": "flair"} and recipe["normalization"]["range"] == [
        -1.0,
        1.0,
    ]
    generator = load_translator(tiny_run, "t12flair", device="cpu").generator
    slices = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = generator(slices).numpy()
    path = tmp_path / "x" / recipe["file"]
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(["translation"], {"image": slices.numpy()})[0]
        with pytest.raises(Exception, match="(?i)dimension|shape|invalid"):  # 63x63: refused, not translated onto 64x64
            session.run(["translation"], {"image": slices.numpy()[:, :, :63, :63]})
    else:
        got = torch.jit.load(str(path))(slices).detach().numpy()
        with pytest.raises(Exception, match="expected slices of shape"):
            torch.jit.load(str(path))(slices[:, :, :63, :63])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow  # trains (make test-fast trains nothing)
def test_a_monai_bundle_runs_in_monai_and_gives_what_translate_gives(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    """The bundle round trip (issue 28): exported, run by monai.bundle's own runner on a NIfTI file."""
    import nibabel as nib
    from monai.bundle import ConfigParser, run

    from mrtrans.api import translate_files

    result = runner.invoke(
        app, ["export", str(tiny_run), "--out", str(tmp_path / "bundle"), "--format", "monai-bundle"]
    )
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert {"configs/metadata.json", "configs/inference.json", "models/model.pt", "models/mrtrans.pt"} <= set(files)
    flair = sorted(synth_root.glob("*/*_flair.nii.gz"))[0]
    run(
        config_file=str(bundle / "configs" / "inference.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        bundle_root=str(bundle),
        input_file=str(flair),
        output_dir=str(tmp_path / "monai_out"),
        device="cpu",
    )
    translate_files(flair, tmp_path / "mrtrans_out.nii.gz", tiny_run, device="cpu")
    ours, theirs = nib.load(tmp_path / "mrtrans_out.nii.gz"), nib.load(next((tmp_path / "monai_out").glob("*.nii.gz")))
    assert theirs.shape == ours.shape and np.allclose(theirs.affine, ours.affine)
    assert theirs.header.get_xyzt_units() == ours.header.get_xyzt_units() == ("mm", "sec")  # units kept
    assert np.abs(theirs.get_fdata() - ours.get_fdata()).max() <= 1e-4

    meta = ConfigParser.load_config_file(bundle / "configs" / "metadata.json")
    ckpt = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)
    assert meta["mrtrans"]["direction"] == "flair2t1" and meta["mrtrans"]["model_kind"] == ckpt["kind"]
    assert meta["mrtrans"]["spacing_mm"] == ckpt["normalization"]["spacing"]
    assert meta["mrtrans"]["intensity"]["lower_percentile"] == ckpt["normalization"]["lower_percentile"]
    assert any("HarmonicGAN" in r or "Harmonic" in r for r in meta["references"])
    assert any("BRATS" in r for r in meta["references"]) and "mrtrans" in meta["required_packages_version"]
    bundled = torch.load(bundle / "models" / "mrtrans.pt", weights_only=True)  # plain tensors: loads safely
    assert set(bundled["models"]) == {"gen_s2t"} and bundled["translators"] == {"flair2t1": "gen_s2t"}


def test_monai_s_own_bundle_checks_run_on_the_exported_network(tmp_path: Path) -> None:
    """verify_net_in_out and ckpt_export (MONAI's tools, offline) on network_def and models/model.pt; the TorchScript
    they write gives what mrtrans' own generator gives, so ckpt_export loaded the weights."""
    from monai.bundle import ckpt_export, verify_net_in_out

    from mrtrans.api import export_model, load_translator

    from helpers import make_checkpoint

    model = make_checkpoint(tmp_path / "last.pt")
    bundle = export_model(model, tmp_path / "bundle", "monai-bundle")
    configs = {
        "meta_file": str(bundle / "configs/metadata.json"),
        "config_file": str(bundle / "configs/inference.json"),
    }
    verify_net_in_out(net_id="network_def", device="cpu", **configs)
    ckpt_export(
        net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(bundle / "models/model.pt"), **configs
    )
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    exported = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        assert torch.allclose(exported(x), load_translator(model, device="cpu").generator(x), atol=1e-6)
    meta = json.loads((bundle / "configs/metadata.json").read_text())
    assert meta["schema"].endswith("meta_schema_20240725.json") and meta["license"] and meta["authors"]
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [64, 64]
    assert meta["network_data_format"]["inputs"]["image"]["value_range"] == [-1.0, 1.0]
    readme = (bundle / "README.md").read_text()
    assert "pip install mrtrans==" not in readme and "git+https://" in readme  # installable from where it is
