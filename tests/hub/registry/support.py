"""A fake retained publisher, a tiny ONNX detector, and what devices report, for the
registry's tests (SQLite here, PostgreSQL in tests/integration/hub)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from hub.control.errors import PublishError
from hub.registry.service import RegistryService
from hub.storage.db import transaction
from hub.storage.repositories import issue_credentials, store_envelopes
from protocol import Channel, Envelope
from protocol.models import (
    DetectionBatch,
    DeviceState,
    Event,
    FrameResult,
    KnownEvent,
    ModelRef,
    Severity,
)
from tests.edge_agent.model_rig import constant_model
from tests.hub.auth.support import Hub

DEVICE_PASSWORD = "device-secret-password"


@dataclass
class FakeRetainedPublisher:
    """Keeps the retained `model` messages per topic (b"" clears); fails while `failure`."""

    retained: dict[str, bytes] = field(default_factory=dict)
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    failure: str | None = None

    async def publish(self, topic: str, payload: bytes, *, expiry_s: int) -> None:
        """Commands: recorded like the retained ones."""
        await self.publish_retained(topic, payload)

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Record, or fail like a broker that never answered."""
        if self.failure is not None:
            raise PublishError(self.failure)
        self.sent.append((topic, payload))
        if payload:
            self.retained[topic] = payload
        else:
            self.retained.pop(topic, None)

    def assignment(self, device: str) -> dict[str, Any] | None:
        """The device's retained assignment, parsed, or None."""
        payload = self.retained.get(f"outpost/v1/{device}/model")
        return None if payload is None else dict(orjson.loads(payload))


def registry(hub: Hub) -> RegistryService:
    """The app's registry."""
    service: RegistryService = hub.app.state.registry
    return service


def onnx_bytes(tmp_path: Path, tag: str, **options: Any) -> bytes:
    """A valid tiny detector; `tag` makes its bytes differ."""
    return constant_model(tmp_path / f"{tag}.onnx", tag=tag, **options).read_bytes()


def sha(data: bytes) -> str:
    """Hex sha256."""
    return hashlib.sha256(data).hexdigest()


async def push(hub: Hub, data: bytes, version: str, *, card: str | None = None) -> Any:
    """`POST /models` as root (a response)."""
    form = {"name": "det", "version": version}
    if card is not None:
        form["card"] = card
    return await hub.client.post(
        "/api/v1/models",
        headers=await hub.bearer("root"),
        files={"file": ("det.onnx", data, "application/octet-stream")},
        data=form,
    )


async def credentials(hub: Hub, device: str) -> None:
    """Give the device MQTT credentials (DEVICE_PASSWORD)."""
    async with transaction(hub.sessions) as session:
        await issue_credentials(session, device=device, password=DEVICE_PASSWORD)


_seq = iter(range(1, 1 << 30))


async def report_model(hub: Hub, device: str, data: bytes | None, version: str = "1") -> None:
    """Store the device's `state` naming `data` as its active model, as the worker would."""
    model = None if data is None else ModelRef(name="det", version=version, sha256=sha(data))
    body = DeviceState(online=True, model=model)
    await _store(hub, device, Channel.STATE, body)


async def report_rejected(hub: Hub, device: str, version: str, reason: str) -> None:
    """Store a `model_rejected` event of the device."""
    body = Event(
        ts=datetime.now(UTC),
        type=KnownEvent.MODEL_REJECTED,
        severity=Severity.WARNING,
        detail={"reason": reason, "detail": "sha256 mismatch", "name": "det", "version": version},
    )
    await _store(hub, device, Channel.EVENTS, body)


async def report_malformed(hub: Hub, device: str) -> None:
    """What an agent sends for the empty retained message of a cleared assignment."""
    body = Event(
        ts=datetime.now(UTC),
        type=KnownEvent.MODEL_REJECTED,
        severity=Severity.WARNING,
        detail={"reason": "malformed", "detail": "empty message"},
    )
    await _store(hub, device, Channel.EVENTS, body)


async def report_latency(
    hub: Hub, device: str, data: bytes, version: str, latency_ms: float, *, ago_s: float = 0
) -> None:
    """Store a detections batch made by `data` with this inference latency."""
    ts = datetime.now(UTC) - timedelta(seconds=ago_s)
    frame = FrameResult(
        ts=ts,
        frame_id=f"f{next(_seq)}",
        model=ModelRef(name="det", version=version, sha256=sha(data)),
        objects=[],
        latency_ms=latency_ms,
    )
    await _store(hub, device, Channel.DETECTIONS, DetectionBatch(frames=[frame]))


async def _store(hub: Hub, device: str, kind: Channel, body: Any) -> None:
    envelope = Envelope(
        device=device, stream="s1", seq=next(_seq), ts=datetime.now(UTC), kind=kind, body=body
    )
    async with transaction(hub.sessions) as session:
        await store_envelopes(session, envelopes=[envelope])
