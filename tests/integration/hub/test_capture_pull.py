"""`outpost capture pull` end to end: an enrolled device sends captured frames and their
detections over MQTT to an embedded hub (ingest → bus → writer → `frames`); the CLI pulls
them into a YOLO dataset with the model's boxes as pre-labels, and a second pull adds
only what is new. The device's watermark covers the frames (nothing left to re-send), and
the hub process's Prometheus endpoint counts the traffic."""

from __future__ import annotations

import asyncio
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml

from protocol import Channel, Envelope
from protocol.models import (
    Box,
    DetectedObject,
    DetectionBatch,
    Frame,
    FramePurpose,
    FrameResult,
    ModelRef,
)
from tests.integration.harness import free_port, wait_for
from tests.integration.hub.embedded import (
    PASSWORD,
    init_site,
    install_agent,
    publish_as_device,
    start_embedded_hub,
)
from tests.integration.hubrig import OUTPOST

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)


def captured(n: int, classes: list[str]) -> tuple[Frame, FrameResult]:
    ok, data = cv2.imencode(".jpg", np.full((48, 64, 3), 40 * n, np.uint8))
    assert ok
    at = T0 + timedelta(seconds=n)
    objects = [
        DetectedObject(cls=c, conf=0.4 + i / 10, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.6))
        for i, c in enumerate(classes)
    ]
    result = FrameResult(
        ts=at,
        frame_id=f"cap-{n}",
        model=ModelRef(name="det", version="3", sha256="b" * 64),
        objects=objects,
        latency_ms=9.0,
    )
    frame = Frame(
        ts=at,
        frame_id=f"cap-{n}",
        purpose=FramePurpose.CAPTURE,
        width=64,
        height=48,
        jpeg=data.tobytes(),
    )
    return frame, result


def envelopes(device: str, start_seq: int, n: list[int]) -> list[Envelope]:
    """Captured frames and their detections, as the device's agent sends them."""
    bodies: list[Frame | DetectionBatch] = []
    for i in n:
        frame, result = captured(i, ["person", "forklift"][: 1 + i % 2])
        bodies += [frame, DetectionBatch(frames=[result])]
    return [
        Envelope(
            device=device,
            stream="s1",
            seq=seq,
            ts=T0,
            kind=Channel.FRAMES if isinstance(body, Frame) else Channel.DETECTIONS,
            body=body,
        )
        for seq, body in enumerate(bodies, start=start_seq)
    ]


def test_capture_pull_builds_a_labelling_dataset(tmp_path: Path) -> None:
    metrics_port = free_port()
    running = start_embedded_hub(tmp_path, METRICS__PORT=str(metrics_port))
    try:
        init_site(running)
        installed = tomllib.loads(install_agent(running, tmp_path).read_text())
        device, mqtt = installed["device"]["id"], installed["mqtt"]
        password = mqtt["password"]
        sent = envelopes(device, 1, [1, 2])
        assert asyncio.run(publish_as_device(running, device, password, sent)) >= 4

        with httpx.Client(base_url=running.url, timeout=10) as api:
            login = api.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            key = api.post("/api/v1/auth/api-keys", json={"name": "labelling"}, headers=bearer)
            env = {**running.env, "OUTPOST_API_KEY": key.json()["key"]}

            def listed() -> int:
                page = api.get("/api/v1/frames", params={"purpose": "capture"}, headers=bearer)
                return len(page.json()["items"])

            wait_for(lambda: listed() == 2, 10, "two captures at the hub")

        out = tmp_path / "labelling"
        pull = [OUTPOST, "capture", "pull", "--hub", running.url, "--out", str(out)]
        first = subprocess.run(pull, env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "2 new frame(s)" in first.stdout
        images = sorted(p.name for p in (out / "images").iterdir())
        assert images == [f"{device}_cap-1.jpg", f"{device}_cap-2.jpg"]
        data = yaml.safe_load((out / "data.yaml").read_text())
        assert data["names"] == {0: "person", 1: "forklift"}
        label = (out / "labels" / f"{device}_cap-2.txt").read_text().splitlines()
        assert label == ["0 0.200000 0.400000 0.200000 0.400000"]
        image = cv2.imread(str(out / "images" / f"{device}_cap-1.jpg"))
        assert image.shape == (48, 64, 3)

        more = envelopes(device, 5, [3])
        assert asyncio.run(publish_as_device(running, device, password, more)) >= 6
        wait_for(lambda: _count(running.url, bearer) == 3, 10, "a third capture")
        again = subprocess.run(pull, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        assert "1 new frame(s), 2 already here" in again.stdout
        rows = (out / "captures.csv").read_text().splitlines()
        assert len(rows) == 4  # header + 3 frames
        assert rows[1].split(",")[4] == "det:3"

        # The same traffic, seen by Prometheus on the hub process's metrics port.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert _sample(metrics, "outpost_ingest_received_total") >= 6
        assert _sample(metrics, "outpost_writer_stored_total") >= 6
        assert "outpost_consumer_lag{" in metrics

        refused = subprocess.run(
            [*pull[:-2], "--out", str(tmp_path / "x")],
            env={**env, "OUTPOST_API_KEY": "opk_nope"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2
        assert "refused the API key" in refused.stderr
    except BaseException:
        print(running.hub.tail())
        raise
    finally:
        running.hub.stop()


def _sample(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


def _count(base: str, headers: dict[str, str]) -> int:
    page = httpx.get(
        f"{base}/api/v1/frames", params={"purpose": "capture"}, headers=headers, timeout=10
    )
    return len(page.json()["items"])
