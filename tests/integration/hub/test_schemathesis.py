"""schemathesis against the hub on the real PostgreSQL: no 5xx, and every answer is one the
OpenAPI document declares (status code and body schema).

Every operation gets a few valid and invalid requests from the OpenAPI document, as an
admin (an API key), with path parameters aimed at seeded objects half of the time. The
whole run is bounded: `MAX_EXAMPLES` per operation, no shrinking, and `TIME_BUDGET_S`
(then `MIN_EXAMPLES` for each operation left).
Every failure is collected and reported at the end, one line per operation and kind.
Login and enrollment are in (their 401, 410 and 429 are declared); the WebSocket is not in
the OpenAPI document, so schemathesis cannot see it.

The app, its engine and every request live on one event loop (a blocking portal), so the
test itself is synchronous: Hypothesis drives it.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from hub.auth.principal import Role
from hub.bus.memory import InMemoryBus
from hub.detect import DetectRouter
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub, running_hub
from tests.hub.control.support import FakePublisher
from tests.hub.test_detect_route import gateway as stand_in_gateway
from tests.integration.hub.storage.schemas import drop_schema

MAX_EXAMPLES = 25
# Past this, each remaining operation gets only MIN_EXAMPLES: `make test` stays bounded on
# a loaded machine, and every operation is still exercised.
TIME_BUDGET_S = 75.0
MIN_EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Runs last: they remove what the other operations aim at.
DESTRUCTIVE = "DELETE"

_counter = itertools.count()


@dataclass
class Live:
    """The running hub, its event loop, the admin's credentials and the seeded ids."""

    portal: BlockingPortal
    hub: Hub
    client: httpx.AsyncClient
    headers: dict[str, str]
    ids: dict[str, Any]
    protected: dict[str, set[int]]


async def _seed(hub: Hub) -> tuple[dict[str, str], dict[str, Any], dict[str, set[int]]]:
    """plant-a with a group, a device and a command; a spare user and key to change."""
    await add_site(hub, "plant-a")  # creates the admin `root`
    root = await hub.bearer("root")
    group = await hub.client.post("/api/v1/sites/plant-a/groups", headers=root, json={"name": "g"})
    device = await enrolled(hub, "plant-a", "AMR 1")
    cmd = await hub.client.post(f"/api/v1/devices/{device}/estop", headers=root, json={})
    key = await hub.client.post("/api/v1/auth/api-keys", headers=root, json={"name": "st"})
    spare_key = await hub.client.post("/api/v1/auth/api-keys", headers=root, json={"name": "x"})
    spare_user = await hub.add_user("spare", Role.OPERATOR, ["plant-a"])
    for response in (group, cmd, key, spare_key):
        assert response.status_code in (201, 202), response.text
    root_id = next(u.id for u in await hub.users.all() if u.username == "root")
    ids = {
        "site_id": "plant-a",
        "device_id": device,
        "cmd_id": cmd.json()["cmd_id"],
        "user_id": spare_user.id,
        "key_id": spare_key.json()["id"],
    }
    # The admin's own user and key must survive the run: ids that could hit them are
    # redirected to the spare ones.
    protected = {"user_id": {root_id}, "key_id": {key.json()["id"]}}
    return {"X-API-Key": key.json()["key"]}, ids, protected


@pytest.fixture
def live(pg_dsn: str, run_id: str, tmp_path: Path) -> Iterator[Live]:
    """The hub app on a freshly migrated schema, seeded, on one event loop of its own."""
    schema = f"hub_st_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    with start_blocking_portal() as portal:
        try:
            portal.call(migrate, engine)
            running = running_hub(engine, tmp_path / "data", publisher=FakePublisher())
            with portal.wrap_async_context_manager(running) as hub:
                headers, ids, protected = portal.call(_seed, hub)
                # `POST /detect` answered by a stand-in gateway (as FakePublisher stands in
                # for the broker): the hub's side of it is what is exercised here.
                bus = InMemoryBus()
                portal.call(bus.start)
                hub.app.state.detect = router = DetectRouter(bus)
                helpers = [
                    portal.start_task_soon(router.run),
                    portal.start_task_soon(stand_in_gateway, bus, []),
                ]
                # A route that raises answers 500 here, as it would under uvicorn.
                transport = httpx.ASGITransport(app=hub.app, raise_app_exceptions=False)
                client = httpx.AsyncClient(transport=transport, base_url="http://hub")
                try:
                    with portal.wrap_async_context_manager(client):
                        yield Live(portal, hub, client, headers, ids, protected)
                finally:
                    for helper in helpers:
                        helper.cancel()
                    portal.call(bus.stop)
        finally:
            portal.call(engine.dispose)
            portal.call(drop_schema, pg_dsn, schema)


def _aimed(live: Live, case: Any, aim: bool) -> Any:
    """Point the path parameters at seeded objects (when `aim`), never at the admin's own."""
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if (aim and name in live.ids) or value in live.protected.get(name, set()):
            params[name] = live.ids[name]
    return case


