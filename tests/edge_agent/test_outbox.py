"""The outbox keeps what it acknowledged, numbers without gaps, drops only what it may."""

from __future__ import annotations

import asyncio
import doctest
import io
import json
import os
import signal
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import edge_agent.outbox as outbox_module
from edge_agent.errors import AgentError
from edge_agent.outbox import (
    PRIORITY_BY_CHANNEL,
    ROW_OVERHEAD_BYTES,
    Outbox,
    OutboxError,
    OutgoingMessage,
    export_rows,
    read_stats,
)
from outpost.cli import app as outpost_app
from protocol import (
    Ack,
    AckStatus,
    Box,
    Channel,
    DetectedObject,
    DetectionBatch,
    DeviceState,
    Envelope,
    Event,
    Frame,
    FrameResult,
    ModelRef,
    PriorityClass,
    TelemetryBatch,
    TelemetryPoint,
    decode_envelope,
    encode,
)
from protocol.models import WireModel
from tests.protocol.strategies import BODIES, timestamps

DEVICE = "amr-7"
REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SAFETY, DETECTIONS, TELEMETRY = (
    PriorityClass.SAFETY,
    PriorityClass.DETECTIONS,
    PriorityClass.TELEMETRY,
)
NEVER = 0.0  # resend_before that re-sends nothing
CLASS_CHANNEL = {
    SAFETY: Channel.EVENTS,
    DETECTIONS: Channel.DETECTIONS,
    TELEMETRY: Channel.TELEMETRY,
}


class Clock:
    """A settable clock, so that no test sleeps."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


async def open_outbox(path: Path, clock: Clock, **kwargs: object) -> Outbox:
    return await Outbox.open(path, device=DEVICE, clock=clock, **kwargs)  # type: ignore[arg-type]


def body(n: int, size: int = 36) -> bytes:
    """A JSON body of exactly `size` bytes that says which row it is."""
    raw = b'{"n":%d,"pad":""}' % n
    return raw[:-2] + b"x" * (size - len(raw)) + b'"}'


def number(message: OutgoingMessage) -> int:
    """The `n` of a claimed message's body."""
    return int(orjson.loads(message.payload)["body"]["n"])


async def claim_all(
    outbox: Outbox, *, live_since: float = 0.0, resend_before: float = NEVER
) -> list[OutgoingMessage]:
    """Everything claimable now (no backlog limit)."""
    return await outbox.claim(
        limit=1_000_000, live_since=live_since, backlog_limit=1_000_000, resend_before=resend_before
    )


def exported(path: Path) -> list[dict[str, object]]:
    out = io.StringIO()
    export_rows(path, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


# --- put, claim, confirm ------------------------------------------------------------------


async def test_put_claim_confirm_deletes_confirmed_rows(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    for n in range(3):
        await outbox.put(Channel.TELEMETRY, body(n))
    claimed = await claim_all(outbox)
    assert [(m.seq, m.first_sent, number(m)) for m in claimed] == [
        (1, True, 0),
        (2, True, 1),
        (3, True, 2),
    ]

    assert await outbox.confirm(outbox.stream, 2) == 2
    stats = await outbox.stats()
    assert (stats.depth, stats.inflight, stats.unsent) == (1, 1, 0)
    assert await outbox.confirm(outbox.stream, 2) == 0  # idempotent
    assert await outbox.confirm(outbox.stream, 1) == 0  # a lower watermark is harmless
    assert await outbox.confirm("another-stream", 3) == 0  # another incarnation's watermark
    assert (await outbox.stats()).depth == 1
    assert await outbox.confirm(outbox.stream, 3) == 1
    assert (await outbox.stats()).depth == 0
    await outbox.close()


async def test_a_watermark_ahead_of_the_numbering_does_not_hide_later_rows(
    db: Path, clock: Clock
) -> None:
    outbox = await open_outbox(db, clock)
    assert await outbox.confirm(outbox.stream, 5) == 0  # nothing numbered yet
    await outbox.put_many([(Channel.EVENTS, body(n)) for n in range(5)])
    await claim_all(outbox)
    assert await outbox.confirm(outbox.stream, 5) == 5
    await outbox.close()


async def test_stats_count_logical_bytes_and_oldest_row(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock, cap_bytes=1 << 20)
    empty = await outbox.stats()
    assert (empty.depth, empty.bytes, empty.oldest_ts, empty.cap_bytes) == (0, 0, None, 1 << 20)
    await outbox.put(Channel.EVENTS, body(0, size=40))
    clock.advance(5)
    await outbox.put(Channel.TELEMETRY, body(1, size=60))
    stats = await outbox.stats()
    assert stats.bytes == 100 + 2 * ROW_OVERHEAD_BYTES
    assert stats.oldest_ts == datetime.fromtimestamp(T0, UTC)
    assert stats.dropped == {SAFETY: 0, DETECTIONS: 0, TELEMETRY: 0}
    await outbox.close()


async def test_seq_and_stream_survive_reopen_and_a_new_file_is_a_new_stream(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "outbox.db"
    outbox = await open_outbox(path, clock)
    stream = outbox.stream
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(3)])
    assert [m.seq for m in await claim_all(outbox)] == [1, 2, 3]
    await outbox.confirm(stream, 3)
    await outbox.close()

    again = await open_outbox(path, clock)
    assert again.stream == stream
    await again.put(Channel.TELEMETRY, body(3))
    assert [m.seq for m in await claim_all(again)] == [
        4
    ]  # never reused, even though all were deleted
    await again.close()

    other = await open_outbox(tmp_path / "other.db", clock)
    assert other.stream != stream
    assert len(other.stream) == 16
    int(other.stream, 16)
    await other.close()


async def test_reopen_resends_published_but_unconfirmed_rows(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(3)])
    first = await claim_all(outbox)
    await outbox.confirm(outbox.stream, 1)
    await outbox.close()

    clock.advance(1)
    again = await open_outbox(db, clock)
    assert (await again.stats()).inflight == 2
    resent = await claim_all(again, resend_before=clock())
    assert [(m.seq, m.first_sent) for m in resent] == [(2, False), (3, False)]
    assert [m.payload for m in resent] == [m.payload for m in first[1:]]  # byte for byte
    await again.close()


