"""`/api/v1/ws` served by uvicorn: auth, scope, filters and the slow-client cut-off."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hub.auth.principal import Role
from protocol.models import AckStatus
from tests.hub.live.support import IdleSocket, LiveHub, receive

pytestmark = pytest.mark.timeout(60)


async def _read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(15):
        while True:
            await ws.recv()


async def closed_with(ws: ClientConnection, code: int) -> str:
    """Wait for the server to close the socket with `code`; the reason."""
    with pytest.raises(ConnectionClosed) as closed:
        await _read_until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code, closed.value.rcvd
    return closed.value.rcvd.reason


async def test_a_viewer_sees_the_devices_of_their_sites_only(
    live: LiveHub, devices: tuple[str, str]
) -> None:
    mine, theirs = devices
    async with live.socket("vic") as vic, live.socket("root") as root:
        await live.state(theirs, online=True)
        await live.state(mine, online=True)

        message = await receive(vic)
        assert message == {
            "type": "state",
            "device": mine,
            "site": "plant-a",
            "ts": "2026-01-01T00:00:00Z",
            "data": {"online": True},
        }
        seen = [(await receive(root))["device"] for _ in range(2)]
        assert seen == [theirs, mine]
        await live.state(mine, seq=2, online=False)
        assert (await receive(vic))["data"] == {"online": False}  # nothing of theirs queued


async def test_an_api_key_in_a_header_works_too(live: LiveHub, devices: tuple[str, str]) -> None:
    headers = await live.hub.bearer("vic")
    created = await live.hub.client.post(
        "/api/v1/auth/api-keys", headers=headers, json={"name": "d"}
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    async with connect(live.ws_url, additional_headers={"X-API-Key": key}) as ws:
        hello = await receive(ws)
        assert hello == {"type": "hello", "user": "vic", "role": "viewer", "sites": ["plant-a"]}
        await live.ack(devices[0], "c-1", AckStatus.DONE)
        ack = await receive(ws)
        assert (ack["type"], ack["data"]["cmd_id"], ack["data"]["status"]) == ("ack", "c-1", "done")


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "auth", "token": "opk_nope_nope"},
        {"type": "subscribe"},
        "not json",
    ],
)
async def test_a_bad_credential_is_closed_with_4401(live: LiveHub, first: object) -> None:
    async with connect(live.ws_url) as ws:
        await ws.send(first if isinstance(first, str) else orjson.dumps(first).decode())
        reason = await closed_with(ws, 4401)
        assert reason


async def test_a_bad_bearer_header_is_closed_with_4401(live: LiveHub) -> None:
    async with connect(live.ws_url, additional_headers={"Authorization": "Bearer x.y.z"}) as ws:
        await closed_with(ws, 4401)


async def test_subscribe_narrows_types_devices_and_sites(
    live: LiveHub, devices: tuple[str, str]
) -> None:
    mine, theirs = devices
    async with live.socket("root") as root:
        await root.send(
            orjson.dumps({"type": "subscribe", "types": ["ack"], "sites": None}).decode()
        )
        subscribed = await receive(root)
        assert subscribed == {
            "type": "subscribed",
            "sites": None,
            "devices": None,
            "types": ["ack"],
        }
        await live.state(mine, online=True)
        await live.ack(theirs, "c-2", AckStatus.RECEIVED)
        assert (await receive(root))["data"]["cmd_id"] == "c-2"

        await root.send(orjson.dumps({"type": "subscribe", "sites": ["plant-a"]}).decode())
        assert (await receive(root))["sites"] == ["plant-a"]
        await live.state(theirs, online=True)
        await live.state(mine, seq=2, online=True)
        assert (await receive(root))["device"] == mine

        await root.send(orjson.dumps({"type": "subscribe", "types": ["nope"]}).decode())
        error = await receive(root)
        assert (error["type"], error["code"]) == ("error", "bad_message")
        assert "nope" in error["message"]


async def test_subscribing_to_a_site_outside_the_scope_is_closed_with_4403(live: LiveHub) -> None:
    async with live.socket("vic") as vic:
        await vic.send(orjson.dumps({"type": "subscribe", "sites": ["plant-b"]}).decode())
        assert "plant-b" in await closed_with(vic, 4403)


async def test_a_slow_client_is_cut_off_while_a_fast_one_gets_everything(
    live: LiveHub, devices: tuple[str, str]
) -> None:
    mine = devices[0]
    live.fanout.queue_limit = 600  # subscribers made from now on; the feed reads 500 at once
    await live.hub.add_user("fred", Role.VIEWER, ["plant-a"])
    count, got = 4000, 0
    padding = "x" * 4000  # 16 MB in all: more than the kernel buffers of the idle socket hold
    slow = IdleSocket(live.ws_url)
    await slow.open(live.port, await live.token("root"))
    async with live.socket("fred") as fast:
        while live.fanout.subscribers() < 2:  # noqa: ASYNC110 - the idle socket's auth is done
            await asyncio.sleep(0.01)

        async def read_all() -> None:
            nonlocal got
            while got < count:
                message = await receive(fast, within_s=15)
                assert message["data"]["pad"] == padding
                got += 1

        reader = asyncio.create_task(read_all())
        for n in range(count):
            while n - got > 300:  # noqa: ASYNC110 - a feed at the pace the fast client reads
                await asyncio.sleep(0.001)
            await live.raw_state(mine, {"online": True, "pad": padding})
        await reader
        assert got == count
        assert live.fanout.subscribers() == 1
        assert live.fanout.cut_off == 1
    close = await slow.close_frame()
    assert (close.code, close.reason) == (4008, "too slow: 600 messages behind")
