"""`outpost bench ws`: live messages/s to 100 dashboard sockets against `websockets.broadcast`.

Numerator: the hub's real app (`create_app`, its `/api/v1/ws` route) served by
uvicorn on loopback, in a process of its own, with an in-memory bus; each
socket logs in with a real access token of a viewer scoped to the bench site.
Device state envelopes are produced into the bus and reach the sockets through
the live feed (bus reader → site scope → fan-out → per-socket queues).

Denominator: a bare `websockets` server in a process of its own that
`broadcast`s the very same texts (byte for byte what the hub sends) to the same
number of sockets.

Both sides get their messages from the driver through one extra "publisher"
WebSocket, in batches of `batch` (the hub side produces each batch into its bus,
the baseline broadcasts each message of it). Every socket gets one message per
frame on both sides. The driver keeps at most `window` messages in flight ahead
of the slowest socket, so neither side buffers without bound and the hub never
cuts a socket off as too slow. The same client code (a lean frame counter on
asyncio streams) reads both sides, in the driver's process.

The ratio compares messages delivered per CPU-second of the server process: on a
2-core machine the 100 client sockets of the driver, not the server, bound the
wall-clock rate, so wall rates measure the clients as much as the server. The wall
rates and their ratio are reported too (`details`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.report import BenchResult, Measure

TARGET = 0.5
SITE = "bench"
VIEWER = "bench-viewer"
PASSWORD = "bench bench bench"  # noqa: S105 - a throwaway user of a throwaway database
DEVICES = 20
T0 = "2026-01-01T00:00:00Z"


class WsBenchError(Exception):
    """The bench could not run (a server did not start, a socket was closed)."""


@dataclass(frozen=True)
class Side:
    """One measured side: messages delivered (summed over the sockets), wall and server CPU time."""

    delivered: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Messages per second of the server's CPU time: what one core of it delivers."""
        return self.delivered / self.cpu_seconds

    @property
    def wall_rate(self) -> float:
        """Messages per wall-clock second (bound by the clients too on a small machine)."""
        return self.delivered / self.seconds


def envelopes(count: int) -> list[bytes]:
    """`count` device state envelopes over DEVICES devices, as ingest puts them on the bus."""
    return [
        orjson.dumps(
            {
                "v": 1,
                "device": f"amr-{n % DEVICES}",
                "stream": "s1",
                "seq": n + 1,
                "ts": T0,
                "kind": "state",
                "body": {
                    "online": True,
                    "agent_version": "1.4.2",
                    "mode": "auto",
                    "estop": {"engaged": False},
                    "buffer": {"depth": n % 97, "dropped": 0},
                },
            }
        )
        for n in range(count)
    ]


async def live_texts(values: Sequence[bytes]) -> list[str]:
    """The texts the hub sends for `values` (so the baseline broadcasts the same bytes)."""
    from hub.bus.base import Record
    from hub.bus.memory import InMemoryBus
    from hub.live.fanout import Fanout
    from hub.live.feed import LiveFeed

    async def sites(devices: Any) -> dict[str, str | None]:
        return dict.fromkeys(devices, SITE)

    feed = LiveFeed(InMemoryBus(), Fanout(), sites, telemetry_hz=0)  # the bus is not read
    records = [Record("device.state", b"", v, 0, i, 0) for i, v in enumerate(values)]
    return [m.text for m in await feed.messages(records)]


# --- the client side: lean sockets, the same for both servers ---------------------------


