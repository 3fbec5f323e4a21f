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
