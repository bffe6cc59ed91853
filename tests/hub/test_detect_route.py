"""`POST /api/v1/detect` and `DetectRouter` on the in-process bus: the hub's own logic.

A stand-in gateway answers requests here; the real gateway agent on Kafka is tested in
tests/integration/edge/test_gateway.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth.principal import Role
from hub.bus.memory import InMemoryBus
from hub.bus.topics import DETECT_REPLIES, DETECT_REQUESTS
from hub.detect import DetectRouter
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from protocol import DetectReply, DetectRequest, decode, encode
from protocol.models import MAX_DETECT_IMAGE_BYTES
from tests.hub.auth.support import Hub, running_hub

JPEG = b"\xff\xd8 a picture"


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


@pytest.fixture
async def router(bus: InMemoryBus) -> AsyncIterator[DetectRouter]:
    router = DetectRouter(bus, timeout_s=0.5)
    task = asyncio.create_task(router.run())
    try:
        yield router
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def hub(tmp_path: Path, router: DetectRouter) -> AsyncIterator[Hub]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as running:
            running.app.state.detect = router
            await running.add_user("vera", Role.VIEWER)
            yield running
    finally:
        await engine.dispose()


async def gateway(bus: InMemoryBus, seen: list[DetectRequest]) -> None:
    """A stand-in gateway: answers each request with its size, as gateway `gw-1`."""
    async with bus.consumer([DETECT_REQUESTS], group="gateways") as requests:
        while True:
            for record in await requests.poll(timeout_s=0.1):
                request = decode(record.value, DetectRequest)
                seen.append(request)
                reply = DetectReply(
                    id=request.id, gateway="gw-1", status=200, body={"bytes": len(request.image)}
                )
                await bus.produce(DETECT_REPLIES, key=request.id.encode(), value=encode(reply))


async def test_the_gateways_answer_comes_back_as_is(hub: Hub, bus: InMemoryBus) -> None:
    seen: list[DetectRequest] = []
    task = asyncio.create_task(gateway(bus, seen))
    try:
        headers = {**await hub.bearer("vera"), "Content-Type": "image/jpeg"}
        response = await hub.client.post("/api/v1/detect", content=JPEG, headers=headers)
    finally:
        task.cancel()
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(JPEG), "gateway": "gw-1"}
    [request] = seen
    assert (request.image, request.content_type) == (JPEG, "image/jpeg")
    # A detection changes nothing: no audit row for it (the login has its own).
    assert not [r for r in await hub.audit_rows() if "detect" in str(r["action"])]


async def test_no_gateway_is_a_504_that_says_what_to_run(hub: Hub) -> None:
    headers = {**await hub.bearer("vera"), "Content-Type": "image/png"}
    response = await hub.client.post("/api/v1/detect", content=JPEG, headers=headers)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert detail["code"] == "no_gateway"
    assert "[gateway] enabled" in detail["message"]


@pytest.mark.parametrize(
    ("body", "kind", "status", "code"),
    [
        (JPEG, "text/plain", 415, "unsupported_media_type"),
        (b"", "image/jpeg", 400, "empty_image"),
        (b"x" * (MAX_DETECT_IMAGE_BYTES + 1), "image/jpeg", 413, "too_large"),
    ],
)
async def test_bad_requests_are_refused_before_any_gateway(
    hub: Hub, body: bytes, kind: str, status: int, code: str
) -> None:
    headers = {**await hub.bearer("vera"), "Content-Type": kind}
    response = await hub.client.post("/api/v1/detect", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]["code"] == code


async def test_a_login_is_needed(hub: Hub) -> None:
    response = await hub.client.post(
        "/api/v1/detect", content=JPEG, headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == 401


async def test_a_reply_nobody_waits_for_is_counted(router: DetectRouter, bus: InMemoryBus) -> None:
    await asyncio.wait_for(router.ready.wait(), 5)
    reply = DetectReply(id="gone", gateway="gw-1", status=200, body={})
    await bus.produce(DETECT_REPLIES, key=b"gone", value=encode(reply))
    for _ in range(50):
        if router.late:
            break
        await asyncio.sleep(0.02)
    assert router.late == 1
