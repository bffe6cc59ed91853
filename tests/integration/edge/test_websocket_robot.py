"""The WebSocket robot adapter: the agent connects to a robot controller served by the test.

The controller records every frame and sends `odom` at 20 Hz as the heartbeat,
until the test silences it to see the heartbeat watchdog stop the robot.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.models import EstopParams
from tests.integration.edge.robotrig import (
    ODOM,
    CommandType,
    Recorder,
    drive,
    send,
    start_robot_agent,
    status,
)
from tests.integration.harness import PrivateBroker, free_port, wait_for

HEARTBEAT_TIMEOUT_S = 0.5


class Controller(Recorder):
    """A robot controller's WebSocket server, in a thread of the test."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.silent = threading.Event()
        self._done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        async with serve(self._session, "127.0.0.1", self.port):
            await asyncio.to_thread(self._done.wait)

    async def _session(self, socket: ServerConnection) -> None:
        async def heartbeat() -> None:
            while True:
                if not self.silent.is_set():
                    await socket.send(orjson.dumps({"type": "odom", "body": ODOM}).decode())
                await asyncio.sleep(0.05)

        beat = asyncio.create_task(heartbeat())
        try:
            async for frame in socket:
                data = orjson.loads(frame)
                self.heard(data["type"], data["body"])
        except ConnectionClosed:
            pass  # the agent went away (the test is ending)
        finally:
            beat.cancel()

    def close(self) -> None:
        self._done.set()
        self.thread.join(5)


@pytest.fixture
def ws_rig(tmp_path: Path, run_id: str) -> Iterator[tuple[PrivateBroker, Controller, str]]:
    device = f"ws-{run_id}"
    hub_broker = PrivateBroker(tmp_path / "hub")
    hub_broker.start()
    controller = Controller()
    controller.thread.start()
    try:
        agent = start_robot_agent(
            tmp_path,
            device,
            hub_broker,
            controller,
            robot={"adapter": "websocket", "url": f"ws://127.0.0.1:{controller.port}/robot"},
            safety={"heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S, "control_period_s": 0.05},
        )
        yield hub_broker, controller, device
        agent.ensure_stopped()
    finally:
        controller.close()
        hub_broker.kill()


@pytest.mark.timeout(120)
def test_silent_robot_while_moving_is_stopped_by_the_heartbeat_watchdog(
    ws_rig: tuple[PrivateBroker, Controller, str], tmp_path: Path
) -> None:
    hub_broker, controller, device = ws_rig
    drive(hub_broker.url, device, controller, 0.25, 10)
    silenced = time.monotonic()
    controller.silent.set()
    wait_for(lambda: controller.first_zero_after(silenced) is not None, 5, "the watchdog stop")
    delay = controller.first_zero_after(silenced) - silenced  # type: ignore[operator]
    assert delay < HEARTBEAT_TIMEOUT_S + 0.05 + 0.5
    data = tmp_path / "data"
    wait_for(lambda: status(data)["estop"]["engaged"], 5, "the stop in the agent's status")
    estop = status(data)["estop"]
    assert estop["source"] == "watchdog"
    assert "heartbeat" in estop["reason"]
    print(f"\nrobot heartbeat lost while moving -> zero velocity after {delay * 1000:.0f} ms")


@pytest.mark.timeout(120)
def test_estop_reaches_the_controller(ws_rig: tuple[PrivateBroker, Controller, str]) -> None:
    hub_broker, controller, device = ws_rig
    drive(hub_broker.url, device, controller, 0.3, 10)
    sent = time.monotonic()
    send(hub_broker.url, device, CommandType.ESTOP, EstopParams(reason="test"))
    wait_for(lambda: controller.first_zero_after(sent) is not None, 5, "the zero velocity")