async def test_resend_waits_for_resend_before(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    await outbox.put(Channel.TELEMETRY, body(0))
    [sent] = await claim_all(outbox)
    clock.advance(30)
    # Published at T0: not yet due while resend_before <= T0.
    assert await claim_all(outbox, resend_before=T0) == []
    [again] = await claim_all(outbox, resend_before=T0 + 0.001)
    assert (again.seq, again.first_sent, again.payload) == (sent.seq, False, sent.payload)
    # The re-send restarted the timer.
    assert await claim_all(outbox, resend_before=T0 + 1) == []
    assert len(await claim_all(outbox, resend_before=clock() + 0.001)) == 1
    await outbox.close()


async def test_resend_limit_takes_the_lowest_seqs_first(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(10)])
    await claim_all(outbox)  # seq 1..10 published
    await outbox.confirm(outbox.stream, 2)
    clock.advance(30)
    due = clock()
    first = await outbox.claim(
        limit=100, live_since=due, backlog_limit=0, resend_before=due, resend_limit=3
    )
    assert [(m.seq, m.first_sent) for m in first] == [(3, False), (4, False), (5, False)]
    none = await outbox.claim(
        limit=100, live_since=due, backlog_limit=0, resend_before=due, resend_limit=0
    )
    assert none == []
    rest = await outbox.claim(limit=100, live_since=due, backlog_limit=0, resend_before=due)
    assert [m.seq for m in rest] == [6, 7, 8, 9, 10]  # the three above were sent at `due`
    await outbox.close()