async def _send(live: Live, kwargs: dict[str, Any]) -> Any:
    """The request schemathesis built (`requests` arguments), sent with httpx over ASGI."""
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), bytes | str):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    headers = dict(kwargs.get("headers") or {})
    if kwargs.get("cookies"):  # httpx takes cookies per client only: send them as a header
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
    return await live.client.request(
        kwargs["method"], kwargs["url"], headers=headers, params=kwargs.get("params"), **body
    )


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: op.method.upper() == DESTRUCTIVE)


def _strategy(operation: Any) -> Any:
    modes = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    return st.tuples(st.one_of(modes), st.booleans())


def _exercise(live: Live, operation: Any, failures: dict[str, str], deadline: float) -> None:
    sent = [0]

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(_strategy(operation))
    def run(drawn: tuple[Any, bool]) -> None:
        sent[0] += 1
        if sent[0] > MIN_EXAMPLES and time.monotonic() > deadline:
            return
        case = _aimed(live, *drawn)
        kwargs = case.as_transport_kwargs(base_url="http://hub")
        headers = {
            k: v
            for k, v in kwargs["headers"].items()
            if k.lower() not in ("authorization", "x-api-key")
        }
        kwargs["headers"] = {**headers, **live.headers}
        response = live.portal.call(_send, live, kwargs)
        try:
            case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{operation.label}: {failure.title}"
                failures.setdefault(key, f"{key}\n{group.message[:1500]}")

    run()


def test_no_server_error_and_every_response_matches_the_openapi(live: Live) -> None:
    schema = schemathesis.openapi.from_dict(live.hub.app.openapi())
    operations = _operations(schema)
    assert len(operations) > 30, [op.label for op in operations]
    failures: dict[str, str] = {}
    started = time.monotonic()
    for operation in operations:
        _exercise(live, operation, failures, deadline=started + TIME_BUDGET_S)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures.values())


def _cursor(*key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


HOSTILE = [
    ("GET", "/api/v1/audit?cursor=99999999999999999999", None),
    ("GET", "/api/v1/audit?cursor=%C2%B2", None),
    ("GET", "/api/v1/audit?actor=a%00b", None),
    ("GET", "/api/v1/devices?cursor=a%00", None),
    ("GET", "/api/v1/devices?group=99999999999", None),
    ("GET", "/api/v1/devices/a%00b", None),
    ("GET", "/api/v1/sites/a%00b", None),
    ("GET", "/api/v1/commands/a%00b", None),
    ("GET", "/api/v1/devices/{device_id}/commands?cursor=99999999999999999999999.x", None),
    ("GET", "/api/v1/devices/{device_id}/commands?cursor=1.a%00", None),
    ("GET", "/api/v1/devices/{device_id}/events?from=0001-01-01T00:00:00%2B11:00", None),
    ("GET", "/api/v1/devices/{device_id}/events?to=9999-12-31T23:59:59-11:00", None),
    (
        "GET",
        "/api/v1/devices/{device_id}/telemetry?metric=x&from=0001-01-01T00:00:00%2B11:00",
        None,
    ),
    (
        "GET",
        "/api/v1/devices/{device_id}/telemetry?metric=x&from=2026-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
        None,
    ),
    ("GET", "/api/v1/devices/{device_id}/events?cursor=" + _cursor(0, "a", "s", 2**70, 0), None),
    ("GET", "/api/v1/devices/{device_id}/events?cursor=" + _cursor(0, "a\x00", "s", 1, 0), None),
    (
        "GET",
        "/api/v1/devices/{device_id}/detections?cursor=" + _cursor(10**20, "a", "s", 1, 0),
        None,
    ),
    ("POST", "/api/v1/sites", {"id": "plant-z", "name": "a\x00b"}),
    ("PATCH", "/api/v1/devices/{device_id}", {"labels": {"zone": "a\x00"}}),
    ("PATCH", "/api/v1/devices/{device_id}", {"group_id": 2**40}),
    ("POST", "/api/v1/devices/{device_id}/estop", {"reason": "a\x00"}),
    ("POST", "/api/v1/auth/login", {"username": "a\x00", "password": "b"}),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "a\x00"}),
    (
        "POST",
        "/api/v1/enroll",
        {"token": "oet_a\x00", "name": "x", "public_key": "k", "agent_version": "1"},
    ),
    ("PATCH", "/api/v1/users/99999999999", {"disabled": True}),
    ("DELETE", "/api/v1/auth/api-keys/99999999999", None),
]


def test_hostile_input_is_refused_with_422_never_a_server_error(live: Live) -> None:
    """Inputs that once answered 500: NUL bytes, ids and cursors past what PostgreSQL holds,
    times that overflow once converted to UTC, a body that is not UTF-8."""
    answers = []
    for method, path, body in HOSTILE:
        url = path.replace("{device_id}", live.ids["device_id"])
        request = partial(live.client.request, method, url, headers=live.headers, json=body)
        sent = live.portal.call(request)
        answers.append((method, path, sent.status_code))
    not_utf8 = live.portal.call(
        lambda: live.client.post(
            "/api/v1/sites",
            headers={**live.headers, "Content-Type": "application/json"},
            content=b'{"id": "\xff"}',
        )
    )
    answers.append(("POST", "/api/v1/sites (not UTF-8)", not_utf8.status_code))
    assert [a for a in answers if a[2] != 422] == []
    assert not_utf8.json()["detail"][0]["type"] == "json_invalid"
