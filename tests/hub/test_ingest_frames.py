"""Thin devices' inference frames: routed to `inference.frames`, rate-limited per device.

A flood from one camera is refused above its rate (counted, not dead-lettered), and
neither another camera's frames nor the flooding device's other messages are held back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub.bus.memory import InMemoryBus
from hub.bus.topics import FRAMES, TELEMETRY_RAW
from hub.ingest.limits import RateLimiter
from hub.ingest.route import Routed, route
from hub.ingest.service import Ingest
from hub.settings import HubSettings
from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, encode, topic
from protocol.models import Frame, FramePurpose

NOW = datetime(2026, 11, 28, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def frame(device: str, seq: int, purpose: FramePurpose = FramePurpose.INFERENCE) -> bytes:
    body = Frame(ts=NOW, frame_id=f"f{seq}", purpose=purpose, width=64, height=48, jpeg=JPEG)
    return encode(
        Envelope(device=device, stream="frames", seq=seq, ts=NOW, kind=Channel.FRAMES, body=body)
    )


def telemetry(device: str, seq: int) -> bytes:
    body = TelemetryBatch(points=[TelemetryPoint(ts=NOW, metric="battery", value=80.0)])
    return encode(
        Envelope(device=device, stream="s1", seq=seq, ts=NOW, kind=Channel.TELEMETRY, body=body)
    )


def message(device: str, channel: Channel, payload: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=topic(device, channel).encode())
    msg.payload = payload
    return msg


def test_only_inference_frames_are_marked_for_the_rate_limit() -> None:
    inference = route(topic("cam-1", Channel.FRAMES), frame("cam-1", 1), max_bytes=1 << 20)
    snapshot = route(
        topic("cam-1", Channel.FRAMES),
        frame("cam-1", 2, FramePurpose.SNAPSHOT),
        max_bytes=1 << 20,
    )
    assert isinstance(inference, Routed)
    assert inference.topic == FRAMES
    assert inference.inference_frame
    assert isinstance(snapshot, Routed)
    assert not snapshot.inference_frame


def test_a_flood_is_refused_above_the_rate_and_nothing_else_is_held_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = HubSettings(
        data_dir=tmp_path, ingest={"inference_frames_per_s": 5, "inference_frames_burst": 3}
    )
    ingest = Ingest(settings, InMemoryBus())
    batch = [message("cam-1", Channel.FRAMES, frame("cam-1", n)) for n in range(1, 51)]
    batch += [message("cam-1", Channel.TELEMETRY, telemetry("cam-1", n)) for n in range(1, 4)]
    batch += [message("cam-2", Channel.FRAMES, frame("cam-2", n)) for n in range(1, 4)]
    records = ingest._records(batch)
    frames_of = {
        d: [r for r in records if r[0] == FRAMES and r[1] == d] for d in (b"cam-1", b"cam-2")
    }
    assert 3 <= len(frames_of[b"cam-1"]) <= 4  # the burst (and a token refilled meanwhile)
    assert len(frames_of[b"cam-2"]) == 3  # another camera is not affected
    assert len([r for r in records if r[0] == TELEMETRY_RAW]) == 3  # nor cam-1's telemetry
    assert ingest.counters.throttled == 50 - len(frames_of[b"cam-1"])
    assert ingest.counters.deadlettered == 0  # a flood of dead letters would be a flood too
    warnings = [r for r in caplog.records if "refusing inference frames of cam-1" in r.message]
    assert len(warnings) == 1  # logged once, not once per frame


def test_the_bucket_refills_at_the_rate_and_forgets_idle_devices() -> None:
    bucket = RateLimiter(rate_per_s=10, burst=1)
    assert bucket.allow("cam", now=0.0)
    assert not bucket.allow("cam", now=0.05)
    assert bucket.allow("cam", now=0.1)
    bucket.allow("other", now=0.1)
    assert len(bucket) == 2
    bucket.allow("cam", now=1000.0)  # "other" has been idle for longer than 10 minutes
    assert len(bucket) == 1


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s must be positive"):
        RateLimiter(rate_per_s=0, burst=1)