async def test_claim_order_safety_live_resends_then_bounded_backlog(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    await outbox.put(Channel.TELEMETRY, body(0))
    await outbox.put(Channel.DETECTIONS, body(1))
    [a, b] = await claim_all(outbox)  # seq 1, 2
    clock.advance(10)
    for n in range(2, 6):  # backlog: enqueued before the link came back
        await outbox.put(Channel.TELEMETRY, body(n))
        clock.advance(1)
    live_since = clock()
    await outbox.put(Channel.TELEMETRY, body(6))  # enqueued exactly at live_since: live
    clock.advance(1)
    await outbox.put(Channel.DETECTIONS, body(7))
    await outbox.put(Channel.ACKS, body(8))  # newest of all, but safety goes first
    await outbox.put(Channel.EVENTS, body(9))

    claimed = await outbox.claim(
        limit=100, live_since=live_since, backlog_limit=2, resend_before=clock()
    )
    assert [number(m) for m in claimed] == [8, 9, 6, 7, 0, 1, 2, 3]
    assert [m.first_sent for m in claimed] == [True] * 4 + [False] * 2 + [True] * 2
    assert [m.backlog for m in claimed] == [False] * 6 + [True] * 2
    assert [m.seq for m in claimed] == [3, 4, 5, 6, a.seq, b.seq, 7, 8]  # numbered as returned

    rest = await outbox.claim(
        limit=100, live_since=live_since, backlog_limit=0, resend_before=NEVER
    )
    assert rest == []  # backlog waits for its allowance
    rest = await outbox.claim(limit=1, live_since=live_since, backlog_limit=5, resend_before=NEVER)
    assert [number(m) for m in rest] == [4]  # and `limit` caps the total
    await outbox.close()


async def test_resends_take_the_room_live_data_leaves(db: Path, clock: Clock) -> None:
    """A hub that owes confirmations for many rows (after an outage) must not hold the live
    data back behind all their re-sends."""
    outbox = await open_outbox(db, clock)
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(3)])
    await claim_all(outbox)
    await outbox.put(Channel.EVENTS, body(3))
    await outbox.put(Channel.TELEMETRY, body(4))
    claimed = await outbox.claim(limit=4, live_since=0, backlog_limit=10, resend_before=T0 + 1)
    assert [number(m) for m in claimed] == [3, 4, 0, 1]
    await outbox.close()


# --- the envelope ------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
MODEL = ModelRef(name="outpost-sim-detector", version="1.0.0", sha256="ab" * 32)
SAMPLES: dict[Channel, WireModel] = {
    Channel.TELEMETRY: TelemetryBatch(
        points=[TelemetryPoint(ts=NOW, metric="cpu.load", value=0.42, tags={"unit": "ratio"})]
    ),
    Channel.DETECTIONS: DetectionBatch(
        frames=[
            FrameResult(
                ts=NOW,
                frame_id="cam0-1",
                model=MODEL,
                objects=[
                    DetectedObject(cls="person", conf=0.9, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.6))
                ],
                latency_ms=21.5,
                zones={"danger": [0]},
            )
        ]
    ),
    Channel.EVENTS: Event(ts=NOW, type="estop_engaged", detail={"source": "hub"}),
    Channel.STATE: DeviceState(online=True, agent_version="0.1.0"),
    Channel.ACKS: Ack(cmd_id="c-1", status=AckStatus.DONE, at=NOW),
    Channel.FRAMES: Frame(
        ts=NOW, frame_id="f-1", width=640, height=480, jpeg=b"\xff\xd8\xff\xe0fake"
    ),
}


@pytest.mark.parametrize("channel", sorted(SAMPLES))
async def test_payload_is_the_envelope_pydantic_would_write(
    db: Path, clock: Clock, channel: Channel
) -> None:
    clock.now = T0 + 0.25
    outbox = await open_outbox(db, clock)
    await outbox.put(channel, encode(SAMPLES[channel]))
    [message] = await claim_all(outbox)

    envelope = decode_envelope(message.payload)
    assert envelope == Envelope(
        device=DEVICE,
        stream=outbox.stream,
        seq=1,
        ts=datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC),
        kind=channel,
        body=SAMPLES[channel],
    )
    assert message.payload == encode(envelope)  # the same bytes, not just the same meaning
    assert message.channel is channel
    await outbox.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channel=st.sampled_from(sorted(BODIES)),
    data=st.data(),
    ts=timestamps,
)
def test_payload_round_trips_any_body_and_timestamp(
    channel: Channel, data: st.DataObject, ts: datetime
) -> None:
    model = data.draw(BODIES[channel])

    async def scenario(path: Path) -> OutgoingMessage:
        async with await Outbox.open(path, device=DEVICE) as outbox:
            await outbox.put(channel, encode(model), ts=ts)
            [message] = await claim_all(outbox)
            return message

    with tempfile.TemporaryDirectory() as tmp:
        message = asyncio.run(scenario(Path(tmp) / "outbox.db"))
    envelope = decode_envelope(message.payload)
    assert (envelope.ts, envelope.kind, envelope.body) == (ts, channel, model)
    assert message.payload == encode(envelope)