class Client:
    """A WebSocket that authenticates by first message, then counts text frames."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0
        self.closed: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, token: str) -> None:
        """Connect, shake hands, send `{"type": "auth"}` and wait for `hello`."""
        protocol = ClientProtocol(parse_uri(self.url))
        uri = parse_uri(self.url)
        self._reader, self._writer = await asyncio.open_connection(uri.host, uri.port)
        protocol.send_request(protocol.connect())
        self._writer.write(b"".join(protocol.data_to_send()))
        while protocol.state is not State.OPEN:
            data = await self._reader.read(65536)
            if not data:
                raise WsBenchError(f"{self.url}: closed during the handshake")
            protocol.receive_data(data)
        protocol.send_text(orjson.dumps({"type": "auth", "token": token}))
        self._writer.write(b"".join(protocol.data_to_send()))
        buffered = b"".join(protocol.data_to_send())  # nothing: kept for symmetry
        counter = self._count(self._reader, bytearray(buffered))
        self._task = asyncio.create_task(counter, name="ws-client")

    async def _count(self, reader: asyncio.StreamReader, buffer: bytearray) -> None:
        """Count frames: server frames are unmasked, so the header gives each length."""
        while True:
            data = await reader.read(1 << 18)
            if not data:
                self.closed = self.closed or "connection closed"
                return
            buffer += data
            at, size = 0, len(buffer)
            while size - at >= 2:
                opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
                head = 2
                if length == 126:
                    if size - at < 4:
                        break
                    length, head = int.from_bytes(buffer[at + 2 : at + 4]), 4
                elif length == 127:
                    if size - at < 10:
                        break
                    length, head = int.from_bytes(buffer[at + 2 : at + 10]), 10
                if size - at < head + length:
                    break
                if opcode == 1:
                    self.count += 1
                elif opcode == 8:
                    code = int.from_bytes(buffer[at + head : at + head + 2])
                    self.closed = f"closed {code}: {buffer[at + head + 2 : at + head + length]!r}"
                at += head + length
            del buffer[:at]

    async def close(self) -> None:
        """Stop counting and drop the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()


class Publisher:
    """The driver's WebSocket to a server's publisher endpoint: batches of messages."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._protocol = ClientProtocol(parse_uri(url))
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect and shake hands."""
        uri = parse_uri(self.url)
        reader, self._writer = await asyncio.open_connection(uri.host, uri.port)
        self._protocol.send_request(self._protocol.connect())
        self._writer.write(b"".join(self._protocol.data_to_send()))
        while self._protocol.state is not State.OPEN:
            self._protocol.receive_data(await reader.read(65536))

    async def send(self, batch: Sequence[str]) -> None:
        """One frame holding a JSON list of messages."""
        if self._writer is None:
            raise WsBenchError("the publisher is not open")
        self._protocol.send_text(orjson.dumps(list(batch)))
        self._writer.write(b"".join(self._protocol.data_to_send()))
        await self._writer.drain()

    def close(self) -> None:
        """Drop the connection."""
        if self._writer is not None:
            self._writer.close()


async def drive(
    server: psutil.Process,
    url: str,
    publish_url: str,
    token: str,
    payloads: Sequence[str],
    *,
    clients: int,
    window: int,
    batch: int,
    warmup: int,
) -> Side:
    """Open `clients` sockets, push `payloads` (after `warmup` of them), time the delivery."""
    sockets = [Client(url) for _ in range(clients)]
    publisher = Publisher(publish_url)
    try:
        await asyncio.gather(*(s.open(token) for s in sockets))
        await _until(sockets, 1, 15.0)  # everyone has its hello: subscribed
        await publisher.open()
        base = 1
        await _push(publisher, sockets, payloads[:warmup], base, window=window, batch=batch)
        base += warmup
        start, cpu = time.perf_counter(), _cpu(server)
        measured = payloads[warmup:]
        await _push(publisher, sockets, measured, base, window=window, batch=batch)
        seconds, cpu = time.perf_counter() - start, _cpu(server) - cpu
        return Side(len(measured) * clients, seconds, cpu)
    finally:
        publisher.close()
        await asyncio.gather(*(s.close() for s in sockets))


