"""`outpost demo --no-browser` end to end, driven in Debian's Chromium (issue 10's acceptance).

The demo starts an embedded hub, an admin with a one-time password and simulated robots
with real agents. The browser smoke script (dashboard/e2e/smoke.mjs) then logs in, finds
a robot on the map and in the list, presses its STOP by keyboard and sees it stopped,
acknowledges the live alert the stop raised, visits every page (screenshots as test
artefacts) and checks a viewer has no control buttons. Afterwards the robot's own
odometry says it is standing still, and Ctrl-C stops the demo cleanly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.dashboard.test_dashboard_browser import CHROMIUM, DASHBOARD, artifacts_dir
from tests.integration.harness import wait_for
from tests.integration.hubrig import OUTPOST

pytestmark = pytest.mark.integration


def _read_banner(demo: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """The dashboard URL and the one-time password, from the demo's output."""
    assert demo.stdout is not None
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            if demo.poll() is not None:
                break
            continue
        seen += line
        url = re.search(r"Dashboard: (http://\S+?)/", seen)
        password = re.search(r"one-time password (\S+)", seen)
        if url and password:
            return url[1], password[1]
    raise AssertionError(f"no dashboard URL from outpost demo:\n{seen}")


def _devices(url: str, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    return list(httpx.get(f"{url}/api/v1/devices", headers=headers, timeout=10).json()["items"])


def _speed(url: str, token: str, device: str) -> float | None:
    series = httpx.get(
        f"{url}/api/v1/devices/{device}/telemetry",
        params={"metric": "robot.odom.linear", "resolution": "raw", "max_points": 10_000},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    points = series.get("points") or []
    return float(points[-1]["value"]) if points else None


@pytest.mark.timeout(420)
def test_the_demo_in_a_browser(tmp_path: Path) -> None:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: dashboard/scripts/ensure-chromium.sh"
    assert shutil.which("node"), "Node.js is missing"
    assert (DASHBOARD / "out" / "fleet" / "index.html").is_file(), "not built: make dashboard"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    # Started as CI starts things, from a background job: SIGINT arrives ignored. Ctrl-C
    # (SIGINT) must stop the demo all the same.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        demo = _start_demo(tmp_path, env)
    finally:
        signal.signal(signal.SIGINT, previous)
    output: list[str] = []
    reader = threading.Thread(target=_drain, args=(demo, output), daemon=True)
    try:
        url, password = _read_banner(demo, 120)
        reader.start()  # from here on, keep reading what it prints: a full pipe would block it
        assert "<html" in httpx.get(f"{url}/", timeout=10).text.lower()  # the page loads
        login = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": password}, timeout=10
        )
        token = login.json()["access_token"]

        def online() -> list[dict[str, Any]]:
            return [d for d in _devices(url, token) if d["state"].get("online")]

        wait_for(lambda: len(online()) == 2, 180, "both simulated robots online")
        device = next(d for d in online() if d["name"] == "robot-1")
        # robot-1 shuttles along its lane on its own: the robots move before anyone acts.
        wait_for(lambda: (_speed(url, token, device["id"]) or 0.0) > 0.1, 60, "robot-1 moving")
        created = httpx.post(
            f"{url}/api/v1/users",
            json={"username": "vic", "password": password, "role": "viewer"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text

        smoke = subprocess.run(
            ["node", "e2e/smoke.mjs"],
            cwd=DASHBOARD,
            env={
                **os.environ,
                "HUB_URL": url,
                "DEVICE_ID": device["id"],
                "DEVICE_NAME": device["name"],
                "ADMIN_USER": "admin",
                "VIEWER_USER": "vic",
                "PASSWORD": password,
                "MAP_ZONE": "danger",  # the demo puts the warehouse's floor plan on the map
                "ARTIFACTS": str(artifacts_dir() / "demo"),
                "CHROMIUM": CHROMIUM,
            },
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert smoke.returncode == 0, f"{smoke.stdout}\n{smoke.stderr}"
        # The robot itself halted: its odometry (through the agent and the hub) reads 0.
        wait_for(lambda: abs(_speed(url, token, device["id"]) or 0.0) < 0.01, 30, "a halted robot")
    finally:
        if reader.ident is None:  # the banner never came
            reader.start()
        code = demo.poll()
        try:
            if code is None:
                demo.send_signal(signal.SIGINT)
                try:
                    code = demo.wait(90)
                except subprocess.TimeoutExpired:
                    _kill_tree(demo)
                    shown = "".join(output)[-3000:]
                    raise AssertionError(
                        f"outpost demo did not stop within 90 s of Ctrl-C:\n{shown}"
                    ) from None
        finally:
            reader.join(10)
            if demo.stdout is not None:
                demo.stdout.close()
    assert code == 0, "outpost demo did not stop cleanly on Ctrl-C:\n" + "".join(output)[-3000:]


def _drain(demo: subprocess.Popen[str], into: list[str]) -> None:
    assert demo.stdout is not None
    with contextlib.suppress(ValueError, OSError):
        for line in demo.stdout:
            into.append(line)


def _kill_tree(demo: subprocess.Popen[str]) -> None:
    """The demo and everything it started (the hub and the simulator run in sessions of
    their own, so killing the demo alone would leave them running)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(demo.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    demo.kill()


def _start_demo(workdir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            OUTPOST,
            "demo",
            "--no-browser",
            "--robots",
            "2",
            "--port",
            "0",
            "--workdir",
            str(workdir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
