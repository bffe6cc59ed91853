"""Site layouts (the map's floor plan): what the schema refuses, and the API by role."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hub.api.schemas.assets import SiteLayout
from hub.auth.principal import Role
from sim.layout import scenario_layout
from sim.scenario import default_scenario
from tests.hub.assets.support import add_site
from tests.hub.auth.support import Hub

SQUARE = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]


def layout(**zone: Any) -> dict[str, Any]:
    """A 40 x 24 m layout with one zone (a square `danger` unless overridden)."""
    return {
        "width_m": 40.0,
        "height_m": 24.0,
        "zones": [{"name": "danger", "kind": "danger", "polygon": SQUARE, **zone}],
        "spots": [{"name": "dock-1", "kind": "dock", "x": 38.0, "y": 6.0}],
    }


def test_a_good_layout_is_taken_as_given() -> None:
    taken = SiteLayout.model_validate(layout())
    assert taken.model_dump(mode="json") == layout()


@pytest.mark.parametrize(
    ("change", "wanted"),
    [
        ({"kind": "lava"}, "zones.0.kind"),
        ({"polygon": SQUARE[:2]}, "zones.0.polygon"),
        ({"polygon": [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]}, "polygon has no area"),
        ({"polygon": [[0.0, 0.0], [4.0, float("nan")], [0.0, 4.0]]}, "zones.0.polygon.1.1"),
        ({"polygon": [[0.0, 0.0], [4.0, float("inf")], [0.0, 4.0]]}, "zones.0.polygon.1.1"),
        ({"polygon": [[0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0]]}, "zones.0.polygon.1"),
        ({"name": "no spaces"}, "zones.0.name"),
        ({"extra": 1}, "zones.0.extra"),
    ],
)
def test_a_bad_zone_is_refused_naming_it(change: dict[str, Any], wanted: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SiteLayout.model_validate(layout(**change))
    assert wanted in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"width_m": 0.0},
        {"height_m": 10_001.0},
        {"width_m": float("nan")},
        {"spots": [{"name": "pad", "kind": "lava", "x": 1.0, "y": 1.0}]},
        {"zones": [layout()["zones"][0]] * 201},
    ],
)
def test_a_bad_extent_spot_or_count_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SiteLayout.model_validate({**layout(), **bad})


def test_the_simulated_warehouse_is_a_valid_layout() -> None:
    taken = SiteLayout.model_validate(scenario_layout(default_scenario(3)))
    assert (taken.width_m, taken.height_m) == (40.0, 24.0)
    assert {z.kind for z in taken.zones} == {"danger", "dock", "charging", "shelf"}


async def test_admins_set_and_remove_a_layout_everyone_in_scope_sees_it(hub: Hub) -> None:
    await add_site(hub, "plant-a")
    await hub.add_user("vic", Role.VIEWER, ["plant-a"])
    await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
    url = "/api/v1/sites/plant-a/layout"
    body = scenario_layout(default_scenario(3))

    async def put(user: str, json: Any = body) -> int:
        return (await hub.client.put(url, headers=await hub.bearer(user), json=json)).status_code

    async def delete(user: str) -> int:
        return (await hub.client.delete(url, headers=await hub.bearer(user))).status_code

    assert [await put("vic"), await put("olga")] == [403, 403]
    assert [await delete("vic"), await delete("olga")] == [403, 403]
    placed = await hub.client.put(url, headers=await hub.bearer("root"), json=body)
    assert placed.status_code == 200, placed.text
    assert placed.json()["layout"] == SiteLayout.model_validate(body).model_dump(mode="json")

    vic = await hub.bearer("vic")
    one = (await hub.client.get("/api/v1/sites/plant-a", headers=vic)).json()
    listed = (await hub.client.get("/api/v1/sites", headers=vic)).json()
    assert one["layout"] == listed[0]["layout"] == placed.json()["layout"]
    assert [z["name"] for z in one["layout"]["zones"]][:3] == ["danger", "dock", "charging"]

    bad = await hub.client.put(url, headers=await hub.bearer("root"), json=layout(kind="lava"))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "zones", 0, "kind"]
    missing = await hub.client.put(
        "/api/v1/sites/plant-z/layout", headers=await hub.bearer("root"), json=body
    )
    assert missing.status_code == 404

    assert await delete("root") == 204
    assert (await hub.client.get("/api/v1/sites/plant-a", headers=vic)).json()["layout"] is None
    assert await delete("root") == 204  # nothing left to remove: still done
    changes = [r for r in await hub.audit_rows() if r["target"] == url]
    assert [(r["actor"], r["decision"]) for r in changes] == [
        ("vic", "denied"),
        ("olga", "denied"),
        ("vic", "denied"),
        ("olga", "denied"),
        ("root", "allowed"),
        ("root", "allowed"),  # the 422: refused input, still a trace
        ("root", "allowed"),
        ("root", "allowed"),
    ]
