"""`edge-agent doctor` on a freshly installed device: every check passes against real services,
and a broken broker address is a FAIL line with the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.edge_agent.enroll_responder import EnrollResponder
from tests.integration.harness import EDGE_AGENT, free_port


def installed(tmp_path: Path, responder: EnrollResponder) -> Path:
    config = tmp_path / "agent.toml"
    subprocess.run(
        [
            EDGE_AGENT,
            "install",
            "--hub",
            responder.url,
            "--token",
            responder.issue_token(),
            "--name",
            "doctor test",
            "--data-dir",
            str(tmp_path / "data"),
            "--config",
            str(config),
            "--no-service",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return config


def doctor(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.timeout(90)
def test_doctor_passes_on_a_healthy_install(tmp_path: Path, mqtt_url: str) -> None:
    with EnrollResponder(mqtt_url=mqtt_url) as responder:
        result = doctor(installed(tmp_path, responder))
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("device key", "hub key", "broker reachable", "broker login", "clock", "disk"):
        assert f"OK   {check}" in result.stdout


@pytest.mark.timeout(90)
def test_doctor_names_the_broken_part_and_the_fix(tmp_path: Path, mqtt_url: str) -> None:
    with EnrollResponder(mqtt_url=mqtt_url) as responder:
        config = installed(tmp_path, responder)
        result = doctor(config, OUTPOST_AGENT_MQTT__URL=f"mqtt://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "FAIL broker reachable" in result.stdout
    assert "fix: check the network" in result.stdout
    assert "OK   device key" in result.stdout
