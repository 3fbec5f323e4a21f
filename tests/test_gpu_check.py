"""benchmarks/gpu_check.sh fails loudly: a failing stage stops it with status 1, naming the stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # runs a shell script and python subprocesses
def test_a_failing_stage_stops_the_check_and_names_itself(tmp_path: Path) -> None:
    wrapper = tmp_path / "python"  # the real interpreter, except that synth-brats fails
    wrapper.write_text(
        f'#!/usr/bin/env bash\nfor a in "$@"; do [ "$a" = synth-brats ] && {{ echo broken >&2; exit 3; }}; done\n'
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {**os.environ, "PYTHON": str(wrapper), "DEVICE": "cpu"}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 1
    assert "gpu_check: FAILED at stage 'synth-brats'" in result.stderr
    assert "prepare-brats" not in result.stderr.split("FAILED")[-1]  # nothing ran after it
    assert "skipped (DEVICE=cpu)" in result.stderr  # the CUDA-only stage says it was skipped, not passed
