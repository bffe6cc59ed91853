"""A scenario's floor plan as the hub's site layout (`PUT /api/v1/sites/{id}/layout`).

Zones keep their names, and their kind comes from the name (`danger`, `dock`, `charging`;
anything else is `other`); shelves become rectangles of kind `shelf`; docks and chargers
become spots. The dict is the JSON body the hub's `SiteLayout` takes.

Example:
    >>> from sim.scenario import default_scenario
    >>> layout = scenario_layout(default_scenario(1))
    >>> layout["width_m"], [(z["name"], z["kind"]) for z in layout["zones"]][:3]
    (40.0, [('danger', 'danger'), ('dock', 'dock'), ('charging', 'charging')])
    >>> layout["zones"][3]["polygon"]
    [[6.0, 6.0], [17.0, 6.0], [17.0, 7.2], [6.0, 7.2]]
"""

from __future__ import annotations

from typing import Any

from sim.scenario import Scenario, Shelf

ZONE_KINDS = {"danger": "danger", "dock": "dock", "charging": "charging"}
"""Zone name → layout kind; other names are `other`."""


def scenario_layout(scenario: Scenario) -> dict[str, Any]:
    """The scenario's site extent, zones, shelves and docks/chargers as a site layout."""
    zones = [
        {
            "name": zone.name,
            "kind": ZONE_KINDS.get(zone.name, "other"),
            "polygon": [[x, y] for x, y in zone.polygon],
        }
        for zone in scenario.zones
    ]
    zones += [{"name": s.name, "kind": "shelf", "polygon": _rectangle(s)} for s in scenario.shelves]
    spots = [{"name": d.name, "kind": "dock", "x": d.x, "y": d.y} for d in scenario.docks]
    spots += [{"name": c.name, "kind": "charging", "x": c.x, "y": c.y} for c in scenario.chargers]
    return {
        "width_m": scenario.site.width_m,
        "height_m": scenario.site.height_m,
        "zones": zones,
        "spots": spots,
    }


def _rectangle(shelf: Shelf) -> list[list[float]]:
    """The shelf's footprint, counter-clockwise from its south-west corner."""
    x2, y2 = shelf.x + shelf.w, shelf.y + shelf.d
    return [[shelf.x, shelf.y], [x2, shelf.y], [x2, y2], [shelf.x, y2]]
