"""The dashboard in Debian's Chromium against a real embedded hub and a real agent.

Logs in as an admin, finds the enrolled device, presses its STOP with the keyboard and
sees the stop the agent acknowledged, visits every page (screenshots in the artefact
dir: `$OUTPOST_TEST_ARTIFACTS/dashboard` or tests/dashboard/artifacts), then checks a
viewer gets no control buttons. Fails, never skips, when Chromium or the build is missing.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import tomli_w
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import AgentProcess, free_port, wait_for
from tests.integration.hub.embedded import (
    PASSWORD,
    init_site,
    install_agent,
    run,
    run_config,
    start_embedded_hub,
)
from tests.integration.hubrig import OUTPOST

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboard"
CHROMIUM = os.environ.get("OUTPOST_CHROMIUM", "/usr/bin/chromium")
DEVICE, DEVICE_NAME = "amr-7", "AMR 7"

pytestmark = pytest.mark.integration


def artifacts_dir() -> Path:
    """Where the screenshots go (kept after the run)."""
    base = os.environ.get("OUTPOST_TEST_ARTIFACTS")
    path = Path(base) / "dashboard" if base else Path(__file__).parent / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Robot:
    """A robot controller on a WebSocket (the agent's `websocket` adapter connects to it):
    it drives a circle, reporting `odom` and `battery` at 5 Hz, so the map has a robot."""

    def __init__(self) -> None:
        self.port = free_port()
        self._done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        async with serve(self._session, "127.0.0.1", self.port):
            await asyncio.to_thread(self._done.wait)

    async def _session(self, socket: ServerConnection) -> None:
        async def report() -> None:
            t = 0.0
            while True:
                odom = {
                    "x": 5 + 3 * math.cos(t / 10),
                    "y": 5 + 3 * math.sin(t / 10),
                    "theta": t / 10 + math.pi / 2,
                    "linear": 0.3,
                    "angular": 0.1,
                }
                await socket.send(orjson.dumps({"type": "odom", "body": odom}).decode())
                battery = {"percent": 87.5, "voltage": 24.1}
                await socket.send(orjson.dumps({"type": "battery", "body": battery}).decode())
                t += 1
                await asyncio.sleep(0.2)

        task = asyncio.create_task(report())
        try:
            async for _ in socket:
                pass  # velocities and stops from the agent: not needed here
        except ConnectionClosed:
            pass
        finally:
            task.cancel()

    def close(self) -> None:
        self._done.set()
        self.thread.join(5)


@pytest.fixture
def robot() -> Iterator[Robot]:
    """A running robot controller."""
    controller = Robot()
    controller.thread.start()
    try:
        yield controller
    finally:
        controller.close()


def with_robot(config: Path, robot: Robot) -> Path:
    """The agent's run config, driving `robot` through the WebSocket adapter."""
    document = tomllib.loads(config.read_text(encoding="utf-8"))
    document["robot"] = {"adapter": "websocket", "url": f"ws://127.0.0.1:{robot.port}/robot"}
    config.write_text(tomli_w.dumps(document), encoding="utf-8")
    return config


def _estop_engaged(url: str, token: str) -> bool:
    state = httpx.get(
        f"{url}/api/v1/devices/{DEVICE}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()["state"]
    return bool((state.get("estop") or {}).get("engaged"))


@pytest.mark.timeout(240)
def test_operator_stops_a_real_agent_from_the_browser(tmp_path: Path, robot: Robot) -> None:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: dashboard/scripts/ensure-chromium.sh"
    assert shutil.which("node"), "Node.js is missing"
    assert (DASHBOARD / "out" / "fleet" / "index.html").is_file(), "not built: make dashboard"
    assert (DASHBOARD / "node_modules" / "playwright-core").is_dir(), "make dashboard (npm ci)"

    running = start_embedded_hub(tmp_path)
    agent: AgentProcess | None = None
    try:
        init_site(running)
        run(
            *(OUTPOST, "hub", "user", "add", "vic", "--role", "viewer", "--site", "plant-a"),
            "--password-stdin",
            env=running.env,
            stdin=PASSWORD,
        )
        installed = install_agent(running, tmp_path)
        config = with_robot(run_config(installed, tmp_path / "run.toml"), robot)
        agent = AgentProcess(config, tmp_path / "agent.log")
        agent.start()
        login = httpx.post(
            f"{running.url}/api/v1/auth/login",
            json={"username": "root", "password": PASSWORD},
            timeout=10,
        )
        token = login.json()["access_token"]
        assert not _estop_engaged(running.url, token)

        env = {
            **os.environ,
            "HUB_URL": running.url,
            "DEVICE_ID": DEVICE,
            "DEVICE_NAME": DEVICE_NAME,
            "ADMIN_USER": "root",
            "VIEWER_USER": "vic",
            "PASSWORD": PASSWORD,
            "ARTIFACTS": str(artifacts_dir()),
            "CHROMIUM": CHROMIUM,
        }
        done = subprocess.run(
            ["node", "e2e/smoke.mjs"],
            cwd=DASHBOARD,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nhub log:\n{running.hub.tail()}"
        # The stop the browser sent reached the agent, which reports itself stopped.
        wait_for(lambda: _estop_engaged(running.url, token), 10, "the agent's stop in its state")
        for page in (
            "fleet-admin",
            "fleet-stale",
            "fleet-stopped",
            "device",
            "alerts",
            "models",
            "audit",
        ):
            assert (artifacts_dir() / f"{page}.png").stat().st_size > 0
    finally:
        if agent is not None:
            agent.ensure_stopped()
        running.hub.stop()
