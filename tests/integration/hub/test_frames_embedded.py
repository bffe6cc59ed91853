"""Issue 12: what the hub refuses of thin devices' frames, on a real embedded hub.

A camera-only device (`sim.thin_camera.ThinCamera`) enrolled by token sends frames:
a flood above its rate is refused (counted, never dead-lettered); an oversized frame is
dead-lettered with the reason; a device that is not enrolled cannot even log in (counted
by the broker). Through all of it the same device's other data is stored and confirmed.
"""

from __future__ import annotations

import asyncio
import base64
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest

from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, topic
from protocol.models import MAX_FRAME_JPEG_BYTES
from sim.thin_camera import ThinCamera
from tests.edge_agent.sim_scene import person_and_forklift
from tests.integration.harness import free_port, wait_for
from tests.integration.hub.embedded import (
    init_site,
    install_agent,
    publish_as_device,
    start_embedded_hub,
)


def sample(text: str, name: str, label: str = "") -> float:
    """One sample of a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.timeout(180)
def test_floods_oversized_frames_and_strangers_are_refused_and_counted(tmp_path: Path) -> None:
    metrics_port = free_port()
    running = start_embedded_hub(tmp_path, METRICS__PORT=str(metrics_port))
    url = f"mqtt://127.0.0.1:{running.mqtt_port}"

    def metrics() -> str:
        return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text

    try:
        init_site(running)
        installed = tomllib.loads(install_agent(running, tmp_path).read_text())
        device, password = installed["device"]["id"], installed["mqtt"]["password"]
        scene = person_and_forklift()

        # A flood: 40 frames at 40/s against the default 5/s with a burst of 10.
        flood = ThinCamera(
            device, url, render=scene.copy, fps=40, username=device, password=password
        )
        asyncio.run(flood.run(40))
        wait_for(
            lambda: sample(metrics(), "outpost_ingest_throttled_total") >= 15,
            20,
            "the flood refused above the rate",
        )
        page = metrics()
        throttled = sample(page, "outpost_ingest_throttled_total")
        assert throttled <= 30, "frames within the rate and burst were refused"
        assert sample(page, "outpost_ingest_deadlettered_total") == 0  # refused, not dead

        # An oversized frame: dead-lettered with the reason.
        asyncio.run(publish_raw(url, device, password, oversized_frame(device)))
        wait_for(
            lambda: sample(metrics(), "outpost_ingest_deadlettered_total") == 1,
            20,
            "the oversized frame dead-lettered",
        )

        # A stranger cannot log in; the broker counts it.
        stranger = ThinCamera(
            "cam-stranger", url, render=scene.copy, username="cam-stranger", password="guess"
        )
        with pytest.raises(aiomqtt.MqttError):
            asyncio.run(stranger.run(1))
        assert sample(metrics(), "outpost_broker_refused_logins_total") >= 1

        # Nothing else of the device was held back: its telemetry is stored and confirmed.
        now = datetime.now(UTC)
        point = TelemetryBatch(points=[TelemetryPoint(ts=now, metric="battery", value=80.0)])
        envelope = Envelope(
            device=device, stream="t1", seq=1, ts=now, kind=Channel.TELEMETRY, body=point
        )
        assert asyncio.run(publish_as_device(running, device, password, [envelope])) == 1
    finally:
        running.hub.stop()


def oversized_frame(device: str) -> bytes:
    """A frames envelope whose JPEG is over the 512 KiB cap (built by hand: the models
    refuse to make one)."""
    jpeg = b"\xff\xd8" + b"\0" * (MAX_FRAME_JPEG_BYTES + 1000)
    now = datetime.now(UTC).isoformat()
    return orjson.dumps(
        {
            "v": "1.0",
            "device": device,
            "stream": "big",
            "seq": 1,
            "ts": now,
            "kind": "frames",
            "body": {
                "ts": now,
                "frame_id": "big-1",
                "purpose": "inference",
                "width": 640,
                "height": 480,
                "jpeg": base64.b64encode(jpeg).decode(),
            },
        }
    )


async def publish_raw(url: str, device: str, password: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        "127.0.0.1",
        int(url.rsplit(":", 1)[1]),
        username=device,
        password=password,
        identifier=f"{device}-raw",
    ) as mqtt:
        await mqtt.publish(topic(device, Channel.FRAMES), payload, qos=1)
