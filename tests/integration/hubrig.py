"""Real hub processes for integration tests: `outpost hub serve` with its settings.

Scale mode (`scale_config`): roles against the dev services, isolated per test run
by a PostgreSQL schema, a Kafka topic prefix and MQTT/Kafka group names.
Embedded mode: `outpost hub serve` with no flags, configured by environment only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from protocol import UPLINK_CHANNELS
from protocol.processes import stop_process, wait_healthy

OUTPOST = str(Path(sys.executable).parent / "outpost")


def scale_config(
    path: Path,
    *,
    run_id: str,
    mqtt_url: str,
    kafka: str,
    pg_dsn: str,
    extra: str = "",
    partitions: int = 3,
) -> Path:
    """A hub settings file for PostgreSQL + Kafka + an external broker, private to `run_id`."""
    dsn = pg_dsn.replace("postgresql://", "postgresql+asyncpg://")
    path.write_text(
        f'data_dir = "{path.parent / "hub-data"}"\n'
        f'[database]\nurl = "{dsn}"\nschema = "t_{run_id}"\n'
        f'[bus]\nkind = "kafka"\nbootstrap = "{kafka}"\ntopic_prefix = "t{run_id}."\n'
        f"partitions = {partitions}\n"
        f'[broker]\nkind = "external"\nurl = "{mqtt_url}"\nusername = ""\n'
        # The shared dev broker would keep a test's ingest sessions (and queue everyone's
        # traffic in them) for a day after the test: two minutes is plenty for a takeover.
        f'[ingest]\nshared_group = "ingest-{run_id}"\nsession_expiry_s = 120\n'
        f'[worker]\ngroup = "writers-{run_id}"\nrollup_interval_s = 2\n' + extra
    )
    return path


def migrate(config: Path) -> None:
    """`outpost hub migrate --config FILE`."""
    subprocess.run(
        [OUTPOST, "hub", "migrate", "--config", str(config)], check=True, capture_output=True
    )


class HubProcess:
    """`outpost hub serve [--config FILE --role ROLE]` as a real process."""

    def __init__(
        self,
        log: Path,
        *,
        config: Path | None = None,
        role: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config, self.role, self.log = config, role, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start in the background, logging to `log`."""
        args = [OUTPOST, "hub", "serve"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        if self.role is not None:
            args += ["--role", self.role]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, env=self.env)

    def kill(self) -> None:
        """kill -9."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then kill -9 after 15 s; a no-op when not running."""
        if self.proc is not None:
            stop_process(self.proc)

    def wait_healthy(self, port: int, timeout: float = 30) -> None:
        """Wait until `GET /api/v1/health` answers 200 (the process must stay alive)."""
        assert self.proc is not None
        try:
            wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", self.proc, timeout_s=timeout)
        except ChildProcessError as exc:
            raise AssertionError(f"hub {exc}:\n{self.tail()}") from None
        except TimeoutError:
            raise AssertionError(f"hub not healthy after {timeout} s:\n{self.tail()}") from None

    def tail(self, chars: int = 4000) -> str:
        """The end of the process log."""
        return self.log.read_text(errors="replace")[-chars:]


def wait_sessions_subscribed(
    ingests: Sequence[HubProcess], group: str, timeout: float = 90
) -> None:
    """Wait until the ingest processes, together, have subscribed every per-channel session
    of `group`: the broker drops what devices publish before a session subscribed (the
    agents re-send it later, out of order), as on a hub's very first start."""
    wanted = {f"session {group}-{c.value} subscribed" for c in UPLINK_CHANNELS}

    def missing() -> set[str]:
        text = "".join(p.log.read_text(errors="replace") for p in ingests if p.log.exists())
        return {w for w in wanted if w not in text}

    deadline = time.monotonic() + timeout
    while missing():
        for process in ingests:
            assert process.proc is not None
            assert process.proc.poll() is None, f"ingest exited:\n{process.tail()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"ingest sessions not subscribed after {timeout} s: {missing()}")
        time.sleep(0.2)


def drop_run(pg_dsn: str, kafka: str, run_id: str) -> None:
    """Drop the run's PostgreSQL schema and Kafka topics."""
    asyncio.run(_drop_run(pg_dsn, kafka, run_id))


