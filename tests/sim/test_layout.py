"""A scenario's floor plan as the hub's site layout: zones by name, shelves, docks, chargers."""

from __future__ import annotations

from sim.layout import scenario_layout
from sim.scenario import Scenario, default_scenario


def test_the_warehouse_becomes_its_zones_shelves_and_spots() -> None:
    layout = scenario_layout(default_scenario(3))
    assert (layout["width_m"], layout["height_m"]) == (40.0, 24.0)
    kinds = [(z["name"], z["kind"]) for z in layout["zones"]]
    assert kinds[:3] == [("danger", "danger"), ("dock", "dock"), ("charging", "charging")]
    shelves = {name for name, kind in kinds if kind == "shelf"}
    assert shelves == {f"{row}{n}" for row in "ABCD" for n in (1, 2)}
    a1 = next(z for z in layout["zones"] if z["name"] == "A1")
    assert a1["polygon"] == [[6.0, 6.0], [17.0, 6.0], [17.0, 7.2], [6.0, 7.2]]
    spots = {(s["name"], s["kind"]) for s in layout["spots"]}
    assert {("dock-1", "dock"), ("dock-3", "dock"), ("charger-4", "charging")} <= spots
    assert len(spots) == 7


def test_a_zone_named_otherwise_is_other_and_an_empty_site_has_no_parts() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "yard",
            "site": {"width_m": 10.0, "height_m": 5.0},
            "zones": [{"name": "loading", "polygon": [[0, 0], [2, 0], [2, 2]]}],
        }
    )
    layout = scenario_layout(scenario)
    assert layout["zones"] == [
        {"name": "loading", "kind": "other", "polygon": [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]]}
    ]
    assert layout["spots"] == []
