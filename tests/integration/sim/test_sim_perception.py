"""Issue 9's acceptance in the simulator, with the shipped detector in real agents.

Walk-in: robot-1 drives down its lane on a path plan sent through the hub's API. Its
link to the hub is cut, then a person walks into the lane ahead of it: the robot's own
agent sees the person in its `danger` zone and stops the robot with no hub in the loop.
When the link is back, the hub holds the stop (source `rule`) and a critical "Person in
danger zone" alert. The person walks away; a release through the API is accepted, and
the robot drives on when its mission is sent again (as the demo's dispatcher does).

Drift: robot-2 and robot-3 stand watching a person stroll by. The hub learns what each
camera normally shows; then robot-3's camera is blacked out (a simulator fault) and it
raises "Drift over threshold", while robot-2, healthy, does not.
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
DRIFT_WINDOW_S = 8
REFERENCE_WINDOWS = 3


def _scenario(path: Path) -> Path:
    """An open floor: robot-1 patrols a long lane; a person waits at the far wall."""
    document = {
        "name": "walk-in",
        "site": {"width_m": 44.0, "height_m": 14.0},
        "robots": [
            {"id": "robot-1", "x": 2.0, "y": LANE_Y, "face": "mqtt"},
            {"id": "robot-2", "x": 2.0, "y": 9.5, "heading": 0.1, "face": "mqtt"},
            {"id": "robot-3", "x": 2.0, "y": 11.5, "heading": -0.1, "face": "mqtt"},
        ],
        "actors": [
            {
                "id": "walker",
                "kind": "person",
                "path": [[30.0, 13.5], [30.5, 13.5]],
                "speed_mps": 1.2,
                "pause_s": 3600.0,
            },
            {
                "id": "stroller",
                "kind": "person",
                "path": [[9.0, 10.5], [22.0, 10.5]],
                "speed_mps": 1.0,
            },
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _robot(control: str) -> dict[str, Any]:
    shown: dict[str, Any] = robots(control)["robots"]["robot-1"]
    return shown


def _driving_east(control: str) -> bool:
    robot = _robot(control)
    heading = robot["pose"]["heading"]
    return (
        robot["velocity"]["linear"] > 0.3
        and abs(math.atan2(math.sin(heading), math.cos(heading))) < 0.1
        and robot["pose"]["x"] > 4.0
    )


def _send_down_the_lane(hub: Hub) -> None:
    body = {"waypoints": [{"x": 40.0, "y": LANE_Y}], "speed": 0.6, "timeout_s": 300}
    hub.command("robot-1", "path", body)


def _alerts(hub: Hub) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = hub.get("/alerts?device=robot-1")["items"]
    return items


@pytest.mark.timeout(360)
def test_a_person_walking_into_the_danger_zone_stops_the_robot_locally(tmp_path: Path) -> None:
    model = shipped_model()
    assert model is not None, "models/outpost-sim-detector/model.onnx is missing from the tree"
    running = start_embedded_hub(tmp_path, DRIFT__REFERENCE_WINDOWS=str(REFERENCE_WINDOWS))
    sim: subprocess.Popen[bytes] | None = None
    hub: Hub | None = None
    log = tmp_path / "sim.log"
    try:
        init_site(running)
        hub = Hub(running)
        control_port = free_port()
        control = f"http://127.0.0.1:{control_port}"
        env = {**running.env, "OUTPOST_API_KEY": hub.api_key(), "OUTPOST_HUB_URL": running.url}
        # The registry knows the model (with its card's baseline) before any agent runs it.
        push = [OUTPOST, "model", "push", str(model), "--card", str(model.parent / "card.json")]
        pushed = subprocess.run(push, env=env, capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        agent_config = tmp_path / "agents.toml"
        # A link down for long while the robot moves stops it too ([safety] link_timeout_s):
        # pushed past the cut here, so that only the robot's own rule can stop it in it.
        agent_config.write_text(
            f"[perception.drift]\nwindow_s = {DRIFT_WINDOW_S}\n"
            f"[safety]\nlink_timeout_s = {CUT_S + 30:.0f}\n"
        )
        argv = [
            *(OUTPOST, "sim", "run", "--hub", running.url, "--robots", "3"),
            *("--scenario", str(_scenario(tmp_path / "walk-in.yaml"))),
            *("--workdir", str(tmp_path / "fleet"), "--site", "plant-a"),
            *("--control-port", str(control_port), "--camera-fps", "4"),
            *("--model", str(model), "--agent-config", str(agent_config)),
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
        _send_down_the_lane(hub)
        wait_for(lambda: _driving_east(control), 30, "robot-1 driving down its lane", 0.2)

        # No hub from here on: whatever stops the robot now is its own agent.
        send_fault(control, Fault(kind="link_cut", robot="robot-1", seconds=CUT_S))
        cut_at = time.monotonic()
        time.sleep(1.0)
        ahead = _robot(control)["pose"]["x"] + 7.0
        walked_at = time.time()
        walk_actor(control, "walker", (ahead, LANE_Y), start=(ahead, LANE_Y + 3.0))

        def stopped_by_its_agent() -> bool:
            robot = _robot(control)
            return robot["heard"].get("stop", 0.0) > walked_at and robot["velocity"]["linear"] == 0

        wait_for(stopped_by_its_agent, 20, "robot-1's agent to stop it", 0.1)
        stopped_at = time.time()
        robot = _robot(control)
        gap = ahead - robot["pose"]["x"]
        assert robot["link_cut"] is True, "the stop must happen while the hub is unreachable"
        assert stopped_at - walked_at < CUT_S - 5
        assert gap > 1.0, f"robot-1 stopped only {gap:.2f} m from the person"
        time.sleep(2.0)
        assert _robot(control)["velocity"]["linear"] == 0.0, "robot-1 moved on by itself"
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
        _send_down_the_lane(hub)
        wait_for(lambda: _driving_east(control), 15, "robot-1 driving on after the release", 0.1)

        # Drift: once the hub knows what robot-2's and robot-3's cameras normally show,
        # robot-3's goes black.
        def learned(device: str) -> bool:
            return hub.get(f"/devices/{device}/drift")["reference"]["learning"] is False

        wait_for(lambda: learned("robot-2") and learned("robot-3"), 90, "references learned", 1.0)
        send_fault(control, Fault(kind="camera_blackout", robot="robot-3", seconds=120))
        blacked_at = time.monotonic()

        def drifted() -> set[str]:
            items = hub.get("/alerts?limit=200")["items"]
            return {a["device"] for a in items if a["rule"] == "Drift over threshold"}

        wait_for(lambda: "robot-3" in drifted(), 4 * DRIFT_WINDOW_S + 30, "robot-3's drift alert")
        print(f"drift: robot-3 alerted {time.monotonic() - blacked_at:.0f} s after the blackout")
        # Two more windows of robot-2's scored, and still no alert for it.
        scored = len(hub.get("/devices/robot-2/drift")["history"].get("brightness_hist", []))
        wait_for(
            lambda: (
                len(hub.get("/devices/robot-2/drift")["history"].get("brightness_hist", []))
                >= scored + 2
            ),
            4 * DRIFT_WINDOW_S,
            "two more of robot-2's windows scored",
            1.0,
        )
        assert "robot-2" not in drifted(), hub.get("/devices/robot-2/drift")
    finally:
        if sim is not None and sim.poll() is None:
            sim.terminate()
            try:
                sim.wait(40)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(10)
        if hub is not None:
            hub.client.close()
        running.hub.stop()
        print(log.read_text(errors="replace")[-3000:] if log.exists() else "")
