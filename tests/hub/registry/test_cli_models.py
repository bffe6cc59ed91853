"""`outpost model …` refusals that need no hub: each is exit status 2 with a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from outpost.cli import app
from tests.integration.harness import free_port

runner = CliRunner()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "det.onnx"
    path.write_bytes(b"onnx")
    return path


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["model", *args], env={"OUTPOST_API_KEY": ""})
    return result.exit_code, result.output


def test_no_api_key_is_refused(model: Path) -> None:
    code, output = _run("push", str(model), "--name", "det", "--version", "1")
    assert code == 2
    assert "no API key" in output


def test_a_bad_target_or_canary_is_refused_before_any_upload(model: Path) -> None:
    base = ("push", str(model), "--name", "det", "--version", "1", "--api-key", "opk_x")
    code, output = _run(*base, "--target", "fleet")
    assert (code, "use group:ID, site:ID or devices:ID" in output) == (2, True)
    code, output = _run(*base, "--target", "group:4", "--canary", "0%")
    assert (code, "1% to 100%" in output) == (2, True)


def test_an_unreachable_hub_is_reported(model: Path) -> None:
    hub = f"http://127.0.0.1:{free_port()}"
    code, output = _run("rollout", "status", "--hub", hub, "--api-key", "opk_x")
    assert code == 2
    assert f"cannot reach the hub at {hub}" in output


def test_name_and_version_come_from_the_card_or_are_asked_for(model: Path, tmp_path: Path) -> None:
    hub = f"http://127.0.0.1:{free_port()}"
    base = ("push", str(model), "--api-key", "opk_x", "--hub", hub)
    code, output = _run(*base)
    assert (code, "give --name and --version, or a --card" in output) == (2, True)
    card = tmp_path / "card.json"
    card.write_text('{"name": "det", "version": "7"}')
    code, output = _run(*base, "--card", str(card))
    assert code == 2
    assert f"cannot reach the hub at {hub}" in output  # got as far as uploading
