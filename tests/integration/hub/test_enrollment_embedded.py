"""End to end with the real programs: an embedded `outpost hub serve`, `outpost hub token
create`, the real `edge-agent install --token`, `edge-agent run` publishing telemetry with
the enrolled credentials, then `DELETE /api/v1/devices/{id}`: refused at the next connect.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from edge_agent.config import load_settings
from hub.auth.signing import load_or_create_signing_key
from protocol.signing import public_key_to_text
from tests.integration.harness import EDGE_AGENT, AgentProcess, free_port, wait_for
from tests.integration.hubrig import OUTPOST, HubProcess

PASSWORD = "correct horse battery"


def run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args[:3]}: {done.stdout}\n{done.stderr}"
    return done


def counter_points(database: Path, device: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM telemetry WHERE device = ? AND metric = 'synthetic.counter'",
            (device,),
        ).fetchone()
    return int(row[0])


def run_config(installed: Path, target: Path) -> Path:
    """The installed config (credentials, pinned key untouched) plus a telemetry source."""
    document = tomllib.loads(installed.read_text(encoding="utf-8"))
    document["mqtt"]["connect_timeout_s"] = 3
    document["uplink"] = {"backoff_initial_s": 0.1, "backoff_max_s": 1, "state_interval_s": 1}
    document["metrics"] = {"port": 0}
    document["telemetry"] = {
        "batch_points": 5,
        "batch_delay_s": 0.1,
        "sources": [{"type": "synthetic", "rate_hz": 20}],
    }
    target.write_text(tomli_w.dumps(document), encoding="utf-8")
    return target


@pytest.mark.timeout(150)
def test_token_install_run_then_removal_refuses_the_agent(tmp_path: Path) -> None:
    data_dir, api_port, mqtt_port = tmp_path / "hub-data", free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
    }
    hub_url = f"http://127.0.0.1:{api_port}"
    hub = HubProcess(tmp_path / "hub.log", env=env)
    hub.start()
    agent: AgentProcess | None = None
    try:
        hub.wait_healthy(api_port)
        run(
            OUTPOST,
            "hub",
            "init",
            "--username",
            "root",
            "--password-stdin",
            env=env,
            stdin=PASSWORD,
        )
        run(OUTPOST, "hub", "site", "add", "plant-a", env=env)
        created = run(
            OUTPOST, "hub", "token", "create", "--site", "plant-a", "--hub", hub_url, env=env
        ).stdout
        line = re.search(r"^\s*(edge-agent install .+)$", created, re.MULTILINE)
        assert line, created
        token = line[1].split("--token ")[1]

        installed, agent_data = tmp_path / "agent.toml", tmp_path / "agent-data"
        install = [EDGE_AGENT, "install", "--hub", hub_url, "--token", token, "--name", "AMR 7"]
        run(
            *install,
            "--config",
            str(installed),
            "--data-dir",
            str(agent_data),
            "--no-service",
            env=env,
        )
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

        with httpx.Client(base_url=f"{hub_url}/api/v1", timeout=10) as client:
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
