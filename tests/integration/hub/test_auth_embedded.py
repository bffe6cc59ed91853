"""A real `outpost hub serve` (embedded): health before any user, then init, login, audit."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx

from tests.integration.harness import free_port
from tests.integration.hubrig import OUTPOST, HubProcess

PASSWORD = "correct horse battery"


def outpost(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTPOST, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_hub_serves_health_first_then_users_log_in_and_are_audited(tmp_path: Path) -> None:
    data_dir, api_port, mqtt_port = tmp_path / "data", free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
    }
    hub = HubProcess(tmp_path / "hub.log", env=env)
    hub.start()
    try:
        hub.wait_healthy(api_port)  # no user exists yet
        secret = data_dir / "jwt-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600

        init = outpost(env, "hub", "init", "--username", "root", "--password-stdin", stdin=PASSWORD)
        assert init.returncode == 0, init.stderr
        again = outpost(env, "hub", "init", "--password-stdin", stdin=PASSWORD)
        assert again.returncode == 1

        base = f"http://127.0.0.1:{api_port}/api/v1"
        with httpx.Client(base_url=base, timeout=10) as client:
            login = client.post("/auth/login", data={"username": "root", "password": PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            me = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["role"] == "admin"
            anonymous = client.post("/users", json={})
            assert anonymous.status_code == 401
            spec = httpx.get(f"http://127.0.0.1:{api_port}/openapi.json", timeout=10).json()
            assert "/api/v1/auth/login" in spec["paths"]

        verify = outpost(env, "hub", "audit", "verify")
        assert verify.returncode == 0, verify.stderr
        assert verify.stdout.startswith("3 rows, chain intact")  # init, login, denied POST
    finally:
        hub.stop()
