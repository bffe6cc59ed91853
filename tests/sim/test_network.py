"""The link proxy (cut and restore) and the robots' broker (stop and restart)."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest

from sim.network import LinkProxy, RobotBroker


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(2):
            return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_the_proxy_forwards_then_a_cut_severs_and_refuses_until_restored() -> None:
    server = await _echo_server()
    target = server.sockets[0].getsockname()[1]
    async with LinkProxy("127.0.0.1", target, name="test link") as proxy:
        assert await _round_trip(proxy.port, b"hello") == b"hello"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 2) == b"x"
        started = time.monotonic()
        cut = asyncio.create_task(proxy.cut(0.6))
        await asyncio.sleep(0.05)
        # The open connection is gone ...
        async with asyncio.timeout(2):
            assert await reader.read(10) == b""
        writer.close()
        # ... and a new one is dropped while the cut lasts.
        assert proxy.severed
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _round_trip(proxy.port, b"again")
        assert proxy.connections_refused >= 1
        await cut
        assert time.monotonic() - started >= 0.55
        assert not proxy.severed
        assert await _round_trip(proxy.port, b"back") == b"back"
    server.close()
    await server.wait_closed()


async def test_the_broker_stops_for_a_while_and_comes_back_on_its_port() -> None:
    broker = RobotBroker()
    await broker.start()
    port = broker.port
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier="probe-1", timeout=3):
            pass
        outage = asyncio.create_task(broker.stop_for(0.5))
        await asyncio.sleep(0.2)
        assert not broker.running
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, identifier="probe-2", timeout=1):
                pass
        await outage
        assert broker.running
        assert broker.port == port
        async with aiomqtt.Client("127.0.0.1", port, identifier="probe-3", timeout=3):
            pass
    finally:
        await broker.stop()
