"""What the MQTT robot adapter makes of the robot's messages (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from edge_agent.config import AgentSettings
from edge_agent.robot.mqtt import MqttRobot
from protocol import Event, KnownEvent, TelemetryPoint

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def robot() -> tuple[MqttRobot, list[TelemetryPoint], list[Event]]:
    points: list[TelemetryPoint] = []
    events: list[Event] = []
    settings = AgentSettings.model_validate(
        {"device": {"id": "amr-1"}, "robot": {"adapter": "mqtt"}}
    )
    adapter = MqttRobot(settings, on_point=points.append, on_event=events.append, clock=lambda: NOW)
    return adapter, points, events


def test_odometry_and_battery_become_telemetry_and_a_heartbeat() -> None:
    adapter, points, _events = robot()
    assert adapter.prefix == "robot/amr-1"
    assert adapter.heard_at is None
    adapter._received("odom", b'{"x":1,"y":2,"theta":0.5,"linear":0.3,"angular":0}')
    adapter._received("battery", b'{"percent":81.5}')
    assert adapter.heard_at == NOW
    assert {(p.metric, p.value) for p in points} == {
        ("robot.odom.x", 1.0),
        ("robot.odom.y", 2.0),
        ("robot.odom.theta", 0.5),
        ("robot.odom.linear", 0.3),
        ("robot.odom.angular", 0.0),
        ("robot.battery.percent", 81.5),
    }


def test_faults_become_events_and_invalid_messages_are_dropped() -> None:
    adapter, points, events = robot()
    adapter._received("faults", b'{"code":"E42","message":"bumper"}')
    adapter._received("odom", b'{"x": "far"}')
    adapter._received("battery", b"not json")
    assert [(e.type, e.detail) for e in events] == [
        (KnownEvent.ROBOT_FAULT, {"code": "E42", "message": "bumper"})
    ]
    assert points == []
    assert adapter.heard_at == NOW, "a garbled message still proves the robot is alive"
