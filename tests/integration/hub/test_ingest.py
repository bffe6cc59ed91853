"""Ingest against a real Mosquitto: bad input is dead-lettered with its reason and counted,
good input is stored, and ingest keeps running."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.bus import create_bus
from hub.ingest.service import Ingest
from hub.settings import HubSettings
from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from hub.storage.models import DeadLetter, Telemetry
from hub.worker import Writer
from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, encode, topic

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def telemetry(device: str, seq: int) -> bytes:
    body = TelemetryBatch(points=[TelemetryPoint(ts=NOW, metric="battery", value=seq)])
    return encode(
        Envelope(device=device, stream="s1", seq=seq, ts=NOW, kind=Channel.TELEMETRY, body=body)
    )


async def ours(engine: AsyncEngine, a: str, b: str) -> tuple[list[str], list[float]]:
    """Dead-letter reasons and stored values of this test's devices only (the broker is shared)."""
    async with session_factory(engine)() as session:
        query = select(DeadLetter.reason).where(DeadLetter.device.in_([a, b]))
        reasons = sorted((await session.scalars(query)).all())
        values = select(Telemetry.value).where(Telemetry.device == a)
        stored = list((await session.scalars(values)).all())
    return reasons, stored


@pytest.mark.timeout(60)
async def test_bad_messages_are_dead_lettered_and_good_ones_stored(
    tmp_path: Path, mqtt_url: str, run_id: str
) -> None:
    settings = HubSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "broker": {"kind": "external", "url": mqtt_url, "username": ""},
            "ingest": {
                "shared_group": f"ingest-dl-{run_id}",
                "max_payload_bytes": 4096,
                "session_expiry_s": 60,
            },
            "worker": {"group": f"writers-dl-{run_id}"},
        }
    )
    engine = create_engine(settings.database.url)
    await migrate(engine)
    bus = create_bus("memory")
    await bus.start()
    ingest = Ingest(settings, bus)
    writer = Writer(settings, bus, session_factory(engine))
    a, b = f"dl-{run_id}-a", f"dl-{run_id}-b"
    host = urlsplit(mqtt_url)
    async with asyncio.TaskGroup() as tg:
        ingest_task = tg.create_task(ingest.run(), name="ingest")
        writer_task = tg.create_task(writer.run(), name="writer")
        await asyncio.wait_for(ingest.connected(), 10)
        async with aiomqtt.Client(host.hostname or "127.0.0.1", host.port or 1883) as client:
            await client.publish(topic(a, Channel.TELEMETRY), b"{not json", qos=1)
            await client.publish(topic(b, Channel.TELEMETRY), telemetry(a, 1), qos=1)
            await client.publish(topic(a, Channel.TELEMETRY), b"x" * 5000, qos=1)
            await client.publish(topic(a, Channel.TELEMETRY), telemetry(a, 1), qos=1)
        for _ in range(200):
            reasons, stored = await ours(engine, a, b)
            if len(reasons) >= 3 and stored:
                break
            await asyncio.sleep(0.05)
        ingest_task.cancel()
        writer_task.cancel()
    reasons, stored = await ours(engine, a, b)
    await bus.stop()
    await engine.dispose()
    assert [r.split(":")[0] for r in reasons] == ["device mismatch", "invalid payload", "oversized"]
    assert list(stored) == [1.0]
    for reason in ("invalid payload", "device mismatch", "oversized"):
        assert ingest.counters.reasons.get(reason, 0) >= 1
    assert ingest.counters.routed >= 1  # ours, plus whatever else the shared dev broker carries
