"""The network the simulated fleet runs on: the robots' own MQTT broker and link proxies.

`RobotBroker` is a small in-process amqtt broker for the robots' MQTT faces and the
agents' `mqtt` robot adapters (anonymous, loopback); `stop_for(seconds)` takes it down
and brings it back on the same port. `LinkProxy` is a TCP proxy between one agent and
the hub's MQTT broker; `cut(seconds)` severs the agent's link (open connections are
closed, new ones refused) and restores it afterwards.

Example:
    async with LinkProxy("127.0.0.1", 1883) as proxy:  # agent's [mqtt] url: proxy.url
        await proxy.cut(20.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Self

from amqtt.broker import Broker

logger = logging.getLogger(__name__)

CHUNK = 65536


class RobotBroker:
    """An anonymous amqtt broker on `host:port` (0: a free port, read `port` after `start`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._broker: Broker | None = None
        self.down_until = 0.0

    @property
    def url(self) -> str:
        """mqtt://HOST:PORT."""
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (a free port is picked once, then kept across restarts)."""
        if self.port == 0:
            self.port = await _free_port(self.host)
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()
        logger.info("robot broker listening on %s", self.url)

    async def stop(self) -> None:
        """Disconnect every client and close the listener."""
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):  # amqtt raises when already stopping
                await broker.shutdown()

    @property
    def running(self) -> bool:
        """Whether the broker is up."""
        return self._broker is not None

    async def stop_for(self, seconds: float) -> None:
        """The `broker_stop` fault: down for `seconds`, then up again on the same port."""
        logger.warning("robot broker stopped for %.1f s (fault)", seconds)
        self.down_until = time.monotonic() + seconds
        await self.stop()
        await asyncio.sleep(seconds)
        await self.start()


async def _free_port(host: str) -> int:
    server = await asyncio.start_server(lambda _r, _w: None, host, 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


class LinkProxy:
    """Forwards TCP from `listen_port` on loopback to `target`, and can sever the link."""

    def __init__(self, target_host: str, target_port: int, *, name: str = "link") -> None:
        self.target = (target_host, target_port)
        self.name = name
        self.port = 0
        self.cut_until = 0.0
        self.connections_refused = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The `mqtt://127.0.0.1:PORT` an agent connects to instead of the hub's broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def severed(self) -> bool:
        """Whether the link is cut now."""
        return time.monotonic() < self.cut_until

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 (`port` 0: a free one)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._drop_all()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def sever(self, seconds: float) -> None:
        """Cut the link now for `seconds` (extends a cut in progress); returns at once."""
        self.cut_until = max(self.cut_until, time.monotonic() + seconds)
        logger.warning("%s: link cut for %.1f s (fault)", self.name, seconds)
        self._drop_all()

    async def cut(self, seconds: float) -> None:
        """Cut the link for `seconds` and return when it is restored."""
        self.sever(seconds)
        while (left := self.cut_until - time.monotonic()) > 0:  # noqa: ASYNC110 - may be extended
            await asyncio.sleep(left)
        logger.warning("%s: link restored", self.name)

    def _drop_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.severed:
            self.connections_refused += 1
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(5):
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer), name=f"{self.name}-up"),
            asyncio.create_task(self._pipe(up_reader, writer), name=f"{self.name}-down"),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            for w in (writer, up_writer):
                self._open.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()  # one side gone: take the other down too
