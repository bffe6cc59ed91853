"""End to end: an operator's live WebSocket on an embedded `outpost hub serve` shows the
`done` ack of a stop sent through the API to a real enrolled agent, then the agent's state
with the stop engaged; the command history agrees.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.harness import AgentProcess, wait_for
from tests.integration.hub.embedded import (
    PASSWORD,
    init_site,
    install_agent,
    run,
    run_config,
    start_embedded_hub,
)
from tests.integration.hubrig import OUTPOST

DEVICE = "amr-7"


def next_message(ws: ClientConnection, deadline: float) -> dict[str, Any]:
    """The next message before `deadline` (monotonic), decoded."""
    remaining = deadline - time.monotonic()
    assert remaining > 0, "timed out waiting on the live socket"
    message: dict[str, Any] = orjson.loads(ws.recv(timeout=remaining))
    return message


@pytest.mark.timeout(150)
def test_an_estop_ack_reaches_the_live_socket(tmp_path: Path) -> None:
    running = start_embedded_hub(tmp_path)
    agent: AgentProcess | None = None
    try:
        init_site(running)
        run(
            *(OUTPOST, "hub", "user", "add", "olga", "--role", "operator", "--site", "plant-a"),
            "--password-stdin",
            env=running.env,
            stdin=PASSWORD,
        )
        installed = install_agent(running, tmp_path)
        agent = AgentProcess(run_config(installed, tmp_path / "run.toml"), tmp_path / "agent.log")
        agent.start()

        with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as client:
            login = client.post("/auth/login", data={"username": "olga", "password": PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            wait_for(
                lambda: (
                    client.get(f"/devices/{DEVICE}", headers=headers).json()["state"]["online"]
                    is True
                ),
                30,
                "the agent online",
            )
            ws_url = f"ws://127.0.0.1:{running.api_port}/api/v1/ws"
            with connect(ws_url, open_timeout=10) as ws:
                ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
                hello = next_message(ws, time.monotonic() + 10)
                assert hello == {
                    "type": "hello",
                    "user": "olga",
                    "role": "operator",
                    "sites": ["plant-a"],
                }

                stop = client.post(
                    f"/devices/{DEVICE}/estop", headers=headers, json={"reason": "live test"}
                )
                assert stop.status_code == 202, stop.text
                cmd_id = stop.json()["cmd_id"]

                seen: dict[str, list[dict[str, Any]]] = {}
                deadline = time.monotonic() + 20
                while not any(
                    a["data"]["cmd_id"] == cmd_id and a["data"]["status"] == "done"
                    for a in seen.get("ack", [])
                ):
                    message = next_message(ws, deadline)
                    seen.setdefault(message["type"], []).append(message)
                # Then the agent's own state, live: the stop engaged.
                while not (
                    message["type"] == "state"
                    and (message["data"].get("estop") or {}).get("engaged") is True
                ):
                    message = next_message(ws, deadline)
                    seen.setdefault(message["type"], []).append(message)

            acks = [(a["data"]["cmd_id"], a["data"]["status"]) for a in seen["ack"]]
            assert acks[-1] == (cmd_id, "done")
            assert {status for _, status in acks} <= {"received", "executing", "done"}
            every = [m for kind in seen.values() for m in kind]
            assert {(m["device"], m["site"]) for m in every} == {(DEVICE, "plant-a")}

            history = client.get(f"/devices/{DEVICE}/commands", headers=headers).json()["items"]
            assert [(c["cmd_id"], c["status"]) for c in history] == [(cmd_id, "done")]
    finally:
        if agent is not None:
            agent.ensure_stopped()
        running.hub.stop()
