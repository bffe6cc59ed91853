"""Drift end to end on an embedded hub: a model pushed with its card's baseline; two enrolled
devices report running it and send drift windows over MQTT. The hub learns each camera's
reference from their first two windows; then one camera goes black. The drift worker
scores both, the blacked-out one raises the default "Drift over threshold" alert and the
healthy one does not, `outpost drift report` prints both and writes its chart, and
`outpost drift reset` makes the hub learn the references again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint
from protocol.models import DeviceState, ModelRef
from tests.edge_agent.model_rig import constant_model
from tests.integration.harness import wait_for
from tests.integration.hub.embedded import (
    PASSWORD,
    EmbeddedHub,
    init_site,
    install_agent,
    publish_as_device,
    start_embedded_hub,
)
from tests.integration.hubrig import OUTPOST

pytestmark = pytest.mark.integration

BASELINE = {"class_frac": [0.6, 0.4], "brightness_hist": [0.1, 0.4, 0.4, 0.1]}
T = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
"""Within the drift API's default 24 hours, whenever the test runs."""


def drift_envelopes(device: str, sha: str, windows: list[list[float]]) -> list[Envelope]:
    """The device's state (running the model), then one drift window a minute."""
    state = DeviceState(online=True, model=ModelRef(name="det", version="1", sha256=sha))
    bodies: list[tuple[Channel, DeviceState | TelemetryBatch]] = [(Channel.STATE, state)]
    for n, brightness in enumerate(windows):
        ts = T + timedelta(minutes=n)
        points = [TelemetryPoint(ts=ts, metric="drift.frames", value=40)]
        points += [
            TelemetryPoint(ts=ts, metric="drift.brightness_hist", value=v, tags={"bin": f"{i:02d}"})
            for i, v in enumerate(brightness)
        ]
        if sum(brightness[1:]) > 0:  # a black image shows no objects at all
            points += [
                TelemetryPoint(ts=ts, metric="drift.class_frac", value=v, tags={"cls": c})
                for c, v in (("person", 0.8), ("forklift", 0.2))
            ]
        bodies.append((Channel.TELEMETRY, TelemetryBatch(points=points)))
    return [
        Envelope(device=device, stream="s1", seq=i, ts=T, kind=kind, body=body)
        for i, (kind, body) in enumerate(bodies, start=1)
    ]


def enrolled(running: EmbeddedHub, tmp_path: Path, name: str) -> tuple[str, str]:
    folder = tmp_path / name
    folder.mkdir()
    installed = tomllib.loads(install_agent(running, folder, name=name).read_text())
    return installed["device"]["id"], installed["mqtt"]["password"]


def test_a_blacked_out_camera_drifts_and_a_healthy_one_does_not(tmp_path: Path) -> None:
    running = start_embedded_hub(tmp_path, DRIFT__REFERENCE_WINDOWS="2")
    try:
        init_site(running)
        healthy, healthy_pw = enrolled(running, tmp_path, "Healthy")
        dark, dark_pw = enrolled(running, tmp_path, "Dark")
        with httpx.Client(base_url=f"{running.url}/api/v1", timeout=10) as api:
            login = api.post("/auth/login", json={"username": "root", "password": PASSWORD})
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            key = api.post("/auth/api-keys", json={"name": "ml"}, headers=bearer).json()["key"]
            env = {**running.env, "OUTPOST_API_KEY": key, "OUTPOST_HUB_URL": running.url}
            onnx = constant_model(tmp_path / "det.onnx", names=("person", "forklift"))
            card = tmp_path / "card.json"
            card.write_text(json.dumps({"baseline": BASELINE}))
            push = [OUTPOST, "model", "push", str(onnx), "--name", "det", "--version", "1"]
            pushed = subprocess.run(
                [*push, "--card", str(card)], env=env, capture_output=True, text=True, timeout=60
            )
            assert pushed.returncode == 0, pushed.stdout + pushed.stderr
            sha = hashlib.sha256(onnx.read_bytes()).hexdigest()

            site = [0.0, 0.2, 0.5, 0.3]  # brighter than the training set, and steady
            for device, password, last in (
                (healthy, healthy_pw, [0.0, 0.21, 0.49, 0.3]),
                (dark, dark_pw, [1.0, 0.0, 0.0, 0.0]),
            ):
                sent = drift_envelopes(device, sha, [site, site, last])
                asyncio.run(publish_as_device(running, device, password, sent))

            def drift_alerts() -> set[str]:
                items = api.get("/alerts", headers=bearer).json()["items"]
                return {a["device"] for a in items if a["rule"] == "Drift over threshold"}

            wait_for(lambda: drift_alerts() == {dark}, 30, "a drift alert for the dark camera")

            def scored(device: str) -> bool:
                body = api.get(f"/devices/{device}/drift", headers=bearer).json()
                return bool(body["history"]) and body["reference"]["learning"] is False

            wait_for(lambda: scored(healthy) and scored(dark), 20, "both devices scored")
            assert drift_alerts() == {dark}  # the healthy device stays quiet

        chart = tmp_path / "drift.png"
        report = subprocess.run(
            [OUTPOST, "drift", "report", "--png", str(chart)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        rows = [line for line in report.stdout.splitlines() if "│" in line and "det:1" in line]
        lines = {row.split("│")[1].strip(): row for row in rows}
        assert "drifted" in lines[dark]
        assert "stable" in lines[healthy]
        assert chart.stat().st_size > 10_000

        forget = [OUTPOST, "drift", "reset", "--device", dark]
        reset = subprocess.run(forget, env=env, capture_output=True, text=True, timeout=60)
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert "1 reference(s) forgotten" in reset.stdout
        again = subprocess.run(
            [OUTPOST, "drift", "report", "--device", dark, "--png", str(chart)],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "learning 0/2" in again.stdout, again.stdout + again.stderr
    except BaseException:
        print(running.hub.tail())
        raise
    finally:
        running.hub.stop()
