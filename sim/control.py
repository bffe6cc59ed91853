"""The local control endpoint of a running `outpost sim run`, and its client.

| request | answer |
|---|---|
| `GET /robots` | each robot: device, face, pose, velocity, battery, faults, link, ... |
| `POST /faults` (a `sim.scenario.Fault` as JSON) | 202 and the fault, or 422 with the reason |
| `POST /actors/{id}/walk` (`{"to": [x, y], "from": [x, y]}`) | 202; 404: unknown actor |
| `GET /health` | 200 `{"ok": true}` |

A walk sends a scenario person or forklift (appearing at the optional `from` first) to
`to`, where it stays: a walk-in test of a robot's danger zone. `GET /robots` also lists
the actors' poses.

It listens on loopback only: whoever can reach it can break the simulated fleet.

Example:
    $ curl -s -XPOST localhost:8765/faults -d '{"kind": "link_cut", "seconds": 20}'
    $ curl -s -XPOST localhost:8765/actors/picker-1/walk -d '{"to": [12.0, 4.0]}'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.errors import SimError
from sim.scenario import Fault, Point

logger = logging.getLogger(__name__)

DEFAULT_CONTROL_PORT = 8765
MAX_BODY = 65536
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 422: "Unprocessable"}


class Walk(BaseModel):
    """`POST /actors/{id}/walk`: where an actor goes, and where it appears first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Point
    from_: Point | None = None

    @classmethod
    def parse(cls, body: bytes) -> Walk:
        """From the request's JSON (`from` is a Python keyword, hence the alias here)."""
        data = orjson.loads(body or b"{}")
        if isinstance(data, dict) and "from" in data:
            data["from_"] = data.pop("from")
        return cls.model_validate(data)


Inject = Callable[[Fault], Awaitable[None]]
Snapshot = Callable[[], dict[str, Any]]
WalkActor = Callable[[str, Walk], None]


class ControlServer:
    """A tiny HTTP/1.1 server on the run's event loop (one request per connection)."""

    def __init__(
        self,
        *,
        inject: Inject,
        snapshot: Snapshot,
        walk: WalkActor | None = None,
        port: int = DEFAULT_CONTROL_PORT,
    ):
        self._inject, self._snapshot, self._walk, self.port = inject, snapshot, walk, port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1:`port` (0: a free port, read `port` afterwards)."""
        try:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        except OSError as exc:
            raise SimError(
                f"the control endpoint cannot listen on 127.0.0.1:{self.port}: {exc}; "
                "pick another --control-port"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                method, path, body = await _read_request(reader)
                status, answer = await self._route(method, path, body)
            writer.write(_response(status, answer))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            logger.debug("control request dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        if method == "GET" and path == "/health":
            return 200, {"ok": True}
        if method == "GET" and path == "/robots":
            return 200, self._snapshot()
        if method == "POST" and path == "/faults":
            try:
                fault = Fault.model_validate_json(body or b"{}")
                await self._inject(fault)
            except ValidationError as exc:
                return 422, {"detail": "; ".join(e["msg"] for e in exc.errors())}
            except SimError as exc:
                return 422, {"detail": str(exc)}
            return 202, fault.model_dump(exclude_defaults=True)
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "actors" and parts[2] == "walk":
            return self._walk_actor(parts[1], body)
        return 404, {
            "detail": f"no {method} {path} "
            "(GET /robots, POST /faults, POST /actors/{id}/walk, GET /health)"
        }

    def _walk_actor(self, actor: str, body: bytes) -> tuple[int, object]:
        if self._walk is None:
            return 404, {"detail": "this run does not move actors"}
        try:
            walk = Walk.parse(body)
            self._walk(actor, walk)
        except (ValidationError, orjson.JSONDecodeError) as exc:
            return 422, {"detail": str(exc)[:500]}
        except KeyError as exc:
            return 404, {"detail": str(exc.args[0]) if exc.args else "no such actor"}
        return 202, {"actor": actor, "to": list(walk.to)}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        raise ValueError("request body too large")
    body = await reader.readexactly(length) if length else b""
    return method, path.split("?", 1)[0], body


def _response(status: int, answer: object) -> bytes:
    body = orjson.dumps(answer)
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def send_fault(control_url: str, fault: Fault) -> dict[str, Any]:
    """POST a fault to a running `outpost sim run`; `SimError` when it is refused or unreachable."""
    try:
        answer = httpx.post(
            f"{control_url.rstrip('/')}/faults",
            content=fault.model_dump_json(exclude_none=True),
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise SimError(
            f"no `outpost sim run` answers at {control_url} ({exc}); start one, or pass --control"
        ) from exc
    if answer.status_code != httpx.codes.ACCEPTED:
        raise SimError(
            f"the simulator refused the fault: {answer.json().get('detail', answer.text)}"
        )
    result: dict[str, Any] = answer.json()
    return result


def robots(control_url: str) -> dict[str, Any]:
    """What a running `outpost sim run` says about its robots (`GET /robots`)."""
    answer = httpx.get(f"{control_url.rstrip('/')}/robots", timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def walk_actor(
    control_url: str,
    actor: str,
    to: tuple[float, float],
    start: tuple[float, float] | None = None,
) -> None:
    """Send a scenario actor to `to` (appearing at `start` first); `SimError` if refused."""
    body: dict[str, Any] = {"to": list(to)}
    if start is not None:
        body["from"] = list(start)
    try:
        answer = httpx.post(f"{control_url.rstrip('/')}/actors/{actor}/walk", json=body, timeout=10)
    except httpx.HTTPError as exc:
        raise SimError(f"no `outpost sim run` answers at {control_url} ({exc})") from exc
    if answer.status_code != httpx.codes.ACCEPTED:
        raise SimError(
            f"the simulator refused the walk: {answer.json().get('detail', answer.text)}"
        )