async def _drop_run(pg_dsn: str, kafka: str, run_id: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "t_{run_id}" CASCADE')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await asyncio.wait_for(admin.start(), 15)
    try:
        topics = [
            t
            for t in await asyncio.wait_for(admin.list_topics(), 15)
            if t.startswith(f"t{run_id}.")
        ]
        if topics:
            await asyncio.wait_for(admin.delete_topics(topics), 15)
    finally:
        await admin.close()


async def topic_records(kafka: str, topic: str) -> dict[int, list[ConsumerRecord[bytes, bytes]]]:
    """Every record of `topic` now, per partition in offset order (no group, no commits)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        assert partitions, f"no partitions for {topic}"
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        ends = await consumer.end_offsets(partitions)
        out: dict[int, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                out[tp.partition] += records
        return out
    finally:
        await consumer.stop()


async def pg_counter_values(pg_dsn: str, run_id: str, device: str) -> list[float]:
    """The stored values of a device's `synthetic.counter` metric, ascending."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT value FROM "t_{run_id}".telemetry '  # noqa: S608 - run_id is hex
            "WHERE device = $1 AND metric = 'synthetic.counter' ORDER BY value",
            device,
        )
    finally:
        await conn.close()
    return [r["value"] for r in rows]


async def pg_counter_total(pg_dsn: str, run_id: str) -> int:
    """Stored `synthetic.counter` points of the run, all devices together."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        return int(
            await conn.fetchval(
                f'SELECT count(*) FROM "t_{run_id}".telemetry '  # noqa: S608 - run_id is hex
                "WHERE metric = 'synthetic.counter'"
            )
        )
    finally:
        await conn.close()


class HubStack:
    """Real hub roles (one ingest, one worker) on a broker, Kafka and PostgreSQL, per test.

    Stands where the agent tests once had a watermark responder: the agents' rows leave
    their outbox only because this hub stored them and sent the watermark back.
    """

    def __init__(self, workdir: Path, *, mqtt_url: str, kafka: str, pg_dsn: str) -> None:
        self.run_id = secrets.token_hex(4)
        self.kafka, self.pg_dsn = kafka, pg_dsn
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = scale_config(
            workdir / "hub.toml", run_id=self.run_id, mqtt_url=mqtt_url, kafka=kafka, pg_dsn=pg_dsn
        )
        migrate(self.config)
        self.ingest = HubProcess(workdir / "ingest.log", config=self.config, role="ingest")
        self.worker = HubProcess(workdir / "worker.log", config=self.config, role="worker")
        self.ingest.start()
        self.worker.start()
        wait_sessions_subscribed([self.ingest], f"ingest-{self.run_id}")

    def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """The rows of one query; `{s}` in `sql` stands for the run's schema."""

        async def fetch() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.pg_dsn)
            try:
                return list(await conn.fetch(sql.format(s=f'"t_{self.run_id}"'), *args))
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def telemetry(self, device: str) -> list[tuple[str, str, int, float]]:
        """(stream, boot, seq, value) of every stored `synthetic.counter` point of `device`."""
        rows = self._fetch(
            "SELECT stream, tags->>'boot' AS boot, seq, value FROM {s}.telemetry "
            "WHERE device = $1 AND metric = 'synthetic.counter'",
            device,
        )
        return [(r["stream"], r["boot"], r["seq"], r["value"]) for r in rows]

    def state(self, device: str) -> dict[str, Any] | None:
        """The device's latest state as the hub stored it (`device_status.state`), if any."""
        rows = self._fetch("SELECT state FROM {s}.device_status WHERE device = $1", device)
        return dict(orjson.loads(rows[0]["state"])) if rows else None

    def event_types(self, device: str) -> set[str]:
        """The types of the events the hub stored for `device`."""
        rows = self._fetch("SELECT DISTINCT type FROM {s}.events WHERE device = $1", device)
        return {r["type"] for r in rows}

    def detection_frames(self, device: str) -> int:
        """How many frame results of `device` the hub stored."""
        rows = self._fetch("SELECT count(*) AS n FROM {s}.detections WHERE device = $1", device)
        return int(rows[0]["n"])

    def gaps(self, device: str) -> dict[str, tuple[int, int]]:
        """Streams of `device` whose watermark is below a stored seq: {stream: (mark, max)}.

        The watermark is the highest seq below which every envelope (of any channel) is
        stored; once an agent has drained, it must reach the highest seq stored.
        """
        rows = self._fetch(
            "SELECT t.stream, coalesce(m.seq, 0) AS mark, max(t.seq) AS top "
            "FROM {s}.telemetry t LEFT JOIN {s}.stream_marks m "
            "ON m.device = t.device AND m.stream = t.stream "
            "WHERE t.device = $1 GROUP BY t.stream, m.seq",
            device,
        )
        return {r["stream"]: (r["mark"], r["top"]) for r in rows if r["mark"] < r["top"]}

    def close(self) -> None:
        """Stop the roles and drop the run's schema and topics."""
        self.ingest.stop()
        self.worker.stop()
        drop_run(self.pg_dsn, self.kafka, self.run_id)
