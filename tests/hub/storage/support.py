"""Helpers shared by the storage tests on SQLite and PostgreSQL: envelopes and a `Db`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.storage.models import Base
from hub.storage.repositories import StoreResult, advance_marks, store_envelopes
from protocol.models import (
    Ack,
    AckStatus,
    DetectedObject,
    DetectionBatch,
    DeviceState,
    Envelope,
    Event,
    Frame,
    FramePurpose,
    FrameResult,
    ModelRef,
    Severity,
    TelemetryBatch,
    TelemetryPoint,
)
from protocol.topics import Channel

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0fake"
MODEL = ModelRef(name="yolo-sim", version="3", sha256="ab" * 32)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def envelope(
    kind: Channel,
    body: Any,
    *,
    seq: int,
    device: str = "amr-1",
    stream: str = "s1",
    ts: datetime | None = None,
) -> Envelope:
    """An envelope of `kind` around `body`."""
    return Envelope(device=device, stream=stream, seq=seq, ts=ts or at(seq), kind=kind, body=body)


def telemetry(
    seq: int,
    *values: float,
    metric: str = "cpu",
    device: str = "amr-1",
    stream: str = "s1",
    ts: datetime | None = None,
) -> Envelope:
    """A telemetry envelope, one point per value, 1 s apart from `ts` (default: T0 + seq s)."""
    start = ts or at(seq)
    points = [
        TelemetryPoint(ts=start + timedelta(seconds=i), metric=metric, value=v, tags={"i": str(i)})
        for i, v in enumerate(values or (1.0,))
    ]
    return envelope(
        Channel.TELEMETRY,
        TelemetryBatch(points=points),
        seq=seq,
        device=device,
        stream=stream,
        ts=start,
    )


def detections(seq: int, *, device: str = "amr-1", ts: datetime | None = None) -> Envelope:
    """Two frame results: a person and a forklift, then nothing."""
    box = {"x1": 0.1, "y1": 0.1, "x2": 0.4, "y2": 0.5}
    objects = [
        DetectedObject(cls="person", conf=0.9, box=box),
        DetectedObject(cls="forklift", conf=0.7, box=box),
        DetectedObject(cls="person", conf=0.6, box=box),
    ]
    start = ts or at(seq)
    frames = [
        FrameResult(
            ts=start,
            frame_id="f1",
            camera="front",
            model=MODEL,
            objects=objects,
            latency_ms=12.5,
            zones={"danger": [0]},
        ),
        FrameResult(
            ts=start + timedelta(seconds=1), frame_id="f2", model=MODEL, objects=[], latency_ms=11.0
        ),
    ]
    return envelope(
        Channel.DETECTIONS, DetectionBatch(frames=frames), seq=seq, device=device, ts=start
    )


def event(seq: int, *, device: str = "amr-1", ts: datetime | None = None) -> Envelope:
    """An e-stop event."""
    body = Event(
        ts=ts or at(seq),
        type="estop_engaged",
        severity=Severity.CRITICAL,
        detail={"source": "hub", "speed": 0.4},
    )
    return envelope(Channel.EVENTS, body, seq=seq, device=device, ts=ts)


def ack(
    seq: int, *, cmd_id: str = "c1", device: str = "amr-1", ts: datetime | None = None
) -> Envelope:
    """A `rejected` command ack."""
    body = Ack(
        cmd_id=cmd_id, status=AckStatus.REJECTED, at=ts or at(seq), detail="late", reason="expired"
    )
    return envelope(Channel.ACKS, body, seq=seq, device=device, ts=ts)


def state(
    seq: int,
    *,
    ts: datetime,
    online: bool = True,
    version: str | None = "1.2",
    device: str = "amr-1",
    stream: str = "s1",
) -> Envelope:
    """A `state` envelope; `online=False, version=None, stream="will"` is a last will."""
    body = DeviceState(online=online, agent_version=version)
    return envelope(Channel.STATE, body, seq=seq, device=device, stream=stream, ts=ts)


def will(*, ts: datetime, device: str = "amr-1") -> Envelope:
    """A last will: stream `will`, seq = connection time in ms."""
    return state(
        int(ts.timestamp() * 1000), ts=ts, online=False, version=None, device=device, stream="will"
    )


def frame(seq: int, *, device: str = "amr-1") -> Envelope:
    """A thin device's JPEG frame."""
    body = Frame(
        ts=at(seq),
        frame_id=f"f{seq}",
        purpose=FramePurpose.INFERENCE,
        width=4,
        height=4,
        jpeg=JPEG,
    )
    return envelope(Channel.FRAMES, body, seq=seq, device=device)


@dataclass
class Db:
    """A migrated database under test."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    async def store(self, *envelopes: Envelope) -> StoreResult:
        """store_envelopes in a transaction of its own."""
        async with self.sessions() as session, session.begin():
            return await store_envelopes(session, envelopes=envelopes)

    async def advance(self, *keys: tuple[str, str]) -> dict[tuple[str, str], int]:
        """advance_marks in a transaction of its own."""
        async with self.sessions() as session, session.begin():
            return await advance_marks(session, keys=keys)

    async def count(self, table: str) -> int:
        """Rows in `table`."""
        async with self.sessions() as session:
            model = Base.metadata.tables[table]
            return int(
                (await session.execute(select(func.count()).select_from(model))).scalar_one()
            )

    async def rows(self, table: str, *order_by: str) -> list[dict[str, Any]]:
        """Every row of `table` as dicts, ordered."""
        model = Base.metadata.tables[table]
        query = select(model).order_by(*(model.c[c] for c in order_by))
        async with self.sessions() as session:
            return [dict(r._mapping) for r in await session.execute(query)]

    async def execute(self, sql: str, **params: Any) -> None:
        """Raw SQL in a transaction (to set up odd states)."""
        async with self.sessions() as session, session.begin():
            await session.execute(text(sql), params)

    async def clear(self) -> None:
        """Empty every table."""
        async with self.sessions() as session, session.begin():
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(table.delete())


def keys(envelopes: Sequence[Envelope]) -> set[tuple[str, str]]:
    """The (device, stream) keys of a batch."""
    return {(e.device, e.stream) for e in envelopes}
