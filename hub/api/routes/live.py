"""`/api/v1/ws`: the live WebSocket (device state, telemetry, detections, acks, alerts).

Authentication: an `Authorization: Bearer …` or `X-API-Key` header where the
client can set one; browsers send `{"type": "auth", "token": "<access token or
API key>"}` as their first message instead (within 10 s). Tokens are never taken
from the URL, where proxies and access logs would keep them.

| close code | why |
|---|---|
| 4401 | no credential, or a bad / expired one |
| 4403 | a `subscribe` names a site outside the user's scope |
| 4008 | too slow: the client fell `queue_limit` messages behind; reconnect |
| 1013 | this hub process runs no live feed (try another, or later) |

After `hello`, the client may narrow what it gets with
`{"type": "subscribe", "sites": [...] | null, "devices": [...] | null, "types":
[...] | null}` (answered `subscribed`; null: everything in scope); a bad message is
answered `{"type": "error", ...}`. Each `subscribe` replaces the previous filter.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.routing import WebSocketRoute

from hub.auth.errors import ApiError
from hub.auth.principal import Principal
from hub.auth.service import AuthService
from hub.live.fanout import LIVE_TYPES, Fanout, Subscriber, TooSlow, control_text

logger = logging.getLogger(__name__)

router = APIRouter()
AUTH_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4008
CLOSE_UNAVAILABLE = 1013
MAX_FILTER = 1000


class _BadMessage(Exception):
    """A client message the socket does not understand."""


class _OutOfScope(Exception):
    """A `subscribe` for a site the user may not see."""


async def live_socket(websocket: WebSocket) -> None:
    """The live feed for the caller's scope (see the module docs)."""
    await websocket.accept()
    principal = await _authenticate(websocket)
    if principal is None:
        return
    fanout: Fanout | None = websocket.app.state.live
    if fanout is None:
        await _close(websocket, CLOSE_UNAVAILABLE, "this hub process runs no live feed")
        return
    subscriber = fanout.subscribe(sites=principal.sites)
    hello = {"user": principal.username, "role": principal.role.value}
    subscriber.offer(control_text("hello", **hello, sites=_listed(principal.sites)))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_send(websocket, subscriber), name="ws-send")
            tg.create_task(_receive(websocket, subscriber), name="ws-receive")
    except* TooSlow as group:
        logger.info("live: %s cut off: %s", principal.username, group.exceptions[0])
        await _close(websocket, CLOSE_TOO_SLOW, str(group.exceptions[0]))
    except* _OutOfScope as group:
        await _close(websocket, CLOSE_FORBIDDEN, str(group.exceptions[0]))
    except* WebSocketDisconnect:
        pass
    finally:
        fanout.unsubscribe(subscriber)


# A plain Starlette route: the socket authenticates itself after `accept` and takes no
# parameters, so it needs none of FastAPI's dependencies, and app-wide HTTP ones (which
# take a `Request`, which a WebSocket is not) must not run on it.
router.routes.append(WebSocketRoute("/api/v1/ws", live_socket, name="live_socket"))


async def _send(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Drain the subscriber's queue into the socket, one message per frame."""
    while True:
        await subscriber.wait()
        while (text := subscriber.next()) is not None:
            await websocket.send_text(text)


async def _receive(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Apply `subscribe` messages; raises `WebSocketDisconnect` when the client leaves."""
    while True:
        text = await websocket.receive_text()
        try:
            reply = _subscribe(subscriber, _message(text))
        except _BadMessage as exc:
            reply = control_text("error", code="bad_message", message=str(exc))
        subscriber.offer(reply)


def _subscribe(subscriber: Subscriber, message: dict[str, Any]) -> str:
    if message.get("type") != "subscribe":
        raise _BadMessage('expected {"type": "subscribe", "sites", "devices", "types"}')
    sites, devices, types = (_names(message, k) for k in ("sites", "devices", "types"))
    if types is not None and not types <= LIVE_TYPES:
        unknown, allowed = sorted(types - LIVE_TYPES), sorted(LIVE_TYPES)
        raise _BadMessage(f"unknown types {unknown}; allowed {allowed}")
    scope = subscriber.scope
    if sites is not None and scope is not None and not sites <= scope:
        raise _OutOfScope(f"site {min(sites - scope)!r} is outside your scope")
    subscriber.sites = scope if sites is None else sites
    subscriber.devices, subscriber.types = devices, types
    chosen = {"sites": sites, "devices": devices, "types": types}
    return control_text("subscribed", **{k: _listed(v) for k, v in chosen.items()})


def _listed(names: frozenset[str] | None) -> list[str] | None:
    return None if names is None else sorted(names)


def _names(message: dict[str, Any], key: str) -> frozenset[str] | None:
    value = message.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_FILTER
        or not all(isinstance(v, str) for v in value)
    ):
        raise _BadMessage(f"{key} must be null or a list of at most {MAX_FILTER} strings")
    return frozenset(value)


def _message(text: str) -> dict[str, Any]:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _BadMessage("not JSON") from exc
    if not isinstance(message, dict):
        raise _BadMessage("expected a JSON object")
    return message


async def _authenticate(websocket: WebSocket) -> Principal | None:
    """The caller from a header or the first message; None once closed with 4401."""
    auth: AuthService = websocket.app.state.auth
    bearer = websocket.headers.get("authorization", "")
    api_key = websocket.headers.get("x-api-key")
    scheme, _, credential = bearer.partition(" ")
    try:
        if (credential and scheme.lower() == "bearer") or api_key:
            return await auth.authenticate(bearer=credential or None, api_key=api_key)
        token = await _first_message_token(websocket)
        return await auth.authenticate(bearer=token, api_key=None)
    except (ApiError, _BadMessage) as exc:
        await _close(websocket, CLOSE_UNAUTHENTICATED, str(exc))
        return None
    except TimeoutError:
        await _close(websocket, CLOSE_UNAUTHENTICATED, "send {type: auth, token} first")
        return None


async def _first_message_token(websocket: WebSocket) -> str:
    async with asyncio.timeout(AUTH_TIMEOUT_S):
        message = _message(await websocket.receive_text())
    token = message.get("token")
    if message.get("type") != "auth" or not isinstance(token, str) or not token:
        raise _BadMessage('the first message must be {"type": "auth", "token": "..."}')
    return token


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with `code`; a client that does not read is given up on after a moment."""
    text = reason.encode()[:120].decode(errors="ignore")  # a close reason holds 123 bytes
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, text)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass  # gone already, or never reading: uvicorn drops the connection when we return
