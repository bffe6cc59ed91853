"""End-to-end ingest: telemetry points/s from agents' outboxes to rows in PostgreSQL.

Numerator: real `edge-agent run` processes, each starting with an outbox already
holding its share of the telemetry (`per_message` points per envelope, the body the
agent's Batcher writes), publish through the broker to a real `outpost hub serve
--role ingest` process, which produces to Kafka, from which a real `--role worker`
process stores the rows in PostgreSQL. The rate is the points stored between the
first and the last poll of the telemetry table that saw new rows (agent and hub
start-up excluded); the rate from the agents' start is in the details too.

Denominator: the slowest bare stage on the same machine, on the same services, each
moving the same envelopes (best of `rounds`):

* a paho-mqtt QoS 1 publish loop to a subscriber process on the same broker,
* an aiokafka produce loop (`acks=all`, idempotent, the hub's batching) to the same Kafka,
* asyncpg `COPY` of the same telemetry rows into a copy of the `telemetry` table
  (same indexes, no conflict handling) in the same PostgreSQL.

Every stage counts telemetry points: a message or record of K points is K points.
Target ≥ 0.5.

Example:
    result = run(mqtt_url="mqtt://127.0.0.1:1883", kafka_bootstrap="127.0.0.1:9092",
                 pg_dsn="postgresql://outpost@127.0.0.1:5432/outpost")
    print(result.ratio, result.details["slowest_stage"])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only connect, fetchval and COPY
import orjson
import paho.mqtt.client as paho
from aiokafka import AIOKafkaProducer
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from bench.report import BenchResult, Measure
from edge_agent.outbox import Outbox
from hub.bus.kafka import ProducerTuning
from hub.bus.kafka_admin import delete_prefixed_topics, ensure_topics
from hub.errors import HubError
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from hub.storage.models import Telemetry, table_of
from hub.storage.rows import telemetry_rows
from protocol import (
    Channel,
    Envelope,
    OutpostError,
    TelemetryBatch,
    TelemetryPoint,
    encode,
    topic,
)
from protocol.processes import stop_process

logger = logging.getLogger(__name__)

TARGET = 0.5
DEFAULT_POINTS = 200_000
DEFAULT_PER_MESSAGE = 100
METRIC = "synthetic.counter"
PARTITIONS = 3
POLL_S = 0.1
STALL_S = 30.0
"""No new rows for this long while agents run: the pipeline is stuck; stop with its logs."""
NETWORK_TIMEOUT_S = 30.0
HUB_READY_S = 90.0
COPY_CHUNK_ROWS = 10_000
BIN = Path(sys.executable).parent
COLUMNS = [c.name for c in table_of(Telemetry).columns]


class IngestBenchError(OutpostError):
    """The benchmark could not finish (a process died, a service did not answer)."""


@dataclass(frozen=True)
class Services:
    """Where the broker, Kafka and PostgreSQL under test are."""

    mqtt_url: str
    kafka: str
    pg_dsn: str


@dataclass(frozen=True)
class Workload:
    """The run's names and the telemetry each agent starts with."""

    run_id: str
    per_message: int
    per_device: dict[str, list[TelemetryBatch]]

    @property
    def devices(self) -> list[str]:
        """The agents' device ids."""
        return list(self.per_device)

    @property
    def schema(self) -> str:
        """The run's PostgreSQL schema."""
        return f"bench_{self.run_id}"

    @property
    def topic_prefix(self) -> str:
        """The run's Kafka topic (and consumer group) prefix."""
        return f"bench{self.run_id}."

    @property
    def points(self) -> int:
        """Points over all agents."""
        return sum(len(b.points) for batches in self.per_device.values() for b in batches)

    @property
    def messages(self) -> int:
        """Envelopes over all agents."""
        return sum(len(batches) for batches in self.per_device.values())

    def _envelopes(self) -> Iterator[Envelope]:
        for device, batches in self.per_device.items():
            for seq, batch in enumerate(batches, start=1):
                yield Envelope(
                    device=device,
                    stream=f"s{self.run_id}",
                    seq=seq,
                    ts=batch.points[-1].ts,
                    kind=Channel.TELEMETRY,
                    body=batch,
                )

    def envelopes(self) -> list[tuple[str, bytes]]:
        """(device, encoded envelope) of every batch, as an agent would publish it."""
        return [(env.device, encode(env)) for env in self._envelopes()]

    def rows(self) -> list[tuple[Any, ...]]:
        """The telemetry rows the worker stores for these envelopes, in column order."""
        out = []
        for env in self._envelopes():
            assert isinstance(env.body, TelemetryBatch)  # noqa: S101 - built above
            for row in telemetry_rows(env, env.body):
                row["tags"] = orjson.dumps(row["tags"]).decode()
                out.append(tuple(row[c] for c in COLUMNS))
        return out


