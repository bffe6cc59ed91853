"""Storage behaviour that must hold on both dialects.

`StorageBehaviour` is not collected by itself: `test_sqlite.py` and
`tests/integration/hub/storage/test_postgres.py` subclass it and provide the
`db` fixture (a migrated, empty database of their dialect).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.storage.archive import read_points
from hub.storage.errors import StorageError
from hub.storage.migrate import schema_drift
from hub.storage.repositories import (
    current_marks,
    enforce_retention,
    latest_status,
    rollup_telemetry,
    store_deadletter,
    store_envelopes,
    telemetry_range,
)
from tests.hub.storage.support import (
    T0,
    Db,
    ack,
    at,
    detections,
    event,
    frame,
    state,
    telemetry,
    will,
)

KEY = ("amr-1", "s1")


class StorageBehaviour:
    """The shared suite; subclasses supply the `db` fixture."""

    # --- storing -------------------------------------------------------------------------

    async def test_every_kind_lands_in_its_table(self, db: Db) -> None:
        batch = [
            telemetry(1, 0.5, 0.7),
            detections(2),
            event(3),
            ack(4),
            state(5, ts=at(5)),
            frame(6),
        ]
        result = await db.store(*batch)

        assert {name: c.inserted for name, c in result.tables.items()} == {
            "telemetry": 2,
            "detections": 2,
            "events": 1,
            "acks": 1,
            "frames": 0,  # a thin device's frame for inference: routed, not kept
            "received_seqs": 6,
            "device_status": 1,
        }
        assert (result.inserted, result.duplicates) == (7, 0)
        points = await db.rows("telemetry", "idx")
        assert [(p["seq"], p["idx"], p["value"], p["tags"]) for p in points] == [
            (1, 0, 0.5, {"i": "0"}),
            (1, 1, 0.7, {"i": "1"}),
        ]
        assert points[1]["ts"] == at(2)
        assert points[1]["ts"].tzinfo is not None
        frames = await db.rows("detections", "idx")
        assert frames[0]["classes"] == ["forklift", "person"]
        assert frames[0]["zones"] == {"danger": [0]}
        assert frames[0]["objects"][0]["cls"] == "person"
        assert (frames[0]["model_name"], frames[0]["camera"], frames[1]["classes"]) == (
            "yolo-sim",
            "front",
            [],
        )
        (ev,) = await db.rows("events")
        assert (ev["type"], ev["severity"], ev["detail"]) == (
            "estop_engaged",
            "critical",
            {"source": "hub", "speed": 0.4},
        )
        (a,) = await db.rows("acks")
        assert (a["cmd_id"], a["status"], a["reason"], a["at"]) == (
            "c1",
            "rejected",
            "expired",
            at(4),
        )

    async def test_restoring_the_same_envelopes_is_a_no_op(self, db: Db) -> None:
        batch = [telemetry(1, 1.0, 2.0, 3.0), detections(2), event(3), ack(4), frame(5)]
        await db.store(*batch)
        before = {t: await db.count(t) for t in ("telemetry", "detections", "events", "acks")}

        again = await db.store(*batch)

        assert again.inserted == 0
        assert again.duplicates == 3 + 2 + 1 + 1
        assert again.tables["received_seqs"].duplicates == 5
        assert {t: await db.count(t) for t in before} == before

    async def test_a_resend_never_overwrites_the_first_write(self, db: Db) -> None:
        await db.store(telemetry(1, 1.0))
        result = await db.store(telemetry(1, 99.0))
        assert result.tables["telemetry"].duplicates == 1
        assert [r["value"] for r in await db.rows("telemetry")] == [1.0]

    async def test_duplicates_inside_one_batch_count_once(self, db: Db) -> None:
        result = await db.store(telemetry(1, 1.0), telemetry(1, 1.0), event(2), event(2))
        assert result.tables["telemetry"] == type(result.tables["telemetry"])(1, 1)
        assert result.tables["events"].inserted == 1
        assert await db.count("received_seqs") == 2

    async def test_large_batches_are_stored_whole(self, db: Db) -> None:
        batch = [telemetry(seq, *(float(i) for i in range(500))) for seq in range(1, 13)]
        result = await db.store(*batch)
        assert result.tables["telemetry"].inserted == 6000
        assert await db.count("telemetry") == 6000

    # --- device status -------------------------------------------------------------------

    async def test_device_status_keeps_the_newest_state(self, db: Db) -> None:
        await db.store(state(2, ts=at(20), version="2.0"))
        late = await db.store(state(1, ts=at(10), version="1.0"))  # a late re-send

        status = await self._status(db)
        assert late.tables["device_status"].duplicates == 1
        assert (status.online, status.agent_version, status.state_ts) == (True, "2.0", at(20))
        assert status.state == {"online": True, "agent_version": "2.0"}

    async def test_a_newer_last_will_marks_the_device_offline(self, db: Db) -> None:
        await db.store(state(1, ts=at(10), version="2.0"))
        await db.store(will(ts=at(30)))

        status = await self._status(db)
        assert status.online is False
        assert status.state_ts == at(30)
        assert status.last_seen == at(10)  # when it was last heard from itself
        assert status.agent_version == "2.0"
        assert status.state["agent_version"] == "2.0"  # the last state it reported

    async def test_an_older_last_will_is_ignored(self, db: Db) -> None:
        await db.store(state(1, ts=at(30)))
        await db.store(will(ts=at(10)))
        assert (await self._status(db)).online is True

    async def test_the_newest_state_in_one_batch_wins(self, db: Db) -> None:
        result = await db.store(state(2, ts=at(20), version="b"), state(1, ts=at(10), version="a"))
        assert result.tables["device_status"] == type(result.tables["device_status"])(1, 1)
        assert (await self._status(db)).agent_version == "b"

    async def test_a_device_that_never_reported_has_no_status(self, db: Db) -> None:
        async with db.sessions() as session:
            assert await latest_status(session, device="ghost") is None

    @staticmethod
    async def _status(db: Db):  # type: ignore[no-untyped-def]
        async with db.sessions() as session:
            status = await latest_status(session, device="amr-1")
        assert status is not None
        return status

    # --- watermarks ----------------------------------------------------------------------

    async def test_marks_advance_over_contiguous_seqs_of_every_kind(self, db: Db) -> None:
        await db.store(telemetry(1), event(2), state(3, ts=at(3)))
        assert await db.advance(KEY) == {KEY: 3}

        await db.store(ack(5), frame(6))  # 4 is missing
        assert await db.advance(KEY) == {}
        assert await self._marks(db) == {KEY: 3}

        await db.store(detections(4))
        assert await db.advance(KEY) == {KEY: 6}
        assert await db.count("received_seqs") == 0  # covered seqs are compacted

    async def test_marks_start_at_one(self, db: Db) -> None:
        await db.store(telemetry(2), telemetry(3))
        assert await db.advance(KEY) == {}
        assert await self._marks(db) == {}

    async def test_marks_never_move_backwards(self, db: Db) -> None:
        await db.store(*(telemetry(seq) for seq in range(1, 4)))
        await db.advance(KEY)
        # another worker got further (and compacted) meanwhile
        await db.execute("UPDATE stream_marks SET seq = 10")

        await db.store(telemetry(4), telemetry(3))  # re-sends below the mark
        assert await db.advance(KEY) == {}
        assert await self._marks(db) == {KEY: 10}
        assert await db.count("received_seqs") == 0

    async def test_marks_are_kept_per_device_and_stream(self, db: Db) -> None:
        await db.store(telemetry(1), telemetry(1, stream="s2"), telemetry(2, stream="s2"))
        await db.store(telemetry(1, device="amr-2"))
        moved = await db.advance(KEY, ("amr-1", "s2"), ("amr-2", "s1"), ("amr-3", "s1"))
        assert moved == {KEY: 1, ("amr-1", "s2"): 2, ("amr-2", "s1"): 1}

    async def test_one_batch_moves_each_key_from_its_own_mark(self, db: Db) -> None:
        gap, fresh, behind = ("amr-1", "s2"), ("amr-2", "s1"), ("amr-3", "s1")
        await db.store(*(telemetry(seq) for seq in (1, 2)))
        await db.store(*(telemetry(seq, device="amr-3") for seq in (1, 2, 3)))
        assert await db.advance(KEY, behind) == {KEY: 2, behind: 3}

        await db.store(*(telemetry(seq) for seq in (3, 4, 6, 7)))  # KEY: 5 is missing
        await db.store(*(telemetry(seq, stream="s2") for seq in (1, 2, 4, 5, 9)))
        await db.store(*(telemetry(seq, device="amr-2") for seq in (2, 3)))  # no 1 yet
        await db.store(telemetry(2, device="amr-3"))  # a re-send below its mark
        moved = await db.advance(KEY, gap, fresh, behind)
        assert moved == {KEY: 4, gap: 2}
        assert await self._marks(db, KEY, gap, fresh, behind) == {KEY: 4, gap: 2, behind: 3}
        # what is left waits for its gap: KEY 6, 7; gap 4, 5, 9; fresh 2, 3
        assert await db.count("received_seqs") == 7

    async def test_the_will_stream_never_has_a_mark(self, db: Db) -> None:
        last_will = will(ts=at(5))
        await db.store(last_will)
        key = (last_will.device, last_will.stream)
        assert await db.advance(key) == {}
        assert await self._marks(db, key) == {}

    async def test_a_gateway_stream_is_stored_without_seqs_or_a_mark(self, db: Db) -> None:
        """A gateway agent's results follow the frames it did not drop as stale: gaps on
        purpose, so no seqs are kept waiting to be contiguous (they would pile up)."""
        stream = "gw-telemetry-0123456789abcdef"
        await db.store(telemetry(1, stream=stream), telemetry(3, stream=stream))
        assert await db.count("telemetry") == 2
        assert await db.count("received_seqs") == 0
        assert await db.advance(("amr-1", stream)) == {}
        assert await self._marks(db, ("amr-1", stream)) == {}

    @staticmethod
    async def _marks(db: Db, *wanted: tuple[str, str]) -> dict[tuple[str, str], int]:
        async with db.sessions() as session:
            return await current_marks(session, keys=wanted or [KEY])

    # --- rollups -------------------------------------------------------------------------

    async def test_rollups_summarise_each_minute(self, db: Db) -> None:
        await db.store(
            telemetry(1, 1.0, 2.0, 6.0, ts=T0 + timedelta(seconds=10)),  # 12:00
            telemetry(2, -4.0, ts=T0 + timedelta(seconds=59.5)),  # 12:00, last half second
            telemetry(3, 10.0, 20.0, ts=T0 + timedelta(minutes=1)),  # 12:01
            telemetry(4, 7.0, metric="mem", ts=T0 + timedelta(seconds=30)),
            telemetry(1, 3.0, device="amr-2", ts=T0 + timedelta(seconds=5)),
            telemetry(5, 99.0, ts=T0 + timedelta(minutes=2)),  # outside [since, until)
            telemetry(6, 99.0, ts=T0 - timedelta(seconds=1)),  # before since
        )
        async with db.sessions() as session, session.begin():
            rollups = await rollup_telemetry(
                session, since=T0 + timedelta(seconds=30), until=T0 + timedelta(minutes=2)
            )

        summary = {
            (r.device, r.metric, r.minute): (r.count, r.min, r.max, r.sum, r.avg) for r in rollups
        }
        assert summary == {
            ("amr-1", "cpu", T0): (4, -4.0, 6.0, 5.0, 1.25),
            ("amr-1", "cpu", T0 + timedelta(minutes=1)): (2, 10.0, 20.0, 30.0, 15.0),
            ("amr-1", "mem", T0): (1, 7.0, 7.0, 7.0, 7.0),
            ("amr-2", "cpu", T0): (1, 3.0, 3.0, 3.0, 3.0),
        }
        assert all(r.minute.tzinfo is not None for r in rollups)
        stored = await db.rows("telemetry_rollups", "device", "metric", "minute")
        assert [(r["device"], r["metric"], r["minute"], r["count"]) for r in stored] == [
            (d, m, minute, c[0]) for (d, m, minute), c in sorted(summary.items())
        ]

    async def test_recomputing_a_minute_replaces_it(self, db: Db) -> None:
        await db.store(telemetry(1, 1.0, 3.0, ts=T0))
        window = {"since": T0, "until": T0 + timedelta(minutes=1)}
        async with db.sessions() as session, session.begin():
            first = await rollup_telemetry(session, **window)
        async with db.sessions() as session, session.begin():
            again = await rollup_telemetry(session, **window)
        assert first == again
        assert await db.count("telemetry_rollups") == 1

        await db.store(telemetry(2, 8.0, ts=T0 + timedelta(seconds=40)))  # a late point
        async with db.sessions() as session, session.begin():
            (late,) = await rollup_telemetry(session, **window)
        assert (late.count, late.min, late.max, late.avg) == (3, 1.0, 8.0, 4.0)
        (row,) = await db.rows("telemetry_rollups")
        assert (row["count"], row["max"], row["sum"]) == (3, 8.0, 12.0)

    # --- retention -----------------------------------------------------------------------

    async def test_retention_deletes_what_is_too_old(self, db: Db) -> None:
        now = T0 + timedelta(days=100)
        old, recent = T0, now - timedelta(days=1)
        await db.store(
            telemetry(1, 1.0, ts=old),
            telemetry(2, 2.0, ts=recent),
            detections(3, ts=old),
            detections(4, ts=recent),
            event(5, ts=old),
            event(6, ts=recent),
            ack(7, ts=old),
            ack(8, ts=recent),
            will(ts=old),
        )
        async with db.sessions() as session, session.begin():
            await rollup_telemetry(session, since=old, until=now)
            await store_deadletter(session, source="x", payload=b"?", reason="r", received_at=old)

        async with db.sessions() as session, session.begin():
            result = await enforce_retention(
                session, now=now, raw_days=30, rollup_days=60, events_days=90, archive_dir=None
            )

        assert result.deleted == {
            "telemetry": 1,
            "detections": 2,
            "telemetry_rollups": 1,
            "events": 1,
            "acks": 1,
            "deadletters": 1,
            "frames": 0,
            "received_seqs": 1,
        }
        assert [r["value"] for r in await db.rows("telemetry")] == [2.0]
        assert await db.count("detections") == 2
        assert await db.count("telemetry_rollups") == 1
        assert (result.archived, result.files) == (0, [])

    async def test_retention_archives_raw_telemetry_before_deleting(
        self, db: Db, tmp_path: Path
    ) -> None:
        now = T0 + timedelta(days=40)
        day2 = T0 + timedelta(days=1)
        await db.store(
            telemetry(1, 1.0, 2.0, ts=T0),
            telemetry(2, 3.0, ts=day2),
            telemetry(1, 4.0, device="amr-2", ts=T0),
            telemetry(3, 5.0, ts=now),  # kept
        )
        archive = tmp_path / "archive"

        result = await self._retain(db, now, archive)

        assert result.archived == result.deleted["telemetry"] == 4
        names = [p.relative_to(archive).as_posix() for p in result.files]
        assert names == [
            "telemetry/2026-03-01/amr-1.jsonl.gz",
            "telemetry/2026-03-01/amr-2.jsonl.gz",
            "telemetry/2026-03-02/amr-1.jsonl.gz",
        ]
        first = read_points(result.files[0])
        assert [(p["seq"], p["idx"], p["value"], p["metric"]) for p in first] == [
            (1, 0, 1.0, "cpu"),
            (1, 1, 2.0, "cpu"),
        ]
        assert datetime.fromisoformat(first[0]["ts"]) == T0
        assert first[0]["tags"] == {"i": "0"}
        assert first[0]["stream"] == "s1"
        assert [r["value"] for r in await db.rows("telemetry")] == [5.0]

    async def test_archive_files_are_appended_not_replaced(self, db: Db, tmp_path: Path) -> None:
        archive = tmp_path / "archive"
        await db.store(telemetry(1, 1.0, ts=T0))
        await self._retain(db, T0 + timedelta(days=40), archive)
        await db.store(telemetry(2, 2.0, ts=T0 + timedelta(hours=1)))  # late backlog, same day

        result = await self._retain(db, T0 + timedelta(days=41), archive)

        (path,) = result.files
        assert [p["value"] for p in read_points(path)] == [1.0, 2.0]
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left

    @staticmethod
    async def _retain(db: Db, now: datetime, archive: Path):  # type: ignore[no-untyped-def]
        async with db.sessions() as session, session.begin():
            return await enforce_retention(
                session,
                now=now,
                raw_days=30,
                rollup_days=400,
                events_days=400,
                archive_dir=archive,
            )

    # --- dead letters and queries --------------------------------------------------------

    async def test_deadletters_keep_at_most_64_kib(self, db: Db) -> None:
        big = bytes(range(256)) * 400  # 100 KiB
        async with db.sessions() as session, session.begin():
            await store_deadletter(
                session,
                source="outpost/v1/amr-1/telemetry",
                payload=big,
                reason="bad json",
                device="amr-1",
                received_at=T0,
            )
            await store_deadletter(
                session, source="ingest", payload=b"{}", reason="x" * 5000, received_at=T0
            )
        large, small = await db.rows("deadletters", "id")
        assert (len(large["payload"]), large["size"], large["truncated"]) == (65536, 102400, True)
        assert large["payload"] == big[:65536]
        assert (large["device"], large["received_at"]) == ("amr-1", T0)
        assert (small["payload"], small["truncated"], small["device"]) == (b"{}", False, None)
        assert len(small["reason"]) == 2000

    async def test_telemetry_range_returns_one_metric_in_order(self, db: Db) -> None:
        await db.store(
            telemetry(2, 3.0, 4.0, ts=at(10)),
            telemetry(1, 1.0, 2.0, ts=at(0)),
            telemetry(3, 9.0, metric="mem", ts=at(0)),
            telemetry(1, 9.0, device="amr-2", ts=at(0)),
        )
        async with db.sessions() as session:
            samples = await telemetry_range(
                session, device="amr-1", metric="cpu", since=at(1), until=at(11), limit=2
            )
        assert [(s.ts, s.value) for s in samples] == [(at(1), 2.0), (at(10), 3.0)]

    # --- schema and errors ---------------------------------------------------------------

    async def test_migrations_match_the_models(self, db: Db) -> None:
        assert await schema_drift(db.engine) == []

    async def test_schema_drift_is_detected(self, db: Db) -> None:
        async with db.engine.connect() as conn:  # DDL inside a transaction rolled back after
            await conn.execute(text("DROP INDEX ix_events_device_ts"))
            await conn.execute(text("ALTER TABLE acks ADD COLUMN extra INTEGER"))
            drift = await schema_drift(conn)
            await conn.rollback()
        assert sorted(d[0] for d in drift) == ["add_index", "remove_column"]
        assert await schema_drift(db.engine) == []

    async def test_database_errors_surface_as_storage_errors(self, db: Db) -> None:
        async with db.sessions() as session:
            await session.execute(text("DROP TABLE acks"))
            with pytest.raises(StorageError) as caught:
                await store_envelopes(session, envelopes=[ack(1)])
            await session.rollback()
        assert caught.value.retriable is False
        assert caught.value.__cause__ is not None
        assert await db.count("acks") == 0  # the table is back

    async def test_timestamps_come_back_in_utc(self, db: Db) -> None:
        local = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        await db.store(telemetry(1, 1.0, ts=local))
        (row,) = await db.rows("telemetry")
        assert row["ts"] == local
        assert row["ts"].utcoffset() == timedelta(0)
