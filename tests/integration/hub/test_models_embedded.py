"""End to end with the real programs: an ML engineer pushes a model with `outpost model push`
to an embedded `outpost hub serve`, two real enrolled agents download it with their own
credentials; the canary activates, promotion brings every device onto it. A second
version whose stored artifact is tampered with after the upload is refused by the
canary agent (sha256 mismatch) and the rollout rolls back by itself, every device
staying on the first version.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from tests.edge_agent.model_rig import constant_model
from tests.integration.harness import EDGE_AGENT, AgentProcess, free_port, wait_for
from tests.integration.hub.embedded import PASSWORD, EmbeddedHub, init_site, run
from tests.integration.hubrig import OUTPOST, HubProcess

DEVICES = ("amr-1", "amr-2")


def _start_hub(tmp_path: Path) -> EmbeddedHub:
    """An embedded hub that checks rollouts often and wants a 1 s healthy canary."""
    data_dir, api_port, mqtt_port = tmp_path / "hub-data", free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "OUTPOST_HUB_REGISTRY__CANARY_HEALTH_S": "1",
        "OUTPOST_HUB_REGISTRY__CHECK_INTERVAL_S": "0.3",
    }
    hub = HubProcess(tmp_path / "hub.log", env=env)
    hub.start()
    try:
        hub.wait_healthy(api_port)
    except BaseException:
        hub.stop()
        raise
    return EmbeddedHub(hub, env, data_dir, api_port, mqtt_port)


def _agent(running: EmbeddedHub, tmp_path: Path, name: str) -> tuple[AgentProcess, Path]:
    """Enroll an agent by token (`edge-agent install`); its process (not started) and data."""
    created = run(
        OUTPOST,
        "hub",
        "token",
        "create",
        "--site",
        "plant-a",
        "--hub",
        running.url,
        env=running.env,
    ).stdout
    line = re.search(r"^\s*(edge-agent install .+)$", created, re.MULTILINE)
    assert line, created
    token = line[1].split("--token ")[1]
    folder = tmp_path / name.replace(" ", "-").lower()
    folder.mkdir()
    installed, data = folder / "agent.toml", folder / "data"
    run(
        *(EDGE_AGENT, "install", "--hub", running.url, "--token", token, "--name", name),
        *("--config", str(installed), "--data-dir", str(data), "--no-service"),
        env=running.env,
    )
    document = tomllib.loads(installed.read_text(encoding="utf-8"))
    document["mqtt"]["connect_timeout_s"] = 3
    document["uplink"] = {"backoff_initial_s": 0.1, "backoff_max_s": 1, "state_interval_s": 0.5}
    document["metrics"] = {"port": 0}
    document["telemetry"] = {"sources": [{"type": "synthetic", "rate_hz": 1}]}
    document["model"] = {"latency_budget_ms": 10_000, "latency_runs": 1, "warm_up_runs": 1}
    config = folder / "run.toml"
    config.write_text(tomli_w.dumps(document), encoding="utf-8")
    return AgentProcess(config, folder / "agent.log"), data


class Api:
    """Calls to the hub's API with root's API key."""

    def __init__(self, client: httpx.Client) -> None:
        login = client.post("/auth/login", data={"username": "root", "password": PASSWORD})
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post("/auth/api-keys", headers=bearer, json={"name": "ml"})
        assert created.status_code == 201, created.text
        self.key: str = created.json()["key"]
        self.client = client

    def get(self, path: str) -> Any:
        answer = self.client.get(path, headers={"X-API-Key": self.key})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def model_of(self, device: str) -> str | None:
        """The sha256 of the model the device reports active."""
        model = self.get(f"/devices/{device}")["state"].get("model") or {}
        return model.get("sha256")

    def rollout_state(self, rollout: int) -> str:
        state: str = self.get(f"/rollouts/{rollout}")["state"]
        return state


def _cli(running: EmbeddedHub, key: str, *args: str) -> str:
    env = {**running.env, "OUTPOST_API_KEY": key, "OUTPOST_HUB_URL": running.url}
    done = subprocess.run(
        (OUTPOST, "model", *args), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _rollout_id(output: str) -> int:
    found = re.search(r"rollout (\d+):", output)
    assert found, output
    return int(found[1])


@pytest.mark.timeout(240)
def test_push_canary_promote_then_a_tampered_version_rolls_back_by_itself(
    tmp_path: Path,
) -> None:
    running = _start_hub(tmp_path)
    agents: list[AgentProcess] = []
    try:
        init_site(running)
        for i, _ in enumerate(DEVICES, start=1):
            agent, _data = _agent(running, tmp_path, f"AMR {i}")
            agents.append(agent)
            agent.start()
        v1 = constant_model(tmp_path / "v1.onnx", tag="v1")
        v2 = constant_model(tmp_path / "v2.onnx", tag="v2")
        sha1 = hashlib.sha256(v1.read_bytes()).hexdigest()
        card = tmp_path / "card.json"
        card.write_text('{"baseline": {"class_hist": [0.5, 0.5]}}', encoding="utf-8")

        with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as client:
            api = Api(client)
            for device in DEVICES:
                wait_for(
                    lambda d=device: api.get(f"/devices/{d}")["state"]["online"] is True,
                    30,
                    f"{device} online",
                )

            pushed = _cli(
                running,
                api.key,
                *("push", str(v1), "--name", "det", "--version", "1", "--card", str(card)),
                *("--target", "devices:" + ",".join(DEVICES), "--canary", "50%"),
            )
            first = _rollout_id(pushed)
            wait_for(lambda: api.model_of("amr-1") == sha1, 60, "the canary amr-1 on v1")
            wait_for(lambda: api.rollout_state(first) == "canary_healthy", 30, "a healthy canary")
            assert api.model_of("amr-2") is None  # not a canary: nothing assigned yet
            _cli(running, api.key, "rollout", "promote", str(first))
            wait_for(lambda: api.rollout_state(first) == "completed", 60, "every device on v1")
            assert {d: api.model_of(d) for d in DEVICES} == dict.fromkeys(DEVICES, sha1)

            _cli(running, api.key, "push", str(v2), "--name", "det", "--version", "2")
            sha2 = hashlib.sha256(v2.read_bytes()).hexdigest()
            stored = running.data_dir / "models" / f"{sha2}.onnx"
            tampered = bytearray(stored.read_bytes())
            tampered[-3] ^= 0xFF  # same size, other bytes: only the sha256 can tell
            stored.write_bytes(bytes(tampered))
            started = client.post(
                "/rollouts",
                headers={"X-API-Key": api.key},
                json={
                    "name": "det",
                    "version": "2",
                    "target": {"devices": list(DEVICES)},
                    "canary_percent": 50,
                },
            )
            assert started.status_code == 201, started.text
            second = started.json()["id"]
            wait_for(lambda: api.rollout_state(second) == "rolled_back", 60, "the rollback")
            shown = api.get(f"/rollouts/{second}")
            assert shown["reason"].startswith("model_rejected by amr-1: sha256_mismatch"), shown
            statuses = {d["device_id"]: d["status"] for d in shown["devices"]}
            assert statuses == {"amr-1": "rolled_back", "amr-2": "pending"}
            status = _cli(running, api.key, "rollout", "status", str(second))
            assert "rolled_back" in status
            assert {d: api.model_of(d) for d in DEVICES} == dict.fromkeys(DEVICES, sha1)
    finally:
        for agent in agents:
            agent.ensure_stopped()
        running.hub.stop()