async def _push(
    publisher: Publisher,
    sockets: Sequence[Client],
    payloads: Sequence[str],
    base: int,
    *,
    window: int,
    batch: int,
) -> None:
    """Send in batches, never more than `window` ahead of the slowest socket; wait for all."""
    sent = 0
    while sent < len(payloads):
        await _until(sockets, base + sent - window + batch, 60.0)
        chunk = payloads[sent : sent + batch]
        await publisher.send(chunk)
        sent += len(chunk)
    await _until(sockets, base + sent, 60.0)


async def _until(sockets: Sequence[Client], count: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while min(s.count for s in sockets) < count:
        broken = next((s.closed for s in sockets if s.closed), None)
        if broken:
            raise WsBenchError(f"a socket was closed: {broken}")
        if time.monotonic() > deadline:
            counts = sorted(s.count for s in sockets)
            raise WsBenchError(f"timed out waiting for {count} messages; counts {counts[:3]}…")
        await asyncio.sleep(0.0002)  # a poll: an event per frame would cost the clients more


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


# --- the two servers, each in a process of its own ----------------------------------------


async def serve_baseline() -> None:
    """Bare `websockets`: `/publish` takes batches, every other socket gets `broadcast`s."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/publish":
            async for batch in ws:
                for text in orjson.loads(batch):
                    broadcast(clients, text)
            return
        await ws.recv()  # the auth message (not checked: the bare limit)
        await ws.send(orjson.dumps({"type": "hello"}).decode())
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        _announce({"url": f"ws://127.0.0.1:{port}/", "publish": f"ws://127.0.0.1:{port}/publish"})
        await asyncio.Future()


async def serve_hub(data_dir: Path) -> None:
    """The hub app on uvicorn, an in-memory bus, a viewer of the bench site, its devices."""
    import uvicorn
    from websockets.asyncio.server import ServerConnection, serve

    from hub.app import create_app
    from hub.bus.memory import InMemoryBus
    from hub.bus.topics import DEVICE_STATE
    from hub.storage.db import create_engine
    from hub.storage.migrate import migrate

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hub.db'}")
    await migrate(engine)
    bus = InMemoryBus()
    await bus.start()
    app = create_app(_settings(data_dir), engine, _ok, _ok, publisher=_NoPublisher(), bus=bus)
    token = await _fleet(app, engine)

    async def publish(ws: ServerConnection) -> None:
        async for batch in ws:
            values = [v.encode() for v in orjson.loads(batch)]
            await bus.produce_many([(DEVICE_STATE, b"", v) for v in values])

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    async with serve(publish, "127.0.0.1", 0, compression=None) as control:
        task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)
        publish_port = next(iter(control.sockets)).getsockname()[1]
        _announce(
            {
                "url": f"ws://127.0.0.1:{port}/api/v1/ws",
                "publish": f"ws://127.0.0.1:{publish_port}/",
                "token": token,
            }
        )
        await task


def _settings(data_dir: Path) -> Any:
    from hub.settings import HubSettings

    return HubSettings.model_validate({"data_dir": str(data_dir)})


async def _ok() -> str:
    return "ok"


class _NoPublisher:
    """Commands are not part of this bench."""

    async def publish(self, topic: str, payload: bytes, *, expiry_s: int) -> None:
        raise NotImplementedError


async def _fleet(app: Any, engine: Any) -> str:
    """The bench site with its devices and a viewer limited to it; the viewer's token."""
    from hub.audit.chain import SYSTEM
    from hub.auth.principal import Role
    from hub.storage.db import session_factory, transaction
    from hub.storage.repositories.assets import DeviceRecord, insert_device, insert_site

    now = datetime.now(UTC)
    async with transaction(session_factory(engine)) as session:
        await insert_site(session, site_id=SITE, name=SITE, now=now)
        for n in range(DEVICES):
            device = DeviceRecord(
                f"amr-{n}", f"AMR {n}", "robot", SITE, None, {}, None, now, now, None
            )
            await insert_device(session, device=device)
    await app.state.users.create(
        SYSTEM, username=VIEWER, password=PASSWORD, role=Role.VIEWER, sites=[SITE]
    )
    tokens = await app.state.auth.login(VIEWER, PASSWORD, client="bench")
    return str(tokens.access_token)


def _announce(info: dict[str, str]) -> None:
    sys.stdout.write(orjson.dumps(info).decode() + "\n")
    sys.stdout.flush()


@asynccontextmanager
async def server_process(kind: str) -> AsyncIterator[dict[str, Any]]:
    """`python -m bench.ws KIND` in a process of its own; its addresses."""
    with tempfile.TemporaryDirectory(prefix="outpost-bench-ws-") as tmp:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.ws", kind, tmp),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            if proc.stdout is None or proc.stderr is None:
                raise WsBenchError("no pipes to the server process")
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                err = (await proc.stderr.read()).decode()[-2000:]
                raise WsBenchError(f"the {kind} server did not start: {err}")
            yield {**orjson.loads(line), "pid": proc.pid}
        finally:
            if proc.returncode is None:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def measure(
    kind: str,
    payloads: Sequence[str],
    *,
    clients: int,
    window: int,
    batch: int,
    warmup: int,
    rounds: int,
) -> Side:
    """The best of `rounds` runs against a fresh `kind` server."""
    sides: list[Side] = []
    async with server_process(kind) as info:
        server = psutil.Process(int(info["pid"]))
        for _ in range(rounds):
            side = await drive(
                server,
                info["url"],
                info["publish"],
                info.get("token", ""),
                payloads,
                clients=clients,
                window=window,
                batch=batch,
                warmup=warmup,
            )
            sides.append(side)
    return max(sides, key=lambda side: side.rate)


async def _run(*, clients: int, messages: int, window: int, batch: int, rounds: int) -> BenchResult:
    warmup = min(500, messages // 4)
    values = envelopes(warmup + messages)
    texts = await live_texts(values)
    hub = await measure(
        "hub",
        [v.decode() for v in values],
        clients=clients,
        window=window,
        batch=batch,
        warmup=warmup,
        rounds=rounds,
    )
    bare = await measure(
        "baseline",
        texts,
        clients=clients,
        window=window,
        batch=batch,
        warmup=warmup,
        rounds=rounds,
    )
    return BenchResult(
        name="ws",
        numerator=Measure(
            hub.rate,
            "messages/server-CPU-s",
            f"hub /api/v1/ws (uvicorn, real auth and scope) to {clients} sockets",
        ),
        denominator=Measure(
            bare.rate,
            "messages/server-CPU-s",
            f"websockets.broadcast of the same texts to {clients} sockets",
        ),
        target=TARGET,
        details={
            "clients": clients,
            "messages": messages,
            "window": window,
            "batch": batch,
            "rounds": rounds,
            "message_bytes": len(texts[0].encode()),
            "hub_wall_messages_per_s": round(hub.wall_rate),
            "baseline_wall_messages_per_s": round(bare.wall_rate),
            "wall_ratio": round(hub.wall_rate / bare.wall_rate, 4),
            "hub_cpu_s": round(hub.cpu_seconds, 3),
            "baseline_cpu_s": round(bare.cpu_seconds, 3),
        },
    )


def run(
    *, clients: int = 100, messages: int = 2000, window: int = 400, batch: int = 50, rounds: int = 3
) -> BenchResult:
    """Measure both sides (best of `rounds` each) and return the ratio."""
    if window < batch:
        raise WsBenchError("window must be at least batch")
    return asyncio.run(
        _run(clients=clients, messages=messages, window=window, batch=batch, rounds=rounds)
    )


def main() -> None:
    """`python -m bench.ws hub|baseline DATA_DIR`: one server, in a process of its own."""
    kind, data_dir = sys.argv[1], Path(sys.argv[2])
    server = serve_hub(data_dir) if kind == "hub" else serve_baseline()
    with suppress(KeyboardInterrupt):
        asyncio.run(server)


if __name__ == "__main__":
    main()
