"""Issue 9's acceptance in the simulator, with the shipped detector in real agents.

A robot patrols its lane. Its link to the hub is cut, then a person walks into the lane
ahead of it: the robot's own agent sees the person in its `danger` zone and stops the
robot with no hub in the loop. When the link is back, the hub holds the stop (source
`rule`) and a critical "Person in danger zone" alert. The person walks away; a release
through the API lets the robot resume its patrol.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.perception.default_model import shipped_model
from sim.control import robots, send_fault, walk_actor
from sim.scenario import Fault
from tests.integration.harness import free_port, wait_for
from tests.integration.hub.embedded import init_site, start_embedded_hub
from tests.integration.hubrig import OUTPOST
from tests.integration.sim.test_sim_run import Hub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:module 'sre_(parse|constants)' is deprecated"),
]

LANE_Y = 4.0
CUT_S = 25.0


def _scenario(path: Path) -> Path:
    """An open floor: robot-1 patrols a long lane; a person waits at the far wall."""
    document = {
        "name": "walk-in",
        "site": {"width_m": 44.0, "height_m": 14.0},
        "robots": [
            {
                "id": "robot-1",
                "x": 2.0,
                "y": LANE_Y,
                "face": "mqtt",
                "patrol": [[3.0, LANE_Y], [40.0, LANE_Y]],
            }
        ],
        "actors": [
            {
                "id": "walker",
                "kind": "person",
                "path": [[22.0, 13.0], [22.5, 13.0]],
                "speed_mps": 1.2,
                "pause_s": 3600.0,
            }
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _robot(control: str) -> dict[str, Any]:
    shown: dict[str, Any] = robots(control)["robots"]["robot-1"]
    return shown


def _patrolling_east(control: str) -> bool:
    robot = _robot(control)
    heading = robot["pose"]["heading"]
    return (
        robot["velocity"]["linear"] > 0.3
        and abs(math.atan2(math.sin(heading), math.cos(heading))) < 0.1
        and 4.0 < robot["pose"]["x"] < 22.0
    )


def _alerts(hub: Hub) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = hub.get("/alerts?device=robot-1")["items"]
    return items


@pytest.mark.timeout(360)
def test_a_person_walking_into_the_danger_zone_stops_the_robot_locally(tmp_path: Path) -> None:
    model = shipped_model()
    assert model is not None, "models/outpost-sim-detector/model.onnx is missing from the tree"
    running = start_embedded_hub(tmp_path)
    sim: subprocess.Popen[bytes] | None = None
    hub: Hub | None = None
    log = tmp_path / "sim.log"
    try:
        init_site(running)
        hub = Hub(running)
        control_port = free_port()
        control = f"http://127.0.0.1:{control_port}"
        env = {**running.env, "OUTPOST_API_KEY": hub.api_key()}
        argv = [
            *(OUTPOST, "sim", "run", "--hub", running.url, "--robots", "1"),
            *("--scenario", str(_scenario(tmp_path / "walk-in.yaml"))),
            *("--workdir", str(tmp_path / "fleet"), "--site", "plant-a"),
            *("--control-port", str(control_port), "--camera-fps", "4"),
            *("--model", str(model)),
        ]
        with log.open("wb") as out:
            sim = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
        wait_for(
            lambda: (
                hub.client.get("/devices/robot-1").status_code == 200
                and hub.get("/devices/robot-1")["state"]["online"] is True
                and (hub.get("/devices/robot-1")["state"].get("model") or {}).get("name")
                == "outpost-sim-detector"
            ),
            120,
            f"robot-1 online with the shipped detector ({log.read_text(errors='replace')[-1500:]})",
            interval=0.5,
        )
        # The patrol comes back to the lane's west end before the walk-in, so that the
        # robot has room ahead of it whichever way it was going when the agent came up.
        wait_for(lambda: _patrolling_east(control), 120, "robot-1 patrolling east", interval=0.2)
        assert not _robot(control)["stopped"]

        # No hub from here on: whatever stops the robot now is its own agent.
        send_fault(control, Fault(kind="link_cut", robot="robot-1", seconds=CUT_S))
        cut_at = time.monotonic()
        time.sleep(1.0)
        ahead = _robot(control)["pose"]["x"] + 7.0
        walk_actor(control, "walker", (ahead, LANE_Y), start=(ahead, LANE_Y + 3.0))
        walked_at = time.monotonic()
        wait_for(lambda: _robot(control)["stopped"], 15, "robot-1's agent to stop it", 0.1)
        stopped_at = time.monotonic()
        robot = _robot(control)
        gap = ahead - robot["pose"]["x"]
        assert robot["link_cut"] is True, "the stop must happen while the hub is unreachable"
        assert gap > 1.0, f"robot-1 stopped only {gap:.2f} m from the person"
        wait_for(lambda: _robot(control)["velocity"]["linear"] == 0.0, 3, "robot-1 halted")
        print(
            f"walk-in: stopped {stopped_at - walked_at:.1f} s after the person set off, "
            f"{gap:.1f} m short of them, with the hub link cut"
        )

        # The link comes back: the hub learns of the stop and raises the critical alert.
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        wait_for(
            lambda: (
                (hub.get("/devices/robot-1")["state"].get("estop") or {}).get("source") == "rule"
            ),
            60,
            "the hub to show robot-1 stopped by its rule",
            interval=0.5,
        )
        wait_for(
            lambda: any(
                a["rule"] == "Person in danger zone"
                and a["severity"] == "critical"
                and a["state"] in ("active", "acknowledged")
                for a in _alerts(hub)
            ),
            60,
            "a critical 'Person in danger zone' alert for robot-1",
            interval=0.5,
        )

        # Once the person has gone, a release through the API resumes the patrol.
        walk_actor(control, "walker", (ahead, LANE_Y + 8.0))
        released: dict[str, Any] = {}

        def release_done() -> bool:
            nonlocal released
            released = hub.final(hub.command("robot-1", "release", {"reason": "lane clear"}))
            return released["status"] == "done"

        wait_for(release_done, 30, "a release to be accepted once the lane is clear", 1.0)
        wait_for(
            lambda: _robot(control)["velocity"]["linear"] > 0.2, 10, "robot-1 moving again", 0.1
        )
        assert not _robot(control)["stopped"]
    finally:
        if sim is not None and sim.poll() is None:
            sim.terminate()
            try:
                sim.wait(40)
            except subprocess.TimeoutExpired:
                sim.kill()
        if hub is not None:
            hub.client.close()
        running.hub.stop()
        print(log.read_text(errors="replace")[-3000:] if log.exists() else "")
