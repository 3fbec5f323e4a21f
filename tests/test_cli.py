import re

from typer.testing import CliRunner

from mrtrans import __version__
from mrtrans.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = re.findall(r"│ ([a-z][a-z0-9-]+)\s", result.stdout)
    assert "synth-brats" in commands
    for name in commands:
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
        assert "Usage" in sub.stdout


def test_known_error_is_one_line_without_traceback(tmp_path):
    result = runner.invoke(app, ["synth-brats", str(tmp_path / "x"), "--shape", "1,2"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: --shape '1,2': expected three integers >= 16 separated by commas, e.g. 240,240,155"]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "synth-brats", str(tmp_path / "x"), "--shape", "1,2"])
    assert result.exit_code != 0
    assert result.exception is not None and "--shape" in str(result.exception)


def test_synth_brats_writes_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "data"
    args = ["synth-brats", str(out), "--subjects", "1", "--shape", "32,32,16"]
    assert runner.invoke(app, args).exit_code == 0
    assert len(list(out.glob("*/*.nii.gz"))) == 5
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and str(out) in again.stderr
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0
