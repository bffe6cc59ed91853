"""Authorization matrix on the real PostgreSQL: every device route and every site route, for
each role, on a device (site) inside and outside the caller's scope.

The routes come from `app.routes`, so a route added later is exercised at once: its body
comes from `REQUESTS` or, failing that, is built from its OpenAPI schema, and its role
from `MIN_ROLE` or, failing that, viewer for a read and operator for a change. A route
without an entry in both tables still fails the test, listed, so nobody forgets to say
what it should require.

What must hold, cell by cell:
- outside the caller's scope: never 2xx; 403 when the role is too low, else 404;
- inside it: 403 when the role is too low, else the route's success;
- each state-changing attempt, allowed or denied, leaves exactly one audit row naming the
  caller and the device (site), `denied` for a 403 and `allowed` for a success.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import text

from hub.auth.principal import Role
from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub, running_hub
from tests.hub.control.support import FakePublisher
from tests.integration.hub.storage.schemas import drop_schema

_counter = itertools.count()
_names = itertools.count()

SITE_A, SITE_B = "plant-a", "plant-b"
SITES = (SITE_A, SITE_B)
# name -> (role, sites); admins are never limited to sites.
USERS = {
    "vic": (Role.VIEWER, [SITE_A]),
    "olga": (Role.OPERATOR, [SITE_A]),
    "root": (Role.ADMIN, None),
}
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

Body = dict[str, Any] | Callable[[], dict[str, Any]] | None
Route = tuple[str, frozenset[str]]  # path template, methods


@dataclass(frozen=True)
class Call:
    """How to call one route: body, query, and the statuses that mean it did its work."""

    body: Body = None
    query: dict[str, str] = field(default_factory=dict)
    success: frozenset[int] = frozenset(range(200, 300))


def _group() -> dict[str, Any]:
    return {"name": f"group {next(_names)}"}


# (method, path template) -> the least role that may call it.
MIN_ROLE: dict[tuple[str, str], Role] = {
    ("GET", "/api/v1/devices/{device_id}"): Role.VIEWER,
    ("PATCH", "/api/v1/devices/{device_id}"): Role.OPERATOR,
    ("DELETE", "/api/v1/devices/{device_id}"): Role.ADMIN,
    ("POST", "/api/v1/devices/{device_id}/estop"): Role.OPERATOR,
    ("POST", "/api/v1/devices/{device_id}/release"): Role.OPERATOR,
    ("POST", "/api/v1/devices/{device_id}/override"): Role.OPERATOR,
    ("POST", "/api/v1/devices/{device_id}/path"): Role.OPERATOR,
    ("POST", "/api/v1/devices/{device_id}/capture"): Role.OPERATOR,
    ("GET", "/api/v1/devices/{device_id}/commands"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/telemetry"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/metrics"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/detections"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/events"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/frames"): Role.VIEWER,
    ("GET", "/api/v1/devices/{device_id}/drift"): Role.VIEWER,
    ("DELETE", "/api/v1/devices/{device_id}/drift/reference"): Role.OPERATOR,
    ("GET", "/api/v1/devices/{device_id}/frames/{frame_id}.jpg"): Role.VIEWER,
    ("GET", "/api/v1/sites/{site_id}"): Role.VIEWER,
    ("PATCH", "/api/v1/sites/{site_id}"): Role.ADMIN,
    ("DELETE", "/api/v1/sites/{site_id}"): Role.ADMIN,
    ("PUT", "/api/v1/sites/{site_id}/layout"): Role.ADMIN,
    ("DELETE", "/api/v1/sites/{site_id}/layout"): Role.ADMIN,
    ("GET", "/api/v1/sites/{site_id}/groups"): Role.VIEWER,
    ("POST", "/api/v1/sites/{site_id}/groups"): Role.OPERATOR,
    ("POST", "/api/v1/sites/{site_id}/estop"): Role.OPERATOR,
}

# (method, path template) -> how to call it, where the defaults (no body, 2xx) do not do.
REQUESTS: dict[tuple[str, str], Call] = {
    ("PATCH", "/api/v1/devices/{device_id}"): Call({"name": "renamed"}),
    ("POST", "/api/v1/devices/{device_id}/estop"): Call({"reason": "drill"}),
    ("POST", "/api/v1/devices/{device_id}/release"): Call({"reason": "clear"}),
    ("POST", "/api/v1/devices/{device_id}/override"): Call(
        {"linear": 0.1, "angular": 0.0, "duration_s": 1.0}
    ),
    ("POST", "/api/v1/devices/{device_id}/path"): Call(
        {"waypoints": [{"x": 1.0, "y": 1.0}], "speed": 0.5, "timeout_s": 30}
    ),
    ("POST", "/api/v1/devices/{device_id}/capture"): Call({"max_frames": 5}),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): Call(query={"metric": "battery"}),
    # No frame is kept: an allowed caller learns just that.
    ("GET", "/api/v1/devices/{device_id}/frames/{frame_id}.jpg"): Call(success=frozenset({404})),
    ("PATCH", "/api/v1/sites/{site_id}"): Call({"name": "renamed"}),
    # The site still has its device (removed devices keep their rows): 409, nothing deleted.
    ("DELETE", "/api/v1/sites/{site_id}"): Call(success=frozenset({409})),
    ("POST", "/api/v1/sites/{site_id}/groups"): Call(_group),
    ("POST", "/api/v1/sites/{site_id}/estop"): Call({"reason": "drill"}),
    ("PUT", "/api/v1/sites/{site_id}/layout"): Call(
        {
            "width_m": 40.0,
            "height_m": 24.0,
            "zones": [{"name": "danger", "kind": "danger", "polygon": [[0, 0], [4, 0], [4, 4]]}],
            "spots": [{"name": "dock-1", "kind": "dock", "x": 38.0, "y": 6.0}],
        }
    ),
}


@pytest.fixture
def publisher() -> FakePublisher:
    """Commands go nowhere: the matrix is about who may send them."""
    return FakePublisher()


@pytest.fixture
async def hub(
    pg_dsn: str, run_id: str, tmp_path: Path, publisher: FakePublisher
) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own."""
    schema = f"hub_authz_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data", publisher=publisher) as running:
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)


