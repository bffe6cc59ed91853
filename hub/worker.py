"""The worker role: bus → database, then the `ingested` watermark back to each device.

At-least-once end to end: records are stored idempotently (ON CONFLICT DO NOTHING
on (device, stream, seq)), the database transaction commits, then the bus offsets
are committed, then every device whose streams were touched gets its current
watermark (the highest contiguous seq stored). A crash anywhere repeats work,
never loses it. Periodic jobs compute 1-minute telemetry rollups and enforce
retention.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.bus.base import Bus, BusError, Record
from hub.bus.topics import DEADLETTER, TELEMETRY_AGGREGATED, TELEMETRY_RAW, TOPIC_BY_CHANNEL
from hub.settings import HubSettings
from hub.storage.db import transaction
from hub.storage.errors import StorageUnavailable
from hub.storage.repositories import (
    advance_marks,
    current_marks,
    enforce_retention,
    rollup_telemetry,
    store_deadletter,
    store_envelopes,
)
from hub.storage.rows import Uplink
from protocol import Channel, DecodeError, Envelope, Watermark, decode_envelope, encode, topic
from protocol.backoff import Backoff
from protocol.fast import decode_telemetry
from protocol.transport import NO_DELAY

logger = logging.getLogger(__name__)

WILL_STREAM = "will"
"""Stream of agents' last-will messages (see edge_agent.uplink)."""

STORED_CHANNELS = (
    Channel.TELEMETRY,
    Channel.DETECTIONS,
    Channel.EVENTS,
    Channel.STATE,
    Channel.ACKS,
    Channel.FRAMES,
)
DATA_TOPICS = tuple(TOPIC_BY_CHANNEL[c] for c in STORED_CHANNELS)
MARKS_IN_FLIGHT = 100
"""Watermarks the writer's MQTT client has unacknowledged at once."""


@dataclass
class WorkerCounters:
    """What the writer has done, for metrics and tests."""

    records: int = 0
    stored: int = 0
    duplicates: int = 0
    deadletters: int = 0
    watermarks: int = 0
    restarts: int = 0


class Writer:
    """Consumes the data topics, stores them, publishes watermarks."""

    def __init__(
        self,
        settings: HubSettings,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._settings, self._bus, self._sessions = settings, bus, sessions
        self.counters = WorkerCounters()
        self.lag: dict[str, int] = {}
        """Records on the bus not yet read, per topic, as of the last poll (for metrics)."""

    async def run(self) -> None:
        """Write until cancelled, riding out Kafka, database and broker outages.

        Any of the three going away ends the current session (consumer and MQTT
        client) and starts a new one after a backoff. Nothing is lost: offsets are
        committed only after the database commit, so the next session re-reads what
        was not yet stored, and a watermark that could not be published is published
        again when the agent re-sends.
        """
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self._session(backoff)
            except (BusError, StorageUnavailable, aiomqtt.MqttError) as exc:
                self.counters.restarts += 1
                delay = backoff.next()
                logger.warning(
                    "writer paused %.1f s: %s: %s", delay, type(exc).__name__, str(exc)[:300]
                )
                await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        topics = [*DATA_TOPICS, DEADLETTER]
        async with (
            self._bus.consumer(topics, group=self._settings.worker.group) as consumer,
            _mqtt_client(self._settings, "outpost-writer") as mqtt,
        ):
            # A batch's watermarks go out while the next batch is read and stored: one
            # batch's worth in flight at a time, and its failure ends the session.
            marking: asyncio.Task[None] | None = None
            try:
                while True:
                    records = await consumer.poll(
                        max_records=self._settings.worker.batch_max, timeout_s=1.0
                    )
                    self.lag = consumer.lag()
                    if not records:
                        continue
                    marks = await self._store(records)
                    await consumer.commit()
                    if marking is not None:
                        await marking
                    marking = asyncio.create_task(self._publish_marks(mqtt, marks))
                    backoff.reset()
            finally:
                if marking is not None:  # cancelling a finished task does nothing
                    marking.cancel()
                    await asyncio.gather(marking, return_exceptions=True)

    async def _store(self, records: Sequence[Record]) -> dict[tuple[str, str], int]:
        envelopes: list[Uplink] = []
        async with transaction(self._sessions) as session:
            for record in records:
                if record.topic.endswith(DEADLETTER):
                    await _store_deadletter_record(session, record)
                    self.counters.deadletters += 1
                    continue
                if record.topic == TELEMETRY_RAW and (fast := decode_telemetry(record.value)):
                    envelopes.append(fast)  # the bulk of the traffic, decoded in C
                    continue
                try:
                    envelopes.append(_restamp_will(decode_envelope(record.value), record))
                except DecodeError as exc:  # ingest validated it; a bug or a foreign producer
                    await store_deadletter(
                        session,
                        source=record.topic,
                        payload=record.value,
                        reason=f"writer could not decode: {exc}",
                        received_at=datetime.now(UTC),
                    )
                    self.counters.deadletters += 1
            result = await store_envelopes(session, envelopes=envelopes)
            keys = {(e.device, e.stream) for e in envelopes}
            await advance_marks(session, keys=keys)
            marks = await current_marks(session, keys=keys)
        self.counters.records += len(records)
        self.counters.stored += result.inserted
        self.counters.duplicates += result.duplicates
        return marks

    async def _publish_marks(self, mqtt: aiomqtt.Client, marks: dict[tuple[str, str], int]) -> None:
        """Every device's watermark at once: one broker round trip for the batch, not one
        per device (a batch holds one mark per stream, and a batch's marks go out only
        after the previous batch's)."""
        now = datetime.now(UTC)
        marked = [
            Watermark(device=device, stream=stream, seq=seq, at=now)
            for (device, stream), seq in marks.items()
            if seq > 0
        ]
        await asyncio.gather(
            *(mqtt.publish(topic(m.device, Channel.INGESTED), encode(m), qos=1) for m in marked)
        )
        self.counters.watermarks += len(marked)


def _restamp_will(envelope: Envelope, record: Record) -> Envelope:
    """A last will carries its connection time; it happened when the broker sent it.

    Device status keeps the newest state by timestamp, so the will is stamped with
    the bus's append time to mark the device offline after its last live state.
    """
    if envelope.stream != WILL_STREAM:
        return envelope
    return envelope.model_copy(
        update={"ts": datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)}
    )


