"""End to end: `outpost sim run` against an embedded hub, with three real enrolled agents.

Two robots speak the MQTT robot contract, one ROS 2. Their telemetry and state reach
the hub; a stop through the hub's API halts the simulated robots (the MQTT one within
one control period of the agent receiving it), a release lets them move again; a 20 s
cut of one agent's link to the hub (`outpost sim fault link_cut`) loses no data.
"""

from __future__ import annotations

import secrets
import signal
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sim.control import robots
from tests.integration.harness import free_port, wait_for
from tests.integration.hub.embedded import PASSWORD, EmbeddedHub, init_site, start_embedded_hub
from tests.integration.hubrig import OUTPOST

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:module 'sre_(parse|constants)' is deprecated"),
]

ROBOTS = {"robot-1": "mqtt", "robot-2": "mqtt", "robot-3": "ros"}
CONTROL_PERIOD_S = 0.05  # the agent's [safety] control_period_s default
CUT_S = 20.0
SYNTHETIC_HZ = 5.0


def _scenario(path: Path) -> Path:
    """An open floor: three robots in free lanes, a battery drain scheduled on the ROS one."""
    camera = {"width": 160, "height": 120}
    limits = {"max_linear_mps": 1.0, "max_decel_mps2": 4.0}
    document = {
        "name": "e2e",
        "site": {"width_m": 80.0, "height_m": 20.0},
        "robots": [
            {
                "id": rid,
                "x": 2.0,
                "y": 4.0 + 6 * i,
                "face": face,
                "camera": camera,
                "limits": limits,
            }
            for i, (rid, face) in enumerate(ROBOTS.items())
        ],
        "faults": [{"at_s": 1.0, "kind": "battery_drain", "robot": "robot-3", "to_pct": 42.0}],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


class Hub:
    """The embedded hub's API (as root) and database."""

    def __init__(self, running: EmbeddedHub) -> None:
        self.running = running
        self.client = httpx.Client(base_url=f"{running.url}/api/v1", timeout=10)
        login = self.client.post("/auth/login", data={"username": "root", "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def api_key(self) -> str:
        made = self.client.post("/auth/api-keys", json={"name": "sim"})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def command(self, device: str, kind: str, body: dict[str, Any]) -> str:
        answer = self.client.post(f"/devices/{device}/{kind}", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["cmd_id"])

    def final(self, cmd_id: str, timeout: float = 15) -> dict[str, Any]:
        shown: dict[str, Any] = {}

        def done() -> bool:
            nonlocal shown
            shown = self.get(f"/commands/{cmd_id}")
            return shown["status"] in ("done", "failed", "rejected", "expired")

        wait_for(done, timeout, f"command {cmd_id} to finish", interval=0.05)
        return shown

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        database = self.running.data_dir / "hub.db"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()

    def metrics_of(self, device: str) -> set[str]:
        rows = self.query("SELECT DISTINCT metric FROM telemetry WHERE device = ?", device)
        return {r[0] for r in rows}

    def counter(self, device: str) -> list[int]:
        rows = self.query(
            "SELECT value FROM telemetry WHERE device = ? AND metric = 'synthetic.counter' "
            "ORDER BY value",
            device,
        )
        return [int(r[0]) for r in rows]


def _moving(control: str, robot: str) -> bool:
    return abs(robots(control)["robots"][robot]["velocity"]["linear"]) > 0.2


def _still(control: str, robot: str) -> bool:
    return robots(control)["robots"][robot]["velocity"]["linear"] == 0.0


def _received_at(shown: dict[str, Any]) -> float:
    step = next(s for s in shown["lifecycle"] if s["status"] == "received")
    return datetime.fromisoformat(step["at"]).timestamp()


@pytest.mark.timeout(300)
def test_a_simulated_fleet_with_real_agents_against_an_embedded_hub(tmp_path: Path) -> None:
    running = start_embedded_hub(tmp_path)
    sim: subprocess.Popen[bytes] | None = None
    hub: Hub | None = None
    log = tmp_path / "sim.log"
    try:
        init_site(running)
        hub = Hub(running)
        control_port = free_port()
        control = f"http://127.0.0.1:{control_port}"
        env = {
            **running.env,
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "OUTPOST_API_KEY": hub.api_key(),
        }
        argv = [
            *(OUTPOST, "sim", "run", "--hub", running.url, "--robots", "3"),
            *("--scenario", str(_scenario(tmp_path / "e2e.yaml"))),
            *("--workdir", str(tmp_path / "fleet"), "--site", "plant-a"),
            *("--control-port", str(control_port), "--camera-fps", "1"),
            *("--ros-domain", str(secrets.randbelow(100) + 1)),
            *("--synthetic-hz", str(SYNTHETIC_HZ)),
        ]
        with log.open("wb") as out:
            sim = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
        started = time.monotonic()

        # Enrolled by real `edge-agent install` runs; each agent's state and telemetry arrive.
        for device in ROBOTS:
            wait_for(
                lambda d=device: (
                    hub.client.get(f"/devices/{d}").status_code == 200  # type: ignore[misc]
                    and hub.get(f"/devices/{d}")["state"]["online"] is True
                ),
                90,
                f"{device} online in the hub ({log.read_text(errors='replace')[-2000:]})",
                interval=0.5,
            )
        for device in ROBOTS:
            wait_for(
                lambda d=device: (
                    {"robot.odom.x", "robot.battery.percent", "synthetic.counter"}  # type: ignore[misc]
                    <= hub.metrics_of(d)
                ),
                30,
                f"{device}'s robot telemetry stored",
                interval=0.5,
            )
        # The scenario's scheduled fault reached the hub through the ROS 2 robot's battery.
        wait_for(
            lambda: bool(
                hub.query(
                    "SELECT 1 FROM telemetry WHERE device = 'robot-3' AND "
                    "metric = 'robot.battery.percent' AND value < 43"
                )
            ),
            20,
            "robot-3's drained battery in the hub",
        )
        print(f"fleet up, telemetry and state in the hub after {time.monotonic() - started:.1f} s")

        # Drive both kinds of robot through the API, stop them, release them.
        for device in ("robot-1", "robot-3"):
            hub.command(device, "override", {"linear": 0.6, "angular": 0, "duration_s": 8})
        for device in ("robot-1", "robot-3"):
            wait_for(lambda d=device: _moving(control, d), 5, f"{device} driving")  # type: ignore[misc]
        stops = {d: hub.command(d, "estop", {"reason": "e2e stop"}) for d in ("robot-1", "robot-3")}
        for device, cmd_id in stops.items():
            shown = hub.final(cmd_id)
            assert shown["status"] == "done", shown
            wait_for(lambda d=device: _still(control, d), 2.0, f"{device} halted")  # type: ignore[misc]
        shown = hub.get(f"/commands/{stops['robot-1']}")
        heard_stop = robots(control)["robots"]["robot-1"]["heard"]["stop"]
        relay_s = heard_stop - _received_at(shown)
        print(f"robot-1: agent received the stop -> robot heard it: {relay_s * 1000:.0f} ms")
        assert relay_s <= CONTROL_PERIOD_S, relay_s
        refused = hub.final(
            hub.command("robot-1", "override", {"linear": 0.5, "angular": 0, "duration_s": 3})
        )
        assert refused["status"] in ("rejected", "failed"), refused
        assert _still(control, "robot-1")
        for device in ("robot-1", "robot-3"):
            released = hub.final(hub.command(device, "release", {"reason": "aisle clear"}))
            assert released["status"] == "done", released
            hub.command(device, "override", {"linear": 0.5, "angular": 0, "duration_s": 5})
            wait_for(lambda d=device: _moving(control, d), 5, f"{device} moving after release")  # type: ignore[misc]

        # A 20 s cut of robot-2's link to the hub loses nothing.
        before = hub.counter("robot-2")
        cut = subprocess.run(
            [
                OUTPOST,
                "sim",
                "fault",
                "link_cut",
                "--robot",
                "robot-2",
                "--seconds",
                str(CUT_S),
                "--control",
                control,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert cut.returncode == 0, cut.stderr
        cut_at = time.monotonic()
        time.sleep(2)
        assert robots(control)["robots"]["robot-2"]["link_cut"] is True
        early = hub.counter("robot-2")
        time.sleep(max(0.0, CUT_S - 2 - (time.monotonic() - cut_at)))
        late = hub.counter("robot-2")
        assert late == early, "points reached the hub through a cut link"
        wait_for(lambda: not robots(control)["robots"]["robot-2"]["link_cut"], 5, "the link back")
        restored_at = time.monotonic()
        expected = int((restored_at - started) * SYNTHETIC_HZ * 0.5)  # the counter ran all along
        wait_for(
            lambda: (c := hub.counter("robot-2")) == list(range(len(c))) and len(c) > expected,
            60,
            "robot-2's counter complete and gap-free in the hub after the cut",
            interval=0.5,
        )
        values = hub.counter("robot-2")
        print(
            f"link cut: {len(before)} points before, {len(early)} held from 2 s to "
            f"{CUT_S - 2:.0f} s into the cut, {len(values)} gap-free after "
            f"(drained in {time.monotonic() - restored_at:.1f} s)"
        )

        # The fleet runs a full minute; every agent and its telemetry keep going.
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        for device in ROBOTS:
            counted = hub.counter(device)
            assert counted == list(range(len(counted))), f"{device}: gaps in its counter"
            assert hub.get(f"/devices/{device}")["state"]["online"] is True
            assert robots(control)["robots"][device]["agent_running"] is True
        recent = hub.query(
            "SELECT device, count(*) FROM telemetry WHERE metric = 'robot.odom.x' GROUP BY device"
        )
        assert {d for d, n in recent if n > 100} == set(ROBOTS), recent
        assert sim.poll() is None, log.read_text(errors="replace")[-3000:]
    finally:
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            try:
                assert sim.wait(40) == 0
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(10)
                raise
        if hub is not None:
            hub.client.close()
        running.hub.stop()
        print(log.read_text(errors="replace")[-3000:] if log.exists() else "")