@dataclass
class Fleet:
    """Two sites with one device each, three users, their login headers."""

    hub: Hub
    devices: dict[str, str]  # site -> device
    headers: dict[str, dict[str, str]]

    async def last_audit_id(self) -> int:
        async with self.hub.sessions() as session:
            return int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log")))

    async def audit_after(self, row_id: int) -> list[dict[str, Any]]:
        async with self.hub.sessions() as session:
            rows = await session.execute(
                text("SELECT * FROM audit_log WHERE id > :id ORDER BY id"), {"id": row_id}
            )
            return [dict(r._mapping) for r in rows]


async def _fleet(hub: Hub) -> Fleet:
    await add_site(hub, SITE_A)
    await add_site(hub, SITE_B)
    devices = {site: await enrolled(hub, site, f"AMR {n}") for n, site in enumerate(SITES)}
    for name, (role, sites) in USERS.items():
        if name != "root":  # made by add_site
            await hub.add_user(name, role, sites)
    headers = {name: await hub.bearer(name) for name in USERS}
    return Fleet(hub, devices, headers)


# --- requests from the OpenAPI document, for routes without an entry ------------------------


def _example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small value that satisfies `schema` (the common cases, not all of JSON Schema)."""
    if "$ref" in schema:
        return _example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("examples", "enum"):
        if schema.get(key):
            return schema[key][0]
    if "default" in schema:
        return schema["default"]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _example(options[0], components)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(props[k], components) for k in schema.get("required", [])}
    if kind == "array":
        return [_example(schema.get("items", {}), components)] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return True
    return "x" * max(1, schema.get("minLength", 1))


def _from_openapi(openapi: dict[str, Any], method: str, path: str) -> Call:
    operation = openapi["paths"][path][method.lower()]
    components = openapi.get("components", {}).get("schemas", {})
    query = {
        p["name"]: str(_example(p.get("schema", {}), components))
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    content = operation.get("requestBody", {}).get("content", {})
    body = _example(content["application/json"]["schema"], components) if content else None
    return Call(body, query)


# --- the matrix ------------------------------------------------------------------------------


def _all_routes(app: FastAPI) -> list[Route]:
    """(path, methods) of every HTTP route, those of included routers too.

    FastAPI 0.16x keeps included routers lazy in `app.routes`; `iter_route_contexts`
    expands them (older versions list plain `APIRoute`s, which it passes through).
    """
    expand = getattr(fastapi.routing, "iter_route_contexts", iter)
    found = []
    for context in expand(app.routes):
        path, methods = getattr(context, "path", None), getattr(context, "methods", None)
        if isinstance(getattr(context, "original_route", context), APIRoute) and path and methods:
            found.append((path, frozenset(methods)))
    return found


def _routes(hub: Hub, param: str) -> list[Route]:
    """Every route whose path has `{param}`, changes after reads, removals last."""
    found = [r for r in _all_routes(hub.app) if f"{{{param}}}" in r[0]]
    order = {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}
    return sorted(found, key=lambda r: (min(order.get(m, 1) for m in r[1]), r[0]))


def _expected(role: Role, needed: Role, in_scope: bool, call: Call) -> frozenset[int]:
    if RANK[role] < RANK[needed]:
        return frozenset({403})
    return call.success if in_scope else frozenset({404})


@dataclass
class Matrix:
    """What was sent and what came back, and every cell that broke a rule."""

    fleet: Fleet
    openapi: dict[str, Any]
    uncovered: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    attempts: int = 0

    def call_for(self, method: str, path: str) -> tuple[Role, Call]:
        key = (method, path)
        if key not in MIN_ROLE:
            self.uncovered.add(f"{method} {path}")
        default = Role.VIEWER if method == "GET" else Role.OPERATOR
        call = REQUESTS.get(key) or _from_openapi(self.openapi, method, path)
        return MIN_ROLE.get(key, default), call

    async def cell(
        self, route: Route, method: str, user: str, target: tuple[str, str], site: str
    ) -> None:
        param, value = target
        path = route[0]
        role, (needed, call) = USERS[user][0], self.call_for(method, path)
        url = path.replace(f"{{{param}}}", value).replace("{frame_id}", "f1")
        body = call.body() if callable(call.body) else call.body
        in_scope = role is Role.ADMIN or site == SITE_A
        before = await self.fleet.last_audit_id()
        response = await self.fleet.hub.client.request(
            method, url, headers=self.fleet.headers[user], params=call.query, json=body
        )
        where = f"{method} {path} as {user} on {site}"
        expected = _expected(role, needed, in_scope, call)
        status = response.status_code
        if status not in expected:
            self.problems.append(f"{where}: {status} (expected {sorted(expected)}) {response.text}")
        if 200 <= status < 300 and not in_scope:
            self.problems.append(f"{where}: 2xx OUTSIDE THE CALLER'S SCOPE")
        if method in CHANGES:
            self.attempts += 1
            self.check_audit(where, user, value, status, await self.fleet.audit_after(before))

    def check_audit(
        self, where: str, user: str, target: str, status: int, rows: list[dict[str, Any]]
    ) -> None:
        """One row for the attempt (a site stop adds one per device it stopped), all by `user`."""
        facts = [(r["actor"], r["target"], r["decision"], r["result"]) for r in rows]
        naming = [r for r in rows if _names_target(r["target"], target)]
        if len(naming) != 1 or any(r["actor"] != user for r in rows):
            self.problems.append(f"{where}: want 1 audit row naming {target}, by {user}: {facts}")
            return
        row = naming[0]
        decision = {403: "denied"}.get(status, "allowed" if status < 300 else row["decision"])
        if row["decision"] != decision:
            self.problems.append(f"{where} ({status}): audit row {facts[0]}, want {decision}")


def _names_target(row_target: str | None, target: str) -> bool:
    """`device:<id>`, `site:<id>`, or the request's path with the id as one segment."""
    return row_target is not None and target in re.split(r"[:/]", row_target)


