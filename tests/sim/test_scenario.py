"""Scenarios: the built-in warehouse, YAML loading, and errors that name file, key and allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ScenarioError, SimError
from sim.scenario import MAX_ROBOTS, Scenario, default_scenario, load_scenario

WAREHOUSE = Path(__file__).parents[2] / "sim" / "scenarios" / "warehouse.yaml"


def test_the_shipped_yaml_is_the_default_scenario() -> None:
    assert load_scenario(WAREHOUSE) == default_scenario()


def test_default_scenario_has_the_sites_parts() -> None:
    s = default_scenario()
    assert [r.id for r in s.robots] == ["robot-1", "robot-2", "robot-3"]
    assert {r.face for r in s.robots} == {"mqtt", "ros"}
    assert {a.kind for a in s.actors} == {"person", "forklift"}
    assert {"danger", "dock"} <= {z.name for z in s.zones}
    assert all(len(part) > 0 for part in (s.shelves, s.docks, s.chargers, s.cameras))


@pytest.mark.parametrize("robots", [1, 7, MAX_ROBOTS])
def test_default_scenario_scales_its_fleet_onto_free_floor(robots: int) -> None:
    s = default_scenario(robots)
    assert len({r.id for r in s.robots}) == robots
    Scenario.model_validate(s.model_dump())  # every robot on the site, none in a shelf


def test_too_many_robots_is_refused_with_the_range() -> None:
    with pytest.raises(ScenarioError, match=f"1..{MAX_ROBOTS}"):
        default_scenario(MAX_ROBOTS + 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = "name: t\nsite: {width_m: 10, height_m: 10}\n"


def test_a_bad_value_names_the_file_the_key_and_the_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "robots:\n  - {id: r1, x: 1, y: 1, face: zigbee}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert str(path) in message
    assert "robots.0.face" in message
    assert "'mqtt' or 'ros'" in message
    assert "zigbee" in message


def test_an_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "camras: []\n")
    with pytest.raises(ScenarioError, match="camras: unknown key"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (BASE + "robots:\n  - {id: r1, x: 50, y: 1}\n", "off the site"),
        (
            BASE + "shelves: [{name: s, x: 0, y: 0, w: 5, d: 5}]\nrobots: [{id: r1, x: 1, y: 1}]\n",
            "inside shelf 's'",
        ),
        (BASE + "robots: [{id: r1, x: 1, y: 1}, {id: r1, x: 2, y: 2}]\n", "duplicate names"),
        (BASE + "robots: [{id: Robot_1, x: 1, y: 1}]\n", "robots.0.id"),
        (BASE + "zones: [{name: danger, polygon: [[0, 0], [1, 1], [2, 2]]}]\n", "no area"),
        (
            BASE + "actors: [{id: p, kind: dog, path: [[1, 1], [2, 2]], speed_mps: 1}]\n",
            "'person' or 'forklift'",
        ),
    ],
)
def test_unusable_scenarios_are_refused_clearly(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(write(tmp_path, text))


def test_a_missing_file_is_a_sim_error(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.yaml")
