"""The two commands are wired; what is not built says so and exits non-zero."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from outpost.cli import app as outpost_app
from outpost.stubs import NOT_BUILT_EXIT, PLANNED

runner = CliRunner()


@pytest.mark.parametrize(("path", "name", "issue"), [(p, n, i) for p, n, i, _ in PLANNED])
def test_planned_outpost_commands_say_not_built(path: str, name: str, issue: int) -> None:
    args = [*path.split(), name, "--some-flag", "value"]
    result = runner.invoke(outpost_app, args)
    assert result.exit_code == NOT_BUILT_EXIT
    assert "not built yet" in result.output
    assert f"issue #{issue}" in result.output


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