async def _run_matrix(fleet: Fleet, param: str, targets: dict[str, str]) -> Matrix:
    matrix = Matrix(fleet, fleet.hub.app.openapi())
    routes = _routes(fleet.hub, param)
    assert routes, f"no route has {{{param}}}: the matrix would test nothing"
    for route in routes:
        for method in sorted(route[1] - {"HEAD", "OPTIONS"}):
            for user in USERS:  # viewer, operator, then admin: a removal goes last
                for site, value in targets.items():
                    await matrix.cell(route, method, user, (param, value), site)
    return matrix


def _report(matrix: Matrix) -> None:
    assert matrix.problems == [], "\n".join(matrix.problems)
    assert matrix.uncovered == set(), (
        "routes without an entry in MIN_ROLE (and REQUESTS, for a change): "
        f"{sorted(matrix.uncovered)}"
    )


async def test_every_device_route_by_role_and_scope(hub: Hub, publisher: FakePublisher) -> None:
    fleet = await _fleet(hub)
    matrix = await _run_matrix(fleet, "device_id", {site: d for site, d in fleet.devices.items()})
    _report(matrix)
    assert matrix.attempts >= 3 * 2 * 6  # the six device changes, by 3 users on 2 devices
    # Only the allowed commands went out, and never to the other site's device for olga.
    topics = [topic for topic, payload, _ in publisher.sent]
    assert topics, "no command was sent: the allowed cells did not reach the publisher"
    assert all(re.fullmatch(r"outpost/v1/[a-z0-9-]+/cmd", t) for t in topics)


