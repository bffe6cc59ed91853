"""`GET /api/v1/health`: 200 with each dependency's state, 503 naming the one that is down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.settings import HubSettings
from hub.storage.db import create_engine


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def health(tmp_path: Path, broker_port: int, bus_ok: bool) -> httpx.Response:
    settings = HubSettings.model_validate(
        {"data_dir": str(tmp_path), "broker": {"url": f"mqtt://127.0.0.1:{broker_port}"}}
    )
    engine = create_engine(settings.database.url)

    async def bus_probe() -> str:
        if not bus_ok:
            raise ConnectionError("kafka at 127.0.0.1:1 unreachable")
        return "ok"

    app = create_app(settings, engine, bus_probe)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await client.get("/api/v1/health")
    finally:
        await engine.dispose()


async def test_all_up_is_200(tmp_path: Path, listener: int) -> None:
    response = await health(tmp_path, listener, bus_ok=True)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "bus": "ok", "broker": "ok"},
    }


async def test_a_dependency_down_is_503_naming_it(tmp_path: Path) -> None:
    response = await health(tmp_path, closed_port(), bus_ok=False)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["bus"].startswith("down: ConnectionError: kafka at 127.0.0.1:1")
    assert checks["broker"].startswith("down:")
