"""Drift scoring: PSI against the model's baseline, computed by the hub's drift worker from
the windows agents send, published as telemetry that the default alert rule watches.

The scenario of issue 9: a device whose camera is blacked out (every frame in the darkest
brightness bin, no objects) raises a drift alert; a healthy device does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
    settings = HubSettings(data_dir=tmp_path, drift={"reference_windows": 2})
    worker = DriftWorker(settings, bus, sessions)  # type: ignore[arg-type]
    # The site is far from the training set (brighter, fewer forklifts) but steady.
    site = [0.0, 0.05, 0.25, 0.5, 0.2]
    healthy = window_points(site, {"person": 0.9, "forklift": 0.1})
    dark = window_points([1.0, 0.0, 0.0, 0.0, 0.0], {})  # no objects seen: all classes 0
    scored: dict[int, list[Envelope]] = {}
    async with bus.consumer([TELEMETRY_RAW], group="test") as consumer:
        for n in range(3):  # two windows to learn each camera's reference, then one scored
            ts = T + timedelta(minutes=n)
            sent = [
                envelope("healthy", 10 * n + 1, at(healthy[:3], ts)),  # split over two batches
                envelope("healthy", 10 * n + 2, at(healthy[3:], ts)),
                envelope("blacked-out", n + 1, at(dark if n == 2 else healthy, ts)),
                envelope("unregistered", n + 1, at(healthy, ts)),
            ]
            await bus.produce_many([(TELEMETRY_RAW, e.device.encode(), encode(e)) for e in sent])
            worker.take(await consumer.poll(max_records=100, timeout_s=1), now=100.0 * n)
            assert await worker.flush(now=100.0 * n + 1) == 0  # inside the grace period
            assert await worker.flush(now=100.0 * n + 10) == 2  # unregistered: no baseline
            scored[n] = [decode_envelope(r.value) for r in await consumer.poll(timeout_s=1)]
    assert all(e.stream == STREAM for n in scored for e in scored[n])

    def metric_of(e: Envelope, name: str) -> dict[str, float]:
        assert isinstance(e.body, TelemetryBatch)
        return {p.tags.get("hist", ""): p.value for p in e.body.points if p.metric == name}

    for n in (0, 1):  # learning: far from the training set, but no score to alert on yet
        for e in scored[n]:
            assert metric_of(e, "drift.reference_windows") == {"": n + 1}
            assert metric_of(e, "drift.psi_train")["brightness_hist"] > 0.25
            assert metric_of(e, "drift.psi") == {}
    last = {e.device: e for e in scored[2]}
    assert max(metric_of(last["healthy"], "drift.psi").values()) < 0.01
    assert metric_of(last["blacked-out"], "drift.psi")["brightness_hist"] > 2
    assert metric_of(last["blacked-out"], "drift.psi_input") == {"": pytest.approx(
        metric_of(last["blacked-out"], "drift.psi")["brightness_hist"])}  # fmt: skip

    engine, rules = Engine(offline_after_s=60), list(default_rules().values())
    raised = {
        device: [a for a in engine.on_envelope(e, rules) if isinstance(a, Raise)]
        for device, e in last.items()
    }
    assert [a.rule.name for a in raised["blacked-out"]] == ["Drift over threshold"]
    assert raised["healthy"] == []
    await bus.stop()


async def test_a_window_read_again_is_not_folded_twice_and_a_reset_relearns(
    sessions: object, tmp_path: Path
) -> None:
    from hub.drift import reference
    from hub.storage.models import DriftReference

    live = {"brightness_hist": [0.0, 1.0]}
    async with transaction(sessions) as session:  # type: ignore[arg-type]
        for window_ms in (1, 1, 2):
            ref = await reference.learn(
                session, device="healthy", camera="front", model_sha256=SHA,
                window_ms=window_ms, live=live, needed=3, now=T,
            )  # fmt: skip
            assert ref.learning
        row = await session.get(DriftReference, ("healthy", "front", SHA))
        assert row is not None
        assert (row.windows, row.last_window_ms) == (2, 2)
        assert await reference.reset(session, "healthy") == 1
        assert await session.get(DriftReference, ("healthy", "front", SHA)) is None


def at(points: list[TelemetryPoint], ts: datetime) -> list[TelemetryPoint]:
    return [p.model_copy(update={"ts": ts}) for p in points]
