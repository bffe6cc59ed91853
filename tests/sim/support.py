"""Small scenarios for the simulator's tests: an empty floor, one robot, what a test adds."""

from __future__ import annotations

from typing import Any

from sim.scenario import Scenario
from sim.world import World


def scenario(**extra: Any) -> Scenario:
    """A 20 x 20 m empty site with robot `r1` at (2, 10) facing east, plus `extra` keys."""
    data: dict[str, Any] = {
        "name": "test",
        "site": {"width_m": 20.0, "height_m": 20.0},
        "robots": [{"id": "r1", "x": 2.0, "y": 10.0, "heading": 0.0}],
    }
    data.update(extra)
    return Scenario.model_validate(data)


def world(seed: int = 0, **extra: Any) -> World:
    """A `World` of `scenario(**extra)`."""
    return World(scenario(**extra), seed=seed)


def standing(actor_id: str, kind: str, x: float, y: float) -> dict[str, Any]:
    """An actor that stays (for any test's length) where it is put."""
    return {
        "id": actor_id,
        "kind": kind,
        "path": [[x, y], [x + 0.01, y]],
        "speed_mps": 0.01,
        "pause_s": 3600.0,
    }


def run(w: World, seconds: float, dt: float = 0.05) -> None:
    """Step `w` for `seconds` in steps of `dt`."""
    for _ in range(round(seconds / dt)):
        w.step(dt)
