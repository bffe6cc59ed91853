"""Backlog drain after an outage: how fast the agent empties its outbox once the link is back.

Numerator: messages/s from an outbox holding `rows` never-sent telemetry rows to an
empty outbox, through the real uplink, a real broker, and a hub stand-in that
publishes watermarks (the agent deletes rows only once they are confirmed).
Denominator: the slower of the two bare stages on the same machine: reading the
same rows from SQLite, and a bare paho-mqtt QoS 1 publish loop of the same
payloads to a subscriber on the same broker. Target ≥ 0.7.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.report import BenchResult, Measure
from edge_agent.config import AgentSettings
from edge_agent.outbox import Outbox
from edge_agent.uplink import Uplink
from protocol import Channel, DeviceState, TelemetryBatch, TelemetryPoint, Watermark, encode, topic

TARGET = 0.7
DEVICE = "bench-drain"


def _body(i: int) -> bytes:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    point = TelemetryPoint(ts=t0 + timedelta(milliseconds=i), metric="battery", value=i * 0.1)
    return encode(TelemetryBatch(points=[point]))


async def _fill(path: Path, rows: int) -> Outbox:
    outbox = await Outbox.open(path, device=DEVICE, cap_bytes=1 << 30)
    chunk = 2000
    for start in range(0, rows, chunk):
        items = [(Channel.TELEMETRY, _body(i)) for i in range(start, min(rows, start + chunk))]
        await outbox.put_many(items)
    return outbox


async def _watermarks(url: str, stop: asyncio.Event) -> None:
    """The hub stand-in: confirm the highest contiguous seq of every stream it sees."""
    parts = urlsplit(url)
    marks: dict[str, int] = {}
    seen: dict[str, set[int]] = {}
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
        for channel in (Channel.TELEMETRY, Channel.STATE):
            await client.subscribe(topic(DEVICE, channel), qos=1)

        async def confirm() -> None:
            published: dict[str, int] = {}
            while not stop.is_set():
                await asyncio.sleep(0.02)
                for stream, mark in list(marks.items()):
                    if published.get(stream) != mark:
                        wm = Watermark(device=DEVICE, stream=stream, seq=mark, at=datetime.now(UTC))
                        await client.publish(topic(DEVICE, Channel.INGESTED), encode(wm), qos=1)
                        published[stream] = mark

        confirmer = asyncio.create_task(confirm(), name="bench-confirm")
        try:
            async for message in client.messages:
                raw = bytes(message.payload) if isinstance(message.payload, bytes) else b""
                stream = raw.split(b'"stream":"', 1)[1].split(b'"', 1)[0].decode()
                seq = int(raw.split(b'"seq":', 1)[1].split(b",", 1)[0])
                got = seen.setdefault(stream, set())
                got.add(seq)
                mark = marks.get(stream, 0)
                while mark + 1 in got:
                    got.discard(mark + 1)
                    mark += 1
                marks[stream] = mark
        finally:
            confirmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await confirmer


def main() -> None:
    """`python -m bench.drain URL`: the hub stand-in, in a process of its own like a real hub."""
    asyncio.run(_watermarks(sys.argv[1], asyncio.Event()))


async def _drain(url: str, rows: int, workdir: Path) -> float:
    outbox = await _fill(workdir / "outbox.db", rows)
    settings = AgentSettings.model_validate(
        {
            "device": {"id": DEVICE, "data_dir": str(workdir)},
            "mqtt": {"url": url},
            "uplink": {"drain_rate": 1_000_000, "batch_messages": 500, "max_inflight": 500},
        }
    )
    uplink = Uplink(settings, outbox, state=lambda: DeviceState(online=True))
    async with asyncio.TaskGroup() as tg:
        start = time.perf_counter()
        link = tg.create_task(uplink.run(), name="bench-uplink")
        while (await outbox.stats()).depth > 0:  # noqa: ASYNC110 - polls the drained outbox
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        link.cancel()
    await outbox.close()
    return rows / elapsed


def _sqlite_read_rate(db: Path) -> float:
    with sqlite3.connect(db) as conn:
        start = time.perf_counter()
        count = sum(1 for _ in conn.execute("SELECT * FROM rows"))
        return count / (time.perf_counter() - start)


def _paho_rate(url: str, rows: int) -> float:
    """Bare paho QoS 1 publish loop to a subscriber on the same broker."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    payloads = [b'{"v":"1.0","seq":%d,"body":' % i + _body(i) + b"}" for i in range(rows)]
    received = threading.Event()
    count = 0

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= rows:
            received.set()

    sub = paho.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.connect(host, port)
    sub.subscribe("bench/paho", qos=1)
    sub.loop_start()
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.max_inflight_messages_set(500)
    pub.connect(host, port)
    pub.loop_start()
    time.sleep(0.3)
    start = time.perf_counter()
    infos = [pub.publish("bench/paho", p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(30)
    received.wait(60)
    elapsed = time.perf_counter() - start
    for client in (pub, sub):
        client.loop_stop()
        client.disconnect()
    return count / elapsed


def run(*, mqtt_url: str, rows: int = 20_000) -> BenchResult:
    """Measure the drain and both bare stages; return the result."""
    with tempfile.TemporaryDirectory(prefix="outpost-bench-drain-") as tmp:
        workdir = Path(tmp)
        sink = subprocess.Popen([sys.executable, "-m", "bench.drain", mqtt_url])
        try:
            time.sleep(1.0)  # the sink subscribes
            ours = asyncio.run(_drain(mqtt_url, rows, workdir))
        finally:
            sink.terminate()
            sink.wait(10)
        read_dir = workdir / "read"
        read_dir.mkdir()

        async def fill_only() -> None:
            outbox = await _fill(read_dir / "outbox.db", rows)
            await outbox.close()

        asyncio.run(fill_only())
        sqlite_rate = _sqlite_read_rate(read_dir / "outbox.db")
    paho_rate = _paho_rate(mqtt_url, rows)
    limit = min(sqlite_rate, paho_rate)
    return BenchResult(
        name="drain",
        numerator=Measure(ours, "msgs/s", f"outbox of {rows} rows → broker → watermark → empty"),
        denominator=Measure(limit, "msgs/s", "min(bare SQLite read, bare paho QoS 1 loop)"),
        target=TARGET,
        details={
            "rows": rows,
            "sqlite_read_rows_per_s": round(sqlite_rate),
            "paho_qos1_msgs_per_s": round(paho_rate),
        },
    )


if __name__ == "__main__":
    main()
