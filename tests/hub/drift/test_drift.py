"""Drift scoring: PSI against the model's baseline, computed by the hub's drift worker from
the windows agents send, published as telemetry that the default alert rule watches.

The scenario of issue 9: a device whose camera is blacked out (every frame in the darkest
brightness bin, no objects) raises a drift alert; a healthy device does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.alerts.engine import Engine, Raise
from hub.bus.memory import InMemoryBus
from hub.bus.topics import TELEMETRY_RAW
from hub.drift.psi import Window, psi, scores
from hub.drift.worker import STREAM, DriftWorker
from hub.settings import HubSettings
from hub.storage.db import create_engine, session_factory, transaction
from hub.storage.migrate import migrate
from hub.storage.models import DeviceStatus, ModelVersionRow
from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, decode_envelope, encode
from tests.hub.alerts.support import default_rules

SHA = "c" * 64
CLASSES = ["person", "forklift"]
BASELINE = {
    "class_frac": [0.7, 0.3],
    "conf_hist": [0.0, 0.1, 0.3, 0.6],
    "brightness_hist": [0.05, 0.2, 0.5, 0.2, 0.05],
}
T = datetime(2026, 11, 27, 12, tzinfo=UTC)


def window_points(brightness: list[float], classes: dict[str, float]) -> list[TelemetryPoint]:
    tags = {"camera": "front"}
    points = [TelemetryPoint(ts=T, metric="drift.frames", value=50, tags=tags)]
    points += [
        TelemetryPoint(
            ts=T, metric="drift.brightness_hist", value=v, tags={**tags, "bin": f"{i:02d}"}
        )
        for i, v in enumerate(brightness)
    ]
    points += [
        TelemetryPoint(ts=T, metric="drift.class_frac", value=v, tags={**tags, "cls": c})
        for c, v in classes.items()
    ]
    return points


def envelope(device: str, seq: int, points: list[TelemetryPoint]) -> Envelope:
    return Envelope(
        device=device, stream="s1", seq=seq, ts=T, kind=Channel.TELEMETRY,
        body=TelemetryBatch(points=points),
    )  # fmt: skip


def test_psi_reads_as_expected() -> None:
    assert psi(BASELINE["brightness_hist"], BASELINE["brightness_hist"]) == 0.0
    dark = [1.0, 0.0, 0.0, 0.0, 0.0]
    assert psi(dark, BASELINE["brightness_hist"]) > 2
    with pytest.raises(ValueError, match="bins"):
        psi([1.0], [0.5, 0.5])
    window = Window("amr-1", 0)
    for point in window_points(BASELINE["brightness_hist"], {"person": 0.7, "forklift": 0.3}):
        window.add(point.metric, point.tags, point.value)
    assert scores(window, CLASSES, BASELINE) == {"brightness_hist": 0.0, "class_frac": 0.0}
    assert window.tags == {"camera": "front"}


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[object]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    factory = session_factory(engine)
    async with transaction(factory) as session:
        session.add(
            ModelVersionRow(
                name="det", version="1", sha256=SHA, size=10, card={},
                manifest={"classes": CLASSES, "baseline": BASELINE},
                created_by="ml", created_at=T,
            )
        )  # fmt: skip
        for device in ("healthy", "blacked-out", "unregistered"):
            model = {
                "name": "det",
                "version": "1",
                "sha256": SHA if device != "unregistered" else "d" * 64,
            }
            session.add(
                DeviceStatus(
                    device=device, online=True, last_seen=T, state_ts=T,
                    agent_version="1", state={"online": True, "model": model},
                )
            )  # fmt: skip
    try:
        yield factory
    finally:
        await engine.dispose()


async def test_a_blacked_out_camera_raises_a_drift_alert_and_a_healthy_one_does_not(
    sessions: object, tmp_path: Path
) -> None:
    bus = InMemoryBus(partitions=1)
    await bus.start()
    settings = HubSettings(data_dir=tmp_path)
    worker = DriftWorker(settings, bus, sessions)  # type: ignore[arg-type]
    healthy = window_points([0.06, 0.2, 0.48, 0.2, 0.06], {"person": 0.68, "forklift": 0.32})
    dark = window_points([1.0, 0.0, 0.0, 0.0, 0.0], {})  # no objects seen: all classes 0
    # One window of the healthy device arrives split over two batches.
    batches = [
        envelope("healthy", 1, healthy[:3]),
        envelope("healthy", 2, healthy[3:]),
        envelope("blacked-out", 1, dark),
        envelope("unregistered", 1, healthy),
    ]
    await bus.produce_many([(TELEMETRY_RAW, e.device.encode(), encode(e)) for e in batches])
    async with bus.consumer([TELEMETRY_RAW], group="test") as consumer:
        worker.take(await consumer.poll(max_records=100, timeout_s=1), now=0.0)
        assert await worker.flush(now=1.0) == 0  # still inside the grace period
        assert await worker.flush(now=10.0) == 2  # the unregistered model has no baseline
        scored = [decode_envelope(r.value) for r in await consumer.poll(timeout_s=1)]
    assert {e.device for e in scored} == {"healthy", "blacked-out"}
    assert all(e.stream == STREAM and e.seq == int(T.timestamp() * 1000) for e in scored)

    engine, rules = Engine(offline_after_s=60), list(default_rules().values())
    raised = {
        e.device: [a for a in engine.on_envelope(e, rules) if isinstance(a, Raise)] for e in scored
    }
    assert [a.rule.name for a in raised["blacked-out"]] == ["Drift over threshold"]
    assert raised["healthy"] == []
    psi_of = {
        e.device: {p.tags["hist"]: p.value for p in e.body.points if p.metric == "drift.psi"}  # type: ignore[union-attr]
        for e in scored
    }
    assert max(psi_of["healthy"].values()) < 0.1
    assert psi_of["blacked-out"]["brightness_hist"] > 0.25
    await bus.stop()
