"""Signed commands through a real Mosquitto to a real `edge-agent run`: the latched stop.

What the agent itself decides, with no robot configured: verify, acknowledge with
the reason, latch, persist. The robot adapters' tests drive real robots.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from protocol import CommandType, encode
from protocol.commands import new_command
from protocol.models import EstopParams, ReleaseParams
from protocol.signing import generate_private_key, public_key_to_text, sign
from tests.integration.edge.robotrig import (
    HUB_KEY,
    engaged,
    send_and_collect,
    signed,
    status,
)
from tests.integration.harness import EDGE_AGENT, AgentProcess, agent_config, wait_for


def _agent(
    tmp_path: Path, device: str, mqtt_url: str, **sections: dict
) -> tuple[Path, AgentProcess]:
    """The config of an agent that pins HUB_KEY, and its (not yet started) process."""
    cfg = agent_config(
        tmp_path / "agent.toml",
        device=device,
        data_dir=tmp_path / "data",
        mqtt_url=mqtt_url,
        hub={"public_key": public_key_to_text(HUB_KEY.public_key())},
        **sections,
    )
    return cfg, AgentProcess(cfg, tmp_path / "agent.log")


def _link_up(data: Path) -> None:
    wait_for(lambda: status(data).get("link", {}).get("state") == "up", 20, "link up")


@pytest.mark.timeout(120)
def test_signed_estop_latches_survives_a_restart_and_only_a_fresh_release_clears_it(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    device = f"cmd-{run_id}"
    data = tmp_path / "data"
    _cfg, agent = _agent(tmp_path, device, mqtt_url)
    agent.start()
    try:
        _link_up(data)
        forged = encode(
            sign(
                new_command(
                    device,
                    CommandType.ESTOP,
                    EstopParams(),
                    issued_by="mallory",
                    now=datetime.now(UTC),
                    ttl=timedelta(seconds=30),
                ),
                generate_private_key(),
            )
        )
        estop = signed(device, CommandType.ESTOP, EstopParams(reason="test stop"))
        acks = asyncio.run(send_and_collect(mqtt_url, device, [forged, estop], until_acks=3))
        assert [(a["status"], a.get("reason")) for a in acks] == [
            ("rejected", "bad_signature"),
            ("received", None),
            ("done", None),
        ]
        wait_for(lambda: engaged(data), 10, "the stop to show in status")

        assert agent.terminate() == 0
        agent.start()  # restarted while stopped ...
        wait_for(lambda: status(data).get("link", {}).get("state") == "up", 20, "link up again")
        assert engaged(data), "... comes back stopped"

        stale = signed(device, CommandType.RELEASE, ReleaseParams(reason="old"), age_s=120)
        fresh = signed(device, CommandType.RELEASE, ReleaseParams(reason="area clear"))
        acks = asyncio.run(send_and_collect(mqtt_url, device, [stale, fresh], until_acks=3))
        assert [(a["status"], a.get("reason")) for a in acks] == [
            ("expired", "expired"),
            ("received", None),
            ("done", None),
        ]
        wait_for(lambda: not engaged(data), 10, "the release to show in status")
        # The same release again is a replay: refused, and the stop it could clear stays clear.
        acks = asyncio.run(send_and_collect(mqtt_url, device, [fresh], until_status="rejected"))
        assert acks[-1].get("reason") == "replayed", acks
        time.sleep(0.2)
        assert agent.terminate() == 0
    finally:
        agent.ensure_stopped()


def _estop_cli(cfg: Path, reason: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGE_AGENT, "estop", "--config", str(cfg), "--reason", reason],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(90)
def test_local_estop_cli_stops_a_running_agent_and_latches_a_stopped_one(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    device = f"cli-{run_id}"
    data = tmp_path / "data"
    cfg, agent = _agent(tmp_path, device, mqtt_url)
    stopped = _estop_cli(cfg, "before start")
    assert stopped.returncode == 0, stopped.stderr
    assert "will start stopped" in " ".join(stopped.stdout.split())

    agent.start()
    try:
        _link_up(data)
        assert status(data)["estop"]["reason"] == "before start"
        fresh = signed(device, CommandType.RELEASE, ReleaseParams(reason="clear"))
        asyncio.run(send_and_collect(mqtt_url, device, [fresh], until_acks=2))
        wait_for(lambda: not engaged(data), 10, "the release")

        running = _estop_cli(cfg, "technician on site")
        assert running.returncode == 0, running.stderr
        assert f"pid {agent.proc.pid}" in " ".join(running.stdout.split())  # type: ignore[union-attr]
        estop = status(data)["estop"]
        assert (estop["engaged"], estop["source"], estop["reason"]) == (
            True,
            "local",
            "technician on site",
        )
        assert agent.terminate() == 0
    finally:
        agent.ensure_stopped()


@pytest.mark.timeout(90)
def test_hardware_stop_input_engages_and_blocks_release_while_asserted(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    device = f"hw-{run_id}"
    data = tmp_path / "data"
    gpio = tmp_path / "gpio17-value"
    gpio.write_text("0\n")
    _cfg, agent = _agent(tmp_path, device, mqtt_url, safety={"hardware_input": str(gpio)})
    agent.start()
    try:
        _link_up(data)
        assert not engaged(data)
        gpio.write_text("1\n")  # the button is pressed
        wait_for(lambda: engaged(data), 10, "the hardware stop")
        assert status(data)["estop"]["source"] == "hardware"

        held = signed(device, CommandType.RELEASE, ReleaseParams(reason="try"))
        acks = asyncio.run(send_and_collect(mqtt_url, device, [held], until_status="failed"))
        assert "local stop condition" in acks[-1]["detail"]

        gpio.write_text("0\n")  # released at the robot: still latched until an operator says so
        time.sleep(0.5)
        assert engaged(data)
        fresh = signed(device, CommandType.RELEASE, ReleaseParams(reason="button reset"))
        acks = asyncio.run(send_and_collect(mqtt_url, device, [fresh], until_acks=2))
        assert acks[-1]["status"] == "done"
        wait_for(lambda: not engaged(data), 10, "the release")
        assert agent.terminate() == 0
    finally:
        agent.ensure_stopped()