def workload(*, agents: int, points: int, per_message: int) -> Workload:
    """`points` synthetic points split over `agents` devices, `per_message` per batch."""
    run_id = secrets.token_hex(4)
    t0 = datetime.now(UTC)
    per_device = {}
    for n in range(agents):
        share = points // agents + (1 if n < points % agents else 0)
        tags = {"boot": secrets.token_hex(4)}
        batches = [
            TelemetryBatch(
                points=[
                    TelemetryPoint(
                        ts=t0 + timedelta(milliseconds=i), metric=METRIC, value=i, tags=tags
                    )
                    for i in range(start, min(share, start + per_message))
                ]
            )
            for start in range(0, share, per_message)
        ]
        per_device[f"bench-{run_id}-{n}"] = batches
    return Workload(run_id, per_message, per_device)


# --- bare stages ---------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return (host or "127.0.0.1"), int(port or 1883)


def paho_seconds(url: str, payloads: Sequence[bytes], *, rounds: int) -> float:
    """Best seconds for a paho QoS 1 loop to deliver all payloads to a subscriber process."""
    name = f"bench/{secrets.token_hex(4)}/paho"
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.max_inflight_messages_set(500)
    pub.connect(*_host_port(url))  # first: an unreachable broker fails here, plainly
    pub.loop_start()
    sub = subprocess.Popen(
        [sys.executable, "-m", "bench.ingest", url, name, str(len(payloads)), str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _read_line(sub, "the bare MQTT subscriber to subscribe")
        best = math.inf
        for _ in range(rounds):
            start = time.time()
            infos = [pub.publish(name, p, qos=1) for p in payloads]
            for info in infos:
                info.wait_for_publish(NETWORK_TIMEOUT_S)
            done = float(_read_line(sub, "the bare MQTT subscriber to receive a round"))
            best = min(best, done - start)
        return best
    finally:
        pub.loop_stop()
        pub.disconnect()
        _end(sub)


def _read_line(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None  # noqa: S101 - started with stdout=PIPE
    ready, _, _ = select.select([proc.stdout], [], [], NETWORK_TIMEOUT_S)
    if not ready:
        raise IngestBenchError(f"timed out after {NETWORK_TIMEOUT_S:.0f} s waiting for {what}")
    line = proc.stdout.readline()
    if not line:
        raise IngestBenchError(f"waiting for {what}: it exited with status {proc.wait(5)}")
    return line.strip()


def subscriber(url: str, name: str, count: int, rounds: int) -> None:
    """The bare stage's subscriber: prints `ready`, then the time each `count` messages arrived."""
    received = 0

    def on_subscribe(*_: object) -> None:
        print("ready", flush=True)

    def on_message(client: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received % count == 0:
            print(time.time(), flush=True)
        if received >= count * rounds:
            client.disconnect()

    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(name, qos=1)
    client.connect(*_host_port(url))
    client.loop_forever()


async def kafka_seconds(
    bootstrap: str, name: str, records: Sequence[tuple[bytes, bytes]], *, rounds: int
) -> float:
    """Best seconds for an aiokafka producer (acks=all, idempotent) to deliver all records."""
    await ensure_topics(bootstrap, [name], partitions=PARTITIONS, timeout_s=NETWORK_TIMEOUT_S)
    tuning = ProducerTuning()  # the hub's batching, so the stages differ only in our code
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=tuning.linger_ms,
        max_batch_size=tuning.max_batch_size,
        request_timeout_ms=int(NETWORK_TIMEOUT_S * 1000),
    )
    async with asyncio.timeout(NETWORK_TIMEOUT_S):
        await producer.start()
    try:
        best = math.inf
        for _ in range(rounds):
            start = time.perf_counter()
            async with asyncio.timeout(NETWORK_TIMEOUT_S):
                sent = [await producer.send(name, key=k, value=v) for k, v in records]
                await asyncio.gather(*sent)
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        async with asyncio.timeout(NETWORK_TIMEOUT_S):
            await producer.stop()


async def copy_seconds(
    pg_dsn: str, schema: str, rows: Sequence[tuple[Any, ...]], *, rounds: int
) -> float:
    """Best seconds for asyncpg `COPY` of `rows` into a copy of the telemetry table."""
    conn = await asyncpg.connect(pg_dsn, timeout=NETWORK_TIMEOUT_S)
    try:
        await conn.execute(
            f'CREATE TABLE "{schema}".copy_scratch (LIKE "{schema}".telemetry INCLUDING ALL)'
        )
        best = math.inf
        for _ in range(rounds):
            await conn.execute(f'TRUNCATE "{schema}".copy_scratch')
            start = time.perf_counter()
            for first in range(0, len(rows), COPY_CHUNK_ROWS):
                await conn.copy_records_to_table(
                    "copy_scratch",
                    schema_name=schema,
                    records=rows[first : first + COPY_CHUNK_ROWS],
                    columns=COLUMNS,
                    timeout=NETWORK_TIMEOUT_S,
                )
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        await conn.close(timeout=NETWORK_TIMEOUT_S)


# --- the pipeline --------------------------------------------------------------------------


class Proc:
    """One child process of the run (agent or hub role), logging to a file."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out)

    def check(self) -> None:
        """Raise, with the log's tail, if the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise IngestBenchError(
                f"{self.name} exited with status {self.proc.returncode}; log:\n{tail}"
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        _end(self.proc)


def _end(proc: subprocess.Popen[Any]) -> None:
    stop_process(proc)


def hub_config(path: Path, work: Workload, services: Services, *, ingest: str = "") -> Path:
    """The hub's settings for this run: its own schema, topic prefix and groups; `ingest`:
    more `[ingest]` lines."""
    dsn = services.pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    kafka, mqtt_url = services.kafka, services.mqtt_url
    path.write_text(
        f'data_dir = "{path.parent / "hub-data"}"\n'
        f'[database]\nurl = "{dsn}"\nschema = "{work.schema}"\n'
        f'[bus]\nkind = "kafka"\nbootstrap = "{kafka}"\ntopic_prefix = "{work.topic_prefix}"\n'
        f"partitions = {PARTITIONS}\n"
        f'[broker]\nkind = "external"\nurl = "{mqtt_url}"\nusername = ""\n'
        f'[ingest]\nshared_group = "bench-ingest-{work.run_id}"\nsession_expiry_s = 60\n{ingest}'
        f'[worker]\ngroup = "bench-writers-{work.run_id}"\n'
    )
    return path


def agent_config(path: Path, device: str, data_dir: Path, *, mqtt_url: str) -> Path:
    """An agent with no live sources (its outbox holds the work) and an unthrottled drain."""
    path.write_text(
        f'[device]\nid = "{device}"\ndata_dir = "{data_dir}"\n'
        f'[mqtt]\nurl = "{mqtt_url}"\n'
        # The backlog token bucket would otherwise cap each agent at 500 messages/s.
        "[uplink]\ndrain_rate = 1000000\n"
        "[metrics]\nport = 0\n"
        "[telemetry]\nsources = []\n"
    )
    return path


async def prefill(work: Workload, root: Path) -> None:
    """Write each agent's batches into its outbox, as its Batcher would have."""
    for device, batches in work.per_device.items():
        data = root / device
        data.mkdir(parents=True)
        outbox = await Outbox.open(data / "outbox.db", device=device, cap_bytes=1 << 30)
        async with outbox:
            bodies = [(Channel.TELEMETRY, encode(b)) for b in batches]
            for first in range(0, len(bodies), 500):
                await outbox.put_many(bodies[first : first + 500])


@dataclass(frozen=True)
class Timeline:
    """When the agents started and when polls first and last saw new rows (perf_counter s)."""

    started: float
    first_at: float
    first_count: int
    last_at: float
    stored: int


async def _count(conn: asyncpg.Connection, schema: str, devices: Sequence[str]) -> int:
    value = await conn.fetchval(
        f'SELECT count(*) FROM "{schema}".telemetry WHERE device = ANY($1::text[])',  # noqa: S608 - schema is ours
        list(devices),
        timeout=NETWORK_TIMEOUT_S,
    )
    return int(value)


async def wait_hub_ready(pg_dsn: str, mqtt_url: str, work: Workload, procs: Sequence[Proc]) -> None:
    """Publish a probe envelope every 2 s until the worker has stored one."""
    device = f"bench-{work.run_id}-probe"
    conn = await asyncpg.connect(pg_dsn, timeout=NETWORK_TIMEOUT_S)
    try:
        deadline = time.monotonic() + HUB_READY_S
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            await asyncio.to_thread(_publish_probe, mqtt_url, device, seq)
            for _ in range(20):
                for proc in procs:
                    proc.check()
                if await _count(conn, work.schema, [device]):
                    return
                await asyncio.sleep(POLL_S)
    finally:
        await conn.close(timeout=NETWORK_TIMEOUT_S)
    raise IngestBenchError(f"the hub stored nothing within {HUB_READY_S:.0f} s")


def _publish_probe(url: str, device: str, seq: int) -> None:
    now = datetime.now(UTC)
    body = TelemetryBatch(points=[TelemetryPoint(ts=now, metric="bench.probe", value=seq)])
    env = Envelope(
        device=device, stream="probe", seq=seq, ts=now, kind=Channel.TELEMETRY, body=body
    )
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(*_host_port(url))
    client.loop_start()
    try:
        client.publish(topic(device, Channel.TELEMETRY), encode(env), qos=1).wait_for_publish(
            NETWORK_TIMEOUT_S
        )
    finally:
        client.loop_stop()
        client.disconnect()


async def wait_stored(
    pg_dsn: str,
    work: Workload,
    procs: Sequence[Proc],
    *,
    started: float,
    on_progress: Callable[[int], None],
) -> Timeline:
    """Poll the telemetry table until it holds every point; raise if it stalls."""

    async def count(conn: asyncpg.Connection) -> int:
        return await _count(conn, work.schema, work.devices)

    return await wait_rows(
        pg_dsn, count, work.points, procs, "points", started=started, on_progress=on_progress
    )


async def wait_rows(
    pg_dsn: str,
    count: Callable[[asyncpg.Connection], Awaitable[int]],
    goal: int,
    procs: Sequence[Proc],
    what: str,
    *,
    started: float,
    on_progress: Callable[[int], None],
) -> Timeline:
    """Poll `count` until it reaches `goal`, checking that `procs` still run; raise if no
    new rows come for `STALL_S`. The timeline's window starts at the first poll that saw
    rows, so start-up is not counted."""
    conn = await asyncpg.connect(pg_dsn, timeout=NETWORK_TIMEOUT_S)
    try:
        first_at, first_count, last_at, stored = 0.0, 0, started, 0
        while stored < goal:
            await asyncio.sleep(POLL_S)
            for proc in procs:
                proc.check()
            counted = await count(conn)
            now = time.perf_counter()
            if counted > stored:
                if not stored:
                    first_at, first_count = now, counted
                last_at, stored = now, counted
                on_progress(counted)
            elif now - last_at > STALL_S:
                raise IngestBenchError(
                    f"no new rows for {STALL_S:.0f} s: {stored} of {goal} {what} stored"
                )
        return Timeline(started, first_at, first_count, last_at, stored)
    finally:
        await conn.close(timeout=NETWORK_TIMEOUT_S)


async def duplicates(pg_dsn: str, work: Workload) -> int:
    """Rows beyond one per point (each point's value is unique within its device)."""
    conn = await asyncpg.connect(pg_dsn, timeout=NETWORK_TIMEOUT_S)
    try:
        value = await conn.fetchval(
            f'SELECT count(*) - count(DISTINCT (device, value)) FROM "{work.schema}".telemetry '  # noqa: S608
            "WHERE device = ANY($1::text[])",
            work.devices,
            timeout=NETWORK_TIMEOUT_S,
        )
    finally:
        await conn.close(timeout=NETWORK_TIMEOUT_S)
    return int(value)


def agent_resends(root: Path, devices: Sequence[str]) -> int:
    """Re-sends the agents counted (from the status file each writes as it stops)."""
    total = 0
    for device in devices:
        with contextlib.suppress(OSError, ValueError, KeyError):
            total += int(
                orjson.loads((root / device / "status.json").read_bytes())["link"]["resent"]
            )
    return total


async def migrate_schema(pg_dsn: str, schema: str) -> None:
    """Create the run's schema with the hub's tables (what `outpost hub migrate` does)."""
    engine = create_engine(
        pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1), schema=schema
    )
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def drop_schema(pg_dsn: str, schema: str) -> None:
    """Drop the run's schema with everything in it."""
    conn = await asyncpg.connect(pg_dsn, timeout=NETWORK_TIMEOUT_S)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', timeout=NETWORK_TIMEOUT_S)
    finally:
        await conn.close(timeout=NETWORK_TIMEOUT_S)


# --- the run -------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    with progress:
        yield progress


@dataclass(frozen=True)
class Bare:
    """Points/s of each bare stage."""

    paho: float
    kafka: float
    copy: float

    def slowest(self) -> tuple[str, float]:
        """The name and rate of the slowest stage."""
        return min(vars(self).items(), key=lambda kv: kv[1])


def measure_bare(work: Workload, services: Services, *, rounds: int, progress: Progress) -> Bare:
    """Run the three bare stages one after the other."""
    envelopes = work.envelopes()
    task = progress.add_task("bare stage: paho MQTT QoS 1 loop", total=3)
    mqtt_s = paho_seconds(services.mqtt_url, [p for _, p in envelopes], rounds=rounds)
    progress.update(task, advance=1, description="bare stage: aiokafka acks=all loop")
    records = [(d.encode(), p) for d, p in envelopes]
    kafka_s = asyncio.run(
        kafka_seconds(services.kafka, f"{work.topic_prefix}bare", records, rounds=rounds)
    )
    progress.update(task, advance=1, description="bare stage: asyncpg COPY")
    copy_s = asyncio.run(copy_seconds(services.pg_dsn, work.schema, work.rows(), rounds=rounds))
    progress.update(task, advance=1, description="bare stages (MQTT, Kafka, COPY)")
    points = work.points
    return Bare(paho=points / mqtt_s, kafka=points / kafka_s, copy=points / copy_s)


def run_pipeline(work: Workload, root: Path, services: Services, *, progress: Progress) -> Timeline:
    """Start the hub roles, wait until they store a probe, start the agents, time the rows."""
    config = hub_config(root / "hub.toml", work, services)
    mqtt_url, pg_dsn = services.mqtt_url, services.pg_dsn
    outpost = str(BIN / "outpost")
    procs: list[Proc] = []
    try:
        task = progress.add_task("hub ingest + worker starting", total=None)
        for role in ("ingest", "worker"):
            args = [outpost, "hub", "serve", "--config", str(config), "--role", role]
            procs.append(Proc(f"hub {role}", args, root / f"hub-{role}.log"))
        asyncio.run(wait_hub_ready(pg_dsn, mqtt_url, work, procs))
        progress.update(task, total=1, completed=1)
        task = progress.add_task("agents → PostgreSQL (points)", total=work.points)
        started = time.perf_counter()
        for device in work.devices:
            cfg = agent_config(root / f"{device}.toml", device, root / device, mqtt_url=mqtt_url)
            args = [str(BIN / "edge-agent"), "run", "--config", str(cfg)]
            procs.append(Proc(f"agent {device}", args, root / f"{device}.log"))
        return asyncio.run(
            wait_stored(
                pg_dsn,
                work,
                procs,
                started=started,
                on_progress=lambda n: progress.update(task, completed=n),
            )
        )
    finally:
        for proc in reversed(procs):  # agents first, so their status files hold the counts
            proc.stop()


FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, HubError)
"""What an unreachable or refusing service raises; reported as `IngestBenchError`."""


def run(
    *,
    mqtt_url: str,
    kafka_bootstrap: str,
    pg_dsn: str,
    agents: int = 4,
    points: int = DEFAULT_POINTS,
    per_message: int = DEFAULT_PER_MESSAGE,
    rounds: int = 3,
    show_progress: bool = False,
) -> BenchResult:
    """Measure the bare stages and the pipeline on the given services; return the result."""
    work = workload(agents=agents, points=points, per_message=per_message)
    services = Services(mqtt_url=mqtt_url, kafka=kafka_bootstrap, pg_dsn=pg_dsn)
    with (
        tempfile.TemporaryDirectory(prefix="outpost-bench-ingest-") as tmp,
        _progress(show_progress) as progress,
    ):
        try:
            return _measure(work, Path(tmp), services, rounds=rounds, progress=progress)
        except FAILURES as exc:
            raise IngestBenchError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _clean_up_quietly(services, work)


def _measure(
    work: Workload, root: Path, services: Services, *, rounds: int, progress: Progress
) -> BenchResult:
    asyncio.run(migrate_schema(services.pg_dsn, work.schema))
    asyncio.run(prefill(work, root))
    bare = measure_bare(work, services, rounds=rounds, progress=progress)
    timeline = run_pipeline(work, root, services, progress=progress)
    dups = asyncio.run(duplicates(services.pg_dsn, work))
    resent = agent_resends(root, work.devices)
    return _result(work, bare, timeline, duplicates=dups, resent=resent)


def _clean_up_quietly(services: Services, work: Workload) -> None:
    """Drop the schema, delete the topics; warn rather than hide the run's own error."""
    try:
        asyncio.run(drop_schema(services.pg_dsn, work.schema))
    except FAILURES as exc:
        logger.warning("bench ingest: could not drop schema %s: %s", work.schema, exc)
    try:
        asyncio.run(
            delete_prefixed_topics(services.kafka, work.topic_prefix, timeout_s=NETWORK_TIMEOUT_S)
        )
    except FAILURES as exc:
        logger.warning("bench ingest: could not delete topics %s*: %s", work.topic_prefix, exc)


def _result(
    work: Workload, bare: Bare, timeline: Timeline, *, duplicates: int, resent: int
) -> BenchResult:
    window = timeline.last_at - timeline.first_at
    from_start = timeline.last_at - timeline.started
    windowed = window > 0 and timeline.first_count < timeline.stored
    ours = (
        (timeline.stored - timeline.first_count) / window
        if windowed
        else timeline.stored / from_start
    )
    slowest, limit = bare.slowest()
    return BenchResult(
        name="ingest",
        numerator=Measure(
            ours,
            "points/s",
            f"{len(work.devices)} edge-agent outboxes → MQTT → hub ingest → Kafka → hub worker "
            "→ PostgreSQL",
        ),
        denominator=Measure(
            limit, "points/s", "slowest bare stage: paho QoS 1 loop, aiokafka acks=all loop, COPY"
        ),
        target=TARGET,
        details={
            "numerator_basis": (
                "points stored between the first and the last poll that saw new rows"
                if windowed
                else "all points / seconds from the agents' start (the run was too short "
                "for a window)"
            ),
            "agents": len(work.devices),
            "points": work.points,
            "points_per_message": work.per_message,
            "messages": work.messages,
            "stored_window_s": round(window, 3),
            "from_agents_start_s": round(from_start, 3),
            "points_per_s_from_agents_start": round(timeline.stored / from_start),
            "paho_qos1_points_per_s": round(bare.paho),
            "kafka_acks_all_points_per_s": round(bare.kafka),
            "copy_points_per_s": round(bare.copy),
            "slowest_stage": slowest,
            "duplicates": duplicates,
            "agent_resends": resent,
            "hub": f"1 ingest + 1 worker process, {PARTITIONS} Kafka partitions",
            "agent_uplink": "defaults but drain_rate = 1000000 (no backlog throttle)",
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.ingest URL TOPIC COUNT ROUNDS`: the bare MQTT stage's subscriber."""
    url, name, count, rounds = argv or sys.argv[1:]
    subscriber(url, name, int(count), int(rounds))


if __name__ == "__main__":
    main()
