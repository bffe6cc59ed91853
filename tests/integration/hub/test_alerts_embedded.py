"""End to end with the real programs: a real agent sees a person in its danger zone (a real
MJPEG camera and an ONNX model that always finds one), its `rule_fired` event reaches an
embedded `outpost hub serve`, the alert worker raises "Person in danger zone", a local
webhook receiver gets an HMAC-signed body that verifies, and a real SMTP server (aiosmtpd)
gets the e-mail; an operator then acknowledges and resolves the alert through the API."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import tomli_w

from tests.edge_agent.mjpeg_server import MjpegServer
from tests.edge_agent.model_rig import constant_model
from tests.integration.harness import AgentProcess, free_port, wait_for
from tests.integration.hub.alert_receivers import smtp_server, webhook_receiver
from tests.integration.hub.embedded import (
    PASSWORD,
    EmbeddedHub,
    init_site,
    install_agent,
    run,
    run_config,
)
from tests.integration.hubrig import OUTPOST, HubProcess

DEVICE = "amr-7"
SECRET = "whsec-e2e-0123456789"
WHOLE_FRAME = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def _start_hub(tmp_path: Path, smtp_port: int) -> EmbeddedHub:
    """An embedded hub whose alerts go out through the local SMTP server."""
    data_dir, api_port, mqtt_port = tmp_path / "hub-data", free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_HUB_DATA_DIR": str(data_dir),
        "OUTPOST_HUB_PORT": str(api_port),
        "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "OUTPOST_HUB_ALERTS__SMTP_HOST": "127.0.0.1",
        "OUTPOST_HUB_ALERTS__SMTP_PORT": str(smtp_port),
        "OUTPOST_HUB_ALERTS__SMTP_FROM": "hub@plant.test",
    }
    hub = HubProcess(tmp_path / "hub.log", env=env)
    hub.start()
    try:
        hub.wait_healthy(api_port)
    except BaseException:
        hub.stop()
        raise
    return EmbeddedHub(hub, env, data_dir, api_port, mqtt_port)


def _with_camera(config: Path, camera_url: str, model: Path) -> Path:
    """The agent's run config plus a camera, the model and a danger zone with a stop rule."""
    document = tomllib.loads(config.read_text(encoding="utf-8"))
    document["cameras"] = [{"name": "front", "source": camera_url, "fps": 5}]
    document["perception"] = {
        "model": str(model),
        "batch_delay_s": 0.2,
        "zones": [{"name": "dock", "camera": "front", "polygon": WHOLE_FRAME}],
        "rules": [
            {
                "name": "person-in-dock",
                "classes": ["person"],
                "zone": "dock",
                "min_conf": 0.5,
                "action": "stop",
            }
        ],
    }
    document["model"] = {"latency_budget_ms": 10_000, "latency_runs": 1, "warm_up_runs": 1}
    config.write_text(tomli_w.dumps(document), encoding="utf-8")
    return config


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


@pytest.mark.timeout(180)
def test_a_person_in_the_danger_zone_alerts_by_signed_webhook_and_email(tmp_path: Path) -> None:
    camera = MjpegServer(fps=10, width=320, height=240)
    model = constant_model(tmp_path / "person.onnx")
    with webhook_receiver(SECRET) as hook, smtp_server() as (mailbox, smtp_port):
        running = _start_hub(tmp_path, smtp_port)
        agent: AgentProcess | None = None
        camera.start()
        try:
            init_site(running)
            run(
                *(OUTPOST, "hub", "user", "add", "olga", "--role", "operator"),
                *("--site", "plant-a", "--password-stdin"),
                env=running.env,
                stdin=PASSWORD,
            )
            with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as client:
                root = Api(client, "root")
                channels = [
                    {"name": "ops", "kind": "webhook", "url": hook.url, "secret": SECRET},
                    {"name": "safety", "kind": "email", "recipients": ["safety@plant.test"]},
                ]
                for channel in channels:
                    created = root.post("/alert-channels", channel)
                    assert created.status_code == 201, created.text

                installed = install_agent(running, tmp_path)
                config = run_config(installed, tmp_path / "run.toml")
                _with_camera(config, camera.url, model)
                agent = AgentProcess(config, tmp_path / "agent.log")
                agent.start()

                def zone_alerts() -> list[dict[str, Any]]:
                    items = root.get(f"/alerts?device={DEVICE}")["items"]
                    return [a for a in items if a["rule"] == "Person in danger zone"]

                def zone_webhooks() -> list[Any]:
                    return [d for d in list(hook.received) if b"Person in danger zone" in d.body]

                def zone_emails() -> list[Any]:
                    return [
                        m for m in list(mailbox.messages) if "Person in danger" in m[2]["Subject"]
                    ]

                wait_for(lambda: bool(zone_alerts()), 90, "the danger-zone alert")
                wait_for(lambda: bool(zone_webhooks()), 20, "the webhook call")
                wait_for(lambda: bool(zone_emails()), 20, "the e-mail")
                (alert,) = zone_alerts()
                assert (alert["site"], alert["severity"], alert["state"]) == (
                    "plant-a",
                    "critical",
                    "active",
                )
                assert alert["detail"]["zone"] == "dock"
                # the agent's rule also engaged the stop: that is an alert of its own
                stops = root.get(f"/alerts?device={DEVICE}&state=active")["items"]
                assert "Stop engaged" in {a["rule"] for a in stops}

                (delivery,) = zone_webhooks()
                assert delivery.valid, delivery.headers
                body = orjson.loads(delivery.body)
                assert (body["id"], body["device"], body["site"], body["rule"]) == (
                    alert["id"],
                    DEVICE,
                    "plant-a",
                    "Person in danger zone",
                )
                ((sender, rcpts, message),) = zone_emails()
                assert (sender, rcpts) == ("hub@plant.test", ["safety@plant.test"])
                assert message["Subject"] == (
                    f"[Outpost] CRITICAL: Person in danger zone on {DEVICE}"
                )
                logged = root.get(f"/alerts/{alert['id']}/deliveries")["items"]
                assert sorted((d["channel_kind"], d["ok"]) for d in logged) == [
                    ("email", True),
                    ("webhook", True),
                ]

                olga = Api(client, "olga")
                acked = olga.post(f"/alerts/{alert['id']}/acknowledge")
                assert acked.status_code == 200, acked.text
                resolved = olga.post(f"/alerts/{alert['id']}/resolve")
                assert resolved.status_code == 200, resolved.text
                assert resolved.json()["resolved_by"] == "olga"
        finally:
            if agent is not None:
                agent.ensure_stopped()
            camera.stop()
            running.hub.stop()
