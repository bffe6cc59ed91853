"""A real hub app served by uvicorn on loopback, on SQLite and the in-memory bus, for sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.protocol import State
from websockets.uri import parse_uri

from hub.app import create_app
from hub.bus.memory import InMemoryBus
from hub.bus.topics import COMMAND_ACKS, DEVICE_STATE
from hub.live.fanout import Fanout
from hub.live.feed import LiveFeed
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from protocol import Channel, Envelope, encode
from protocol.models import Ack, AckStatus
from tests.hub.auth.support import Hub, settings_for
from tests.hub.control.support import FakePublisher

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _ok() -> str:
    return "ok"


@dataclass
class LiveHub:
    """The served app, its bus, its URL and the `Hub` helpers (over real HTTP)."""

    hub: Hub
    bus: InMemoryBus
    port: int

    @property
    def ws_url(self) -> str:
        """The live socket's URL."""
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    @property
    def fanout(self) -> Fanout:
        """The app's fan-out."""
        fanout: Fanout = self.hub.app.state.live
        return fanout

    async def token(self, user: str) -> str:
        """A fresh access token of `user`."""
        return str((await self.hub.login(user))["access_token"])

    @asynccontextmanager
    async def socket(self, user: str, **options: Any) -> AsyncIterator[ClientConnection]:
        """A socket authenticated by first message, past its `hello`."""
        async with connect(self.ws_url, **options) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": await self.token(user)}).decode())
            hello = await receive(ws)
            assert hello["type"] == "hello", hello
            yield ws

    async def state(self, device: str, seq: int = 1, **body: Any) -> None:
        """A device state envelope on the bus, as ingest would put it."""
        envelope = Envelope(
            device=device, stream="s1", seq=seq, ts=T0, kind=Channel.STATE, body={**body}
        )
        await self.bus.produce(DEVICE_STATE, key=device.encode(), value=encode(envelope))

    async def raw_state(self, device: str, body: dict[str, Any]) -> None:
        """A state record as a foreign producer might write it (the feed forwards the body)."""
        record = {"device": device, "ts": "2026-01-01T00:00:00Z", "body": body}
        await self.bus.produce(DEVICE_STATE, key=device.encode(), value=orjson.dumps(record))

    async def ack(self, device: str, cmd_id: str, status: AckStatus, seq: int = 1) -> None:
        """A command ack envelope on the bus."""
        ack = Ack(cmd_id=cmd_id, status=status, at=T0)
        envelope = Envelope(device=device, stream="s1", seq=seq, ts=T0, kind=Channel.ACKS, body=ack)
        await self.bus.produce(COMMAND_ACKS, key=device.encode(), value=encode(envelope))


class IdleSocket:
    """A socket that authenticates, then reads nothing until `close_frame` (a stalled dashboard).

    Raw asyncio streams with the sans-I/O client: the `websockets` client keeps reading
    into its own memory, and the kernel would autotune a 32 MB receive buffer.
    """

    def __init__(self, url: str) -> None:
        self._protocol = ClientProtocol(parse_uri(url))
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, port: int, token: str) -> None:
        """Connect, shake hands and send the auth message."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=4096)
        self._protocol.send_request(self._protocol.connect())
        self._flush()
        while self._protocol.state is not State.OPEN:
            self._protocol.receive_data(await self._reader.read(4096))
        self._protocol.send_text(orjson.dumps({"type": "auth", "token": token}))
        self._flush()

    def _flush(self) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(self._protocol.data_to_send()))

    async def close_frame(self) -> Close:
        """Read everything the server sent, up to its close frame (30 s at most); that frame."""
        assert self._reader is not None
        assert self._writer is not None
        async with asyncio.timeout(30):
            while self._protocol.close_rcvd is None:
                data = await self._reader.read(1 << 20)
                if not data:
                    break
                self._protocol.receive_data(data)
                self._protocol.events_received()
        self._writer.close()
        assert self._protocol.close_rcvd is not None, "the server never sent a close frame"
        return self._protocol.close_rcvd


async def receive(ws: ClientConnection, within_s: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    async with asyncio.timeout(within_s):
        data: dict[str, Any] = orjson.loads(await ws.recv())
    return data


@asynccontextmanager
async def live_hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    """The app on a migrated SQLite file with an in-memory bus, served on a free port."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    bus = InMemoryBus()
    await bus.start()
    await migrate(engine)
    settings = settings_for(tmp_path / "data")
    app = create_app(settings, engine, _ok, _ok, publisher=FakePublisher(), bus=bus)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)
        feed: LiveFeed = app.state.live_feed
        await asyncio.wait_for(feed.ready.wait(), 5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield LiveHub(Hub(app, client, engine, settings), bus, port)
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await bus.stop()
        await engine.dispose()
