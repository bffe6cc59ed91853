"""What `outpost sim run` writes into each agent's `[perception]` is a config the agent takes:
a danger zone on the robot's own camera, in front of it, and a local stop rule."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import AgentSettings
from sim.fleet import danger_zone, perception_section
from sim.scenario import MountedCamera


def settings(perception: dict[str, object]) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "device": {"id": "robot-1"},
            "cameras": [{"name": "robot-1", "source": "http://127.0.0.1:9/cameras/robot-1"}],
            "perception": perception,
        }
    )


def test_the_agent_takes_the_danger_zone_and_its_stop_rule() -> None:
    section = perception_section(Path("/m/model.onnx"), "robot-1", MountedCamera(), 2.5)
    cfg = settings(section).perception
    assert cfg.model == Path("/m/model.onnx")
    [zone] = cfg.zones
    [rule] = cfg.rules
    assert (zone.name, zone.camera, rule.zone, rule.action) == (
        "danger",
        "robot-1",
        "danger",
        "stop",
    )
    assert rule.classes == ["person"]


def test_the_zone_is_the_floor_just_ahead_at_the_bottom_of_the_image() -> None:
    near = danger_zone(MountedCamera(), 1.5)
    far = danger_zone(MountedCamera(), 4.0)
    assert max(y for _, y in near) == 1.0  # reaches the bottom edge
    assert min(y for _, y in far) < min(y for _, y in near)  # further is higher up
    assert all(0.0 < x < 1.0 for x, _ in far)


def test_without_a_model_cameras_only_stream() -> None:
    assert perception_section(None, "robot-1", MountedCamera(), 2.5) == {"default_model": False}
    assert settings({"default_model": False}).perception.rules == []
    no_zone = perception_section(Path("/m.onnx"), "robot-1", MountedCamera(), 0.0)
    assert no_zone == {"model": "/m.onnx"}