async def _store_deadletter_record(session: AsyncSession, record: Record) -> None:
    data = orjson.loads(record.value)
    await store_deadletter(
        session,
        source=str(data.get("source", "")),
        payload=base64.b64decode(data.get("payload_b64", "")),
        reason=str(data.get("reason", "")),
        device=data.get("device"),
        received_at=datetime.fromisoformat(data["received_at"]),
    )


def _mqtt_client(settings: HubSettings, name: str) -> aiomqtt.Client:
    url = urlsplit(settings.broker.url)
    broker = settings.broker
    client = aiomqtt.Client(
        url.hostname or "127.0.0.1",
        url.port or 1883,
        username=broker.username or None,
        password=broker.password or None,
        identifier=f"{name}-{id(settings):x}",
        timeout=settings.bus.timeout_s,
        socket_options=NO_DELAY,
        max_inflight_messages=MARKS_IN_FLIGHT,
    )
    # A batch's watermarks are published together (Writer._publish_marks): don't warn.
    client.pending_calls_threshold = settings.worker.batch_max + 1
    return client


class Housekeeping:
    """Periodic jobs: 1-minute rollups (a table and `telemetry.aggregated`), retention."""

    def __init__(
        self, settings: HubSettings, bus: Bus, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._settings, self._bus, self._sessions = settings, bus, sessions

    async def run(self) -> None:
        """Run both jobs on their intervals until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self._every(self._settings.worker.rollup_interval_s, self.rollups), name="rollups"
            )
            tg.create_task(
                self._every(self._settings.worker.retention_interval_s, self.retention),
                name="retention",
            )

    @staticmethod
    async def _every(interval: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:
                logger.exception("housekeeping job failed; retrying at the next interval")

    async def rollups(self, *, now: datetime | None = None) -> int:
        """Roll up the last closed minutes and publish them; returns how many rollups."""
        now = now or datetime.now(UTC)
        until = now.replace(second=0, microsecond=0)
        since = until - timedelta(minutes=3)
        async with transaction(self._sessions) as session:
            rollups = await rollup_telemetry(session, since=since, until=until)
        records = [
            (TELEMETRY_AGGREGATED, r.device.encode(), orjson.dumps(r, default=str)) for r in rollups
        ]
        if records:
            await self._bus.produce_many(records)
        return len(rollups)

    async def retention(self, *, now: datetime | None = None) -> None:
        """Delete (and optionally archive) what is older than the retention settings."""
        cfg = self._settings.retention
        async with transaction(self._sessions) as session:
            await enforce_retention(
                session,
                now=now or datetime.now(UTC),
                raw_days=cfg.raw_days,
                rollup_days=cfg.rollup_days,
                events_days=cfg.events_days,
                frames_days=cfg.frames_days,
                archive_dir=Path(cfg.archive_dir) if cfg.archive_dir else None,
            )
