"""End to end with the real programs: an operator stops a real enrolled agent through the
API of an embedded `outpost hub serve`, the agent's acks bring the command to `done`, a
viewer is refused (and audited), then a release with a reason lets the robot go again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.edge.robotrig import engaged
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


class Api:
    """Logged-in calls to the hub's API."""

    def __init__(self, client: httpx.Client, user: str) -> None:
        login = client.post("/auth/login", data={"username": user, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.client = client
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def get(self, path: str) -> Any:
        answer = self.client.get(path, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(path, headers=self.headers, json=body)


def _until_final(api: Api, cmd_id: str, timeout: float = 10) -> tuple[dict[str, Any], float]:
    """Poll the command until the device reports a final status; it and the seconds taken."""
    start = time.monotonic()
    shown: dict[str, Any] = {}

    def final() -> bool:
        nonlocal shown
        shown = api.get(f"/commands/{cmd_id}")
        return shown["status"] in ("done", "failed", "rejected", "expired")

    wait_for(final, timeout, f"the command {cmd_id} to finish", interval=0.02)
    return shown, time.monotonic() - start


@pytest.mark.timeout(150)
def test_stop_and_release_a_real_agent_through_the_api(tmp_path: Path) -> None:
    running = start_embedded_hub(tmp_path)
    agent: AgentProcess | None = None
    try:
        init_site(running)
        for user, role in (("olga", "operator"), ("vic", "viewer")):
            run(
                *(OUTPOST, "hub", "user", "add", user, "--role", role, "--site", "plant-a"),
                "--password-stdin",
                env=running.env,
                stdin=PASSWORD,
            )
        installed = install_agent(running, tmp_path)
        agent = AgentProcess(run_config(installed, tmp_path / "run.toml"), tmp_path / "agent.log")
        agent.start()
        agent_data = tmp_path / "agent-data"

        with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as client:
            olga, vic, root = Api(client, "olga"), Api(client, "vic"), Api(client, "root")
            wait_for(
                lambda: olga.get(f"/devices/{DEVICE}")["state"]["online"] is True,
                30,
                "the agent online",
            )

            refused = vic.post(f"/devices/{DEVICE}/estop", {"reason": "viewer tries"})
            assert refused.status_code == 403, refused.text

            started = time.monotonic()
            stop = olga.post(f"/devices/{DEVICE}/estop", {"reason": "person in aisle 3"})
            assert stop.status_code == 202, stop.text
            cmd_id = stop.json()["cmd_id"]
            shown, _ = _until_final(olga, cmd_id)
            latency = time.monotonic() - started
            assert shown["status"] == "done", shown
            steps = [(s["status"], s["source"]) for s in shown["lifecycle"]]
            assert steps == [("sent", "hub"), ("received", "device"), ("done", "device")]
            print(f"API estop -> agent 'done' in the command: {latency * 1000:.0f} ms")

            wait_for(lambda: engaged(agent_data), 10, "the stop in `edge-agent status`")
            wait_for(
                lambda: (
                    (olga.get(f"/devices/{DEVICE}")["state"]["estop"] or {}).get("engaged") is True
                ),
                10,
                "the stop in the device state the agent reports",
            )
            history = olga.get(f"/devices/{DEVICE}/commands")["items"]
            assert [(c["cmd_id"], c["status"]) for c in history] == [(cmd_id, "done")]

            assert olga.post(f"/devices/{DEVICE}/release", {}).status_code == 422
            go = olga.post(f"/devices/{DEVICE}/release", {"reason": "aisle 3 cleared"})
            assert go.status_code == 202, go.text
            released, _ = _until_final(olga, go.json()["cmd_id"])
            assert released["status"] == "done", released
            wait_for(lambda: not engaged(agent_data), 10, "the release in the agent's status")

            audit = root.get("/audit?limit=200")
            rows = audit["items"] if isinstance(audit, dict) else audit
            commands = [
                (r["actor"], r["action"], r["decision"], r["result"])
                for r in rows
                if r["action"].startswith("command.")
            ]
            assert sorted(commands) == sorted(
                [
                    ("vic", "command.estop", "denied", "role_required"),
                    ("olga", "command.estop", "allowed", "sent"),
                    ("olga", "command.release", "allowed", "sent"),
                ]
            )
    finally:
        if agent is not None:
            agent.ensure_stopped()
        running.hub.stop()