async def test_payload_renders_the_timestamp_in_utc(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    local = datetime(2026, 3, 4, 5, 6, 7, 890_123, tzinfo=timezone(timedelta(hours=2)))
    await outbox.put(Channel.EVENTS, encode(SAMPLES[Channel.EVENTS]), ts=local)
    await outbox.put(
        Channel.EVENTS, encode(SAMPLES[Channel.EVENTS]), ts=local.replace(microsecond=0)
    )
    first, second = await claim_all(outbox)
    assert b'"ts":"2026-03-04T03:06:07.890123Z"' in first.payload
    assert b'"ts":"2026-03-04T03:06:07Z"' in second.payload
    await outbox.close()


async def test_refuses_what_cannot_travel_uplink(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    with pytest.raises(OutboxError, match="cannot buffer channel"):
        await outbox.put(Channel.CMD, b"{}")
    with pytest.raises(OutboxError, match="timezone-aware"):
        await outbox.put(Channel.EVENTS, b"{}", ts=datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(OutboxError, match="cannot buffer channel"):
        await outbox.put_many([(Channel.EVENTS, b"{}"), (Channel.MODEL, b"{}")])
    assert (await outbox.stats()).depth == 0
    await outbox.close()
    with pytest.raises(OutboxError, match="closed"):
        await outbox.put(Channel.EVENTS, b"{}")
    assert issubclass(OutboxError, AgentError)


async def test_open_refuses_bad_arguments_and_another_devices_file(db: Path, clock: Clock) -> None:
    with pytest.raises(OutboxError, match="device id"):
        await Outbox.open(db, device="Not A Device")
    with pytest.raises(OutboxError, match="synchronous"):
        await Outbox.open(db, device=DEVICE, synchronous="OFF")  # type: ignore[arg-type]
    await (await open_outbox(db, clock)).close()
    with pytest.raises(OutboxError, match="holds messages of device 'amr-7'"):
        await Outbox.open(db, device="amr-8")


def test_priority_classes_follow_the_design() -> None:
    assert PRIORITY_BY_CHANNEL == {
        Channel.EVENTS: SAFETY,
        Channel.ACKS: SAFETY,
        Channel.STATE: SAFETY,
        Channel.DETECTIONS: DETECTIONS,
        Channel.FRAMES: DETECTIONS,
        Channel.TELEMETRY: TELEMETRY,
    }


# --- the size cap ------------------------------------------------------------------------
# Bodies of 36 bytes + 64 of overhead: every row counts exactly 100 bytes.


def numbers_left(path: Path, cls: PriorityClass) -> list[int]:
    return [
        int(row["body"]["n"])  # type: ignore[index]
        for row in exported(path)
        if row["class"] == cls.value
    ]


async def test_telemetry_is_downsampled_before_anything_is_dropped(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock, cap_bytes=10_000, downsample_at=0.8)
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(80)])
    assert (await outbox.stats()).dropped[TELEMETRY] == 0  # 8,000 bytes: at the threshold

    await outbox.put(Channel.TELEMETRY, body(80))  # 8,100 > 8,000: thin the older half
    stats = await outbox.stats()
    older_half_kept = list(range(0, 40, 2))
    assert numbers_left(db, TELEMETRY) == older_half_kept + list(range(40, 81))
    assert stats.dropped == {SAFETY: 0, DETECTIONS: 0, TELEMETRY: 20}
    assert (stats.depth, stats.bytes) == (61, 6_100)
    await outbox.close()


async def test_over_the_cap_telemetry_goes_then_detections_and_safety_never(
    db: Path, clock: Clock
) -> None:
    outbox = await open_outbox(db, clock, cap_bytes=10_000, downsample_at=0.8)
    await outbox.put_many([(Channel.DETECTIONS, body(n)) for n in range(50)])
    await outbox.put_many([(Channel.TELEMETRY, body(100 + n)) for n in range(20)])
    await outbox.put_many([(Channel.EVENTS, body(200 + n)) for n in range(40)])
    # 11,000 bytes: thinning drops 5 telemetry rows, then the 5 oldest go to reach the cap.
    assert numbers_left(db, TELEMETRY) == [*range(110, 120)]
    assert (await outbox.stats()).bytes == 10_000

    await outbox.put_many([(Channel.ACKS, body(300 + n)) for n in range(20)])
    # 12,000: thinning drops 2, the 8 other telemetry rows go, then the 10 oldest detections.
    stats = await outbox.stats()
    assert numbers_left(db, TELEMETRY) == []
    assert numbers_left(db, DETECTIONS) == [*range(10, 50)]
    assert len(numbers_left(db, SAFETY)) == 60
    assert stats.dropped == {SAFETY: 0, DETECTIONS: 10, TELEMETRY: 20}
    assert stats.bytes == 10_000

    await outbox.put_many([(Channel.STATE, body(400 + n)) for n in range(100)])
    # Safety alone is over the cap: it is kept, everything else is gone.
    stats = await outbox.stats()
    assert numbers_left(db, DETECTIONS) == []
    assert len(numbers_left(db, SAFETY)) == 160
    assert stats.dropped == {SAFETY: 0, DETECTIONS: 50, TELEMETRY: 20}
    assert stats.bytes == 16_000 > stats.cap_bytes
    await outbox.close()

    # The counters survive a restart, and a reader sees them too.
    assert read_stats(db).dropped == stats.dropped
    again = await open_outbox(db, clock, cap_bytes=10_000)
    assert (await again.stats()).dropped == stats.dropped
    await again.close()


async def test_published_rows_are_never_dropped(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock, cap_bytes=5_000, downsample_at=0.5)
    await outbox.put_many([(Channel.TELEMETRY, body(n)) for n in range(10)])
    published = await claim_all(outbox)
    await outbox.put_many([(Channel.TELEMETRY, body(100 + n)) for n in range(200)])

    stats = await outbox.stats()
    assert stats.dropped[TELEMETRY] > 0
    assert stats.inflight == 10
    assert set(range(10)) <= set(numbers_left(db, TELEMETRY))
    claimed = await claim_all(outbox, resend_before=clock() + 1)
    again = [m.seq for m in claimed if not m.first_sent]
    fresh = [m.seq for m in claimed if m.first_sent]
    assert again == [m.seq for m in published]
    # The unnumbered survivors are numbered right after: no gap for the hub's watermark.
    assert fresh == list(range(11, 11 + len(fresh)))
    await outbox.close()


# --- batching, concurrency, failures --------------------------------------------------------


async def test_two_thousand_concurrent_puts_all_land_as_distinct_rows(db: Path) -> None:
    outbox = await Outbox.open(db, device=DEVICE)
    await asyncio.gather(*(outbox.put(Channel.TELEMETRY, body(n)) for n in range(2000)))
    stats = await outbox.stats()
    assert stats.depth == 2000
    claimed = await claim_all(outbox)
    assert sorted(number(m) for m in claimed) == list(range(2000))
    assert [m.seq for m in claimed] == list(range(1, 2001))
    await outbox.close()


async def test_close_writes_pending_puts(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock)
    puts = [asyncio.create_task(outbox.put(Channel.EVENTS, body(n))) for n in range(50)]
    await asyncio.sleep(0)  # the puts are pending, not yet written
    await outbox.close()
    await asyncio.gather(*puts)
    assert read_stats(db).depth == 50


async def test_a_cancelled_put_neither_withdraws_its_row_nor_fails_the_batch(
    db: Path, clock: Clock
) -> None:
    outbox = await open_outbox(db, clock)
    puts = [asyncio.create_task(outbox.put(Channel.EVENTS, body(n))) for n in range(3)]
    await asyncio.sleep(0)
    puts[1].cancel()
    results = await asyncio.gather(*puts, return_exceptions=True)
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert (await outbox.stats()).depth == 3
    await outbox.close()


async def test_a_failed_write_fails_every_put_of_the_batch_and_the_next_one_succeeds(
    db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "BUSY_TIMEOUT_S", 0.05)
    outbox = await open_outbox(db, clock)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    results = await asyncio.gather(
        *(outbox.put(Channel.EVENTS, body(n)) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, OutboxError) and "locked" in str(r) for r in results)
    assert len({id(r) for r in results}) == 5  # each caller gets its own error
    blocker.execute("ROLLBACK")
    blocker.close()

    await outbox.put(Channel.EVENTS, body(5))
    stats = await outbox.stats()
    assert (stats.depth, stats.bytes) == (1, 100)  # the failed batch left no trace
    await outbox.close()


async def test_readers_work_while_the_agent_writes(db: Path) -> None:
    outbox = await Outbox.open(db, device=DEVICE)
    await outbox.put(Channel.EVENTS, body(0))

    async def writer() -> None:
        for start in range(1, 3001, 100):
            await asyncio.gather(
                *(outbox.put(Channel.TELEMETRY, body(n)) for n in range(start, start + 100))
            )

    def reader() -> list[int]:
        depths = []
        for _ in range(20):
            depths.append(read_stats(db).depth)
            out = io.StringIO()
            count = export_rows(db, out, limit=500)
            lines = out.getvalue().splitlines()
            assert count == len(lines) <= 500
            assert all(json.loads(line)["stream"] == outbox.stream for line in lines)
        return depths

    _, depths = await asyncio.gather(writer(), asyncio.to_thread(reader))
    assert depths == sorted(depths)  # a reader sees whole transactions, never going back
    assert depths[-1] <= 3001
    assert read_stats(db).depth == 3001
    await outbox.close()


# --- reading from outside the agent ------------------------------------------------------------


async def test_read_stats_and_export_rows_describe_the_rows(db: Path, clock: Clock) -> None:
    outbox = await open_outbox(db, clock, cap_bytes=1 << 20)
    await outbox.put(Channel.EVENTS, encode(SAMPLES[Channel.EVENTS]))
    await outbox.put(Channel.TELEMETRY, b"\x00not json")
    clock.advance(2)
    await outbox.claim(limit=1, live_since=0, backlog_limit=0, resend_before=NEVER)
    live = await outbox.stats()
    await outbox.close()

    assert read_stats(db) == live
    assert (live.depth, live.inflight, live.unsent) == (2, 1, 1)
    event, telemetry = exported(db)
    assert event == {
        "id": 1,
        "stream": live.stream,
        "seq": 1,
        "kind": "events",
        "class": "safety",
        "ts": "2026-01-01T00:00:00Z",
        "enqueued_at": "2026-01-01T00:00:00+00:00",
        "sent_at": "2026-01-01T00:00:02+00:00",
        "bytes": len(encode(SAMPLES[Channel.EVENTS])),
        "body": orjson.loads(encode(SAMPLES[Channel.EVENTS])),
    }
    assert telemetry["seq"] is None
    assert telemetry["body_base64"] == "AG5vdCBqc29u"
    out = io.StringIO()
    assert export_rows(db, out, limit=1) == 1


def test_readers_say_plainly_when_there_is_no_outbox(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="no outbox at"):
        read_stats(tmp_path / "missing.db")
    with pytest.raises(OutboxError, match="no outbox at"):
        export_rows(tmp_path / "missing.db", io.StringIO())
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot read outbox"):
        read_stats(tmp_path / "junk.db")


async def test_a_newer_schema_is_refused(db: Path, clock: Clock) -> None:
    await (await open_outbox(db, clock)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(OutboxError, match="newer than this agent"):
        await open_outbox(db, clock)


# --- kill -9 ----------------------------------------------------------------------------------

CHILD = """
import asyncio, sys
from pathlib import Path
from edge_agent.outbox import Outbox
from protocol import Channel

async def main():
    outbox = await Outbox.open(Path(sys.argv[1]), device="amr-7", synchronous=sys.argv[2])

    async def one(n):
        await outbox.put(Channel.TELEMETRY, b'{"n":%d}' % n)
        print("put", n, flush=True)

    n = 0
    while True:
        await asyncio.gather(*(one(n + k) for k in range(7)))
        n += 7
        await one(n)
        n += 1
        claimed = await outbox.claim(limit=5, live_since=0, backlog_limit=5, resend_before=0)
        if claimed:
            print("seq", claimed[-1].seq, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_kill_9_loses_no_acknowledged_put_and_reuses_no_seq(
    db: Path, synchronous: str
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(db),
        synchronous,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert child.stdout is not None
    lines: list[bytes] = []
    async with asyncio.timeout(60):
        while len(lines) < 2000 and (line := await child.stdout.readline()):
            lines.append(line)
    os.kill(child.pid, signal.SIGKILL)  # mid-stream: puts and claims are in flight
    rest, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == -signal.SIGKILL, err
    words = [line.split() for line in [*lines, *rest.splitlines()]]
    acknowledged = {int(n) for kind, n in words if kind == b"put"}
    handed_out = [int(n) for kind, n in words if kind == b"seq"]
    assert len(acknowledged) >= 1000, err

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = exported(db)
    assert acknowledged <= {int(row["body"]["n"]) for row in rows}  # type: ignore[index]
    numbered = sorted(int(row["seq"]) for row in rows if row["seq"] is not None)  # type: ignore[call-overload]
    assert numbered == list(range(1, len(numbered) + 1))  # nothing confirmed: 1..N, no gap
    assert max(handed_out) <= len(numbered)

    outbox = await Outbox.open(db, device=DEVICE)
    await outbox.put(Channel.TELEMETRY, b'{"n":-1}')
    fresh = [m.seq for m in await claim_all(outbox)]
    assert fresh[0] == len(numbered) + 1  # a seq handed out before the kill is never reused
    await outbox.close()


# --- invariants under random operations ---------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(list(CLASS_CHANNEL.values())), st.integers(1, 8)),
        st.tuples(st.just("claim"), st.integers(0, 6), st.integers(0, 3)),
        st.tuples(st.just("confirm"), st.integers(0, 40), st.just(0)),
        st.tuples(st.just("tick"), st.integers(1, 20), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_random_operations_keep_the_invariants(ops: list[tuple[str, object, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run_ops(Path(tmp) / "outbox.db", ops))


async def _run_ops(path: Path, ops: list[tuple[str, object, int]]) -> None:
    clock = Clock()
    options = {"cap_bytes": 1_000, "downsample_at": 0.9}
    outbox = await open_outbox(path, clock, **options)
    stream = outbox.stream
    confirmed: set[int] = set()  # body n of every row a watermark covered once numbered
    class_of: list[PriorityClass] = []  # body n -> its class, for every row ever put
    seq_of: dict[int, int] = {}  # body n -> seq, for every row ever claimed
    for op, a, b in ops:
        if op == "put":
            assert isinstance(a, Channel)
            await outbox.put_many([(a, body(len(class_of) + i)) for i in range(b)])
            class_of += [PRIORITY_BY_CHANNEL[a]] * b
        elif op == "claim":
            assert isinstance(a, int)
            claimed = await outbox.claim(
                limit=a, live_since=clock() - 5, backlog_limit=b, resend_before=clock() - 10
            )
            for m in claimed:
                if m.first_sent:  # numbered now, and only now
                    assert number(m) not in seq_of
                    seq_of[number(m)] = m.seq
                else:  # a re-send keeps its seq
                    assert seq_of[number(m)] == m.seq
        elif op == "confirm":
            assert isinstance(a, int)
            await outbox.confirm(stream, a)
            confirmed |= {n for n, seq in seq_of.items() if seq <= a}
        elif op == "tick":
            assert isinstance(a, int)
            clock.advance(a)
        else:
            await outbox.close()
            outbox = await open_outbox(path, clock, **options)
            assert outbox.stream == stream
        await _check(outbox, path, class_of=class_of, seq_of=seq_of, confirmed=confirmed)
    await outbox.close()


async def _check(
    outbox: Outbox,
    path: Path,
    *,
    class_of: list[PriorityClass],
    seq_of: dict[int, int],
    confirmed: set[int],
) -> None:
    stats = await outbox.stats()
    present = {int(row["body"]["n"]): row for row in exported(path)}  # type: ignore[index]
    # Seqs run 1..N without a gap.
    assert sorted(seq_of.values()) == list(range(1, len(seq_of) + 1))
    # A row leaves only when confirmed or dropped, and every drop is counted by class.
    missing = set(range(len(class_of))) - present.keys()
    dropped = missing - confirmed
    assert confirmed <= missing
    assert stats.dropped == {cls: sum(class_of[n] == cls for n in dropped) for cls in PriorityClass}
    # Only never-published rows are dropped, and never a safety row.
    assert not dropped & seq_of.keys()
    assert stats.dropped[SAFETY] == 0
    assert all(row["seq"] == seq_of.get(n) for n, row in present.items())
    assert stats.depth == len(present)
    assert stats.inflight == sum(row["seq"] is not None for row in present.values())


# --- the module's own example and the benchmark command ------------------------------------------


def test_docstring_examples_run() -> None:
    result = doctest.testmod(outbox_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_bench_outbox_prints_the_design_shape(tmp_path: Path) -> None:
    args = ["bench", "outbox", "--json", "--seconds", "0.05", "--rows", "500", "--rounds", "1"]
    result = CliRunner().invoke(outpost_app, [*args, "--dir", str(tmp_path)])
    data = json.loads(result.output)
    assert {"name", "ratio", "target", "numerator", "denominator", "env"} <= data.keys()
    assert data["name"] == "outbox"
    assert data["target"] == ">= 0.5"
    assert set(data["details"]["synchronous"]) == {"NORMAL", "FULL"}
    assert data["ratio"] > 0
    assert result.exit_code == (0 if data["passed"] else 1)
    assert list(tmp_path.iterdir()) == []  # the database files are cleaned up
