"""The two commands are wired; what is not built says so and exits non-zero."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from outpost import stubs
from outpost.cli import app as outpost_app
from outpost.stubs import NOT_BUILT_EXIT

runner = CliRunner()


def test_a_planned_command_says_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command is built now; the mechanism stays for the next planned one."""
    planned = (("bench", "teleport", 99, "Not a real benchmark"),)
    monkeypatch.setattr(stubs, "PLANNED", planned)
    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="bench")
    stubs.register({"": app, "bench": bench})
    result = runner.invoke(app, ["bench", "teleport", "--some-flag", "value"])
    assert result.exit_code == NOT_BUILT_EXIT
    assert "not built yet" in result.output
    assert "issue #99" in result.output


def test_bench_codec_prints_the_design_shape() -> None:
    result = runner.invoke(outpost_app, ["bench", "codec", "--json", "--seconds", "0.05"])
    data = json.loads(result.output)
    assert {"name", "ratio", "target", "numerator", "denominator", "env"} <= data.keys()
    assert data["name"] == "codec"
    assert data["ratio"] > 0
    assert result.exit_code == (0 if data["passed"] else 1)


@pytest.mark.parametrize("script", ["outpost", "edge-agent"])
def test_console_scripts_are_installed(script: str) -> None:
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    out = subprocess.run([bin_dir / script, "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.1.0"
