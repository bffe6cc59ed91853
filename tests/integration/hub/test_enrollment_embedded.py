"""End to end with the real programs: an embedded `outpost hub serve`, `outpost hub token
create`, the real `edge-agent install --token`, `edge-agent run` publishing telemetry with
the enrolled credentials, then `DELETE /api/v1/devices/{id}`: refused at the next connect.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from edge_agent.config import load_settings
from hub.auth.signing import load_or_create_signing_key
from protocol.signing import public_key_to_text
from tests.integration.harness import AgentProcess, wait_for
from tests.integration.hub.embedded import (
    PASSWORD,
    init_site,
    install_agent,
    run_config,
    start_embedded_hub,
)


def counter_points(database: Path, device: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM telemetry WHERE device = ? AND metric = 'synthetic.counter'",
            (device,),
        ).fetchone()
    return int(row[0])


@pytest.mark.timeout(150)
def test_token_install_run_then_removal_refuses_the_agent(tmp_path: Path) -> None:
    running = start_embedded_hub(tmp_path)
    hub, data_dir, api_port, mqtt_port = (
        running.hub,
        running.data_dir,
        running.api_port,
        running.mqtt_port,
    )
    agent: AgentProcess | None = None
    try:
        init_site(running)
        installed = install_agent(running, tmp_path)
        settings = load_settings(installed)
        assert settings.device.id == "amr-7"
        assert (settings.mqtt.url, settings.mqtt.username) == (
            f"mqtt://127.0.0.1:{mqtt_port}",
            "amr-7",
        )
        assert settings.mqtt.protocol == "3.1.1"
        hub_key = public_key_to_text(load_or_create_signing_key(data_dir).public_key())
        assert settings.hub.public_key == hub_key

        agent = AgentProcess(run_config(installed, tmp_path / "run.toml"), tmp_path / "agent.log")
        agent.start()
        wait_for(lambda: counter_points(data_dir / "hub.db", "amr-7") >= 20, 40, "telemetry stored")

        with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as client:
            login = client.post("/auth/login", data={"username": "root", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

            def shown() -> dict[str, object]:
                return dict(client.get("/devices/amr-7", headers=headers).json())

            assert shown()["site_id"] == "plant-a"
            wait_for(lambda: shown()["state"]["online"] is True, 20, "the agent's state")  # type: ignore[index]
            assert client.delete("/devices/amr-7", headers=headers).status_code == 204

        hub.stop()  # the agent loses its connection and must log in again
        hub.start()
        hub.wait_healthy(api_port)
        assert agent.proc is not None
        agent.proc.wait(60)
        assert agent.proc.returncode != 0
        assert "authentication refused" in agent.log.read_text(errors="replace")
        assert "embedded broker refused the login of 'amr-7'" in hub.tail(20_000)
    finally:
        if agent is not None:
            agent.ensure_stopped()
        hub.stop()