async def test_every_site_route_by_role_and_scope(hub: Hub) -> None:
    fleet = await _fleet(hub)
    _report(await _run_matrix(fleet, "site_id", {SITE_A: SITE_A, SITE_B: SITE_B}))


async def test_a_viewer_can_neither_stop_nor_release(hub: Hub, publisher: FakePublisher) -> None:
    fleet = await _fleet(hub)
    mine = fleet.devices[SITE_A]
    vic = fleet.headers["vic"]
    for action, body in (("estop", {"reason": "x"}), ("release", {"reason": "x"})):
        response = await hub.client.post(f"/api/v1/devices/{mine}/{action}", headers=vic, json=body)
        assert response.status_code == 403, response.text
    for path in (f"/api/v1/sites/{SITE_A}/estop", "/api/v1/fleet/estop"):
        assert (await hub.client.post(path, headers=vic)).status_code == 403
    assert publisher.sent == []


async def test_an_operator_of_one_site_cannot_command_another(
    hub: Hub, publisher: FakePublisher
) -> None:
    fleet = await _fleet(hub)
    olga, theirs = fleet.headers["olga"], fleet.devices[SITE_B]
    before = await fleet.last_audit_id()
    refused = [
        await hub.client.post(f"/api/v1/devices/{theirs}/estop", headers=olga, json={}),
        await hub.client.post(f"/api/v1/sites/{SITE_B}/estop", headers=olga),
    ]
    assert [r.status_code for r in refused] == [404, 404]
    fleet_stop = await hub.client.post("/api/v1/fleet/estop", headers=olga)
    assert fleet_stop.status_code == 202, fleet_stop.text
    # The fleet stop covers her site only: the other site's device got nothing.
    assert [c["device_id"] for c in fleet_stop.json()["items"]] == [fleet.devices[SITE_A]]
    assert [topic for topic, _, _ in publisher.sent] == [f"outpost/v1/{fleet.devices[SITE_A]}/cmd"]
    rows = [
        (r["actor"], r["action"], r["target"], r["decision"])
        for r in await fleet.audit_after(before)
    ]
    assert rows == [
        ("olga", "command.estop", f"device:{theirs}", "denied"),
        ("olga", "command.estop_site", f"site:{SITE_B}", "denied"),
        ("olga", "command.estop", f"device:{fleet.devices[SITE_A]}", "allowed"),
        ("olga", "command.estop_fleet", "fleet", "allowed"),
    ]
