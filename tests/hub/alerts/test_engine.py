"""The rule engine: each default rule, level conditions, and what it ignores."""

from __future__ import annotations

from hub.alerts.conditions import AlertSeverity, EventMatch, MetricThreshold, ZoneIntrusion
from hub.alerts.engine import Clear, Engine, Liveness, Raise, Rule
from tests.hub.alerts.support import T0, at, danger, default_rules, event, metric, state

RULES = default_rules()
ALL = list(RULES.values())


def kinds(actions: list[Raise | Clear]) -> list[tuple[str, str, str]]:
    return [(type(a).__name__, a.rule.name, a.device) for a in actions]


def test_the_migration_seeds_seven_valid_default_rules() -> None:
    assert sorted(RULES) == [
        "Battery low",
        "Buffer dropping",
        "Device offline",
        "Drift over threshold",
        "Model rejected",
        "Person in danger zone",
        "Stop engaged",
    ]


def test_a_person_in_a_danger_zone_raises_a_critical_alert() -> None:
    actions = Engine(offline_after_s=60).on_envelope(danger("amr-7"), ALL)
    assert kinds(actions) == [("Raise", "Person in danger zone", "amr-7")]
    raised = actions[0]
    assert isinstance(raised, Raise)
    assert raised.rule.severity is AlertSeverity.CRITICAL
    assert "person in zone dock" in raised.message
    assert raised.detail["zone"] == "dock"
    assert raised.detail["event"] == "rule_fired"


def test_zone_and_class_filters_narrow_the_zone_rule() -> None:
    rule = Rule(9, "Dock only", AlertSeverity.CRITICAL, ZoneIntrusion(zones=["dock"]))
    engine = Engine(offline_after_s=60)
    assert kinds(engine.on_envelope(danger("amr-7", zone="aisle"), [rule])) == []
    assert kinds(engine.on_envelope(danger("amr-7", cls="forklift"), [rule])) == []
    assert kinds(engine.on_envelope(danger("amr-7"), [rule])) == [("Raise", "Dock only", "amr-7")]
    # a rule without a zone in its detail is not an intrusion
    plain = event("amr-7", "rule_fired", classes=["person"], rule="count")
    assert engine.on_envelope(plain, [rule]) == []


def test_stop_engaged_raises_and_its_release_clears() -> None:
    engine = Engine(offline_after_s=60)
    engaged = engine.on_envelope(event("amr-7", "estop_engaged", reason="hub"), ALL)
    released = engine.on_envelope(event("amr-7", "estop_released"), ALL)
    assert kinds(engaged) == [("Raise", "Stop engaged", "amr-7")]
    assert kinds(released) == [("Clear", "Stop engaged", "amr-7")]
    assert isinstance(engaged[0], Raise)
    assert engaged[0].message == "amr-7: estop_engaged (hub)"


def test_model_rejected_raises_and_a_model_activation_clears() -> None:
    engine = Engine(offline_after_s=60)
    assert kinds(engine.on_envelope(event("amr-7", "model_rejected"), ALL)) == [
        ("Raise", "Model rejected", "amr-7")
    ]
    assert kinds(engine.on_envelope(event("amr-7", "model_activated"), ALL)) == [
        ("Clear", "Model rejected", "amr-7")
    ]


def test_battery_low_raises_once_per_crossing_with_hysteresis() -> None:
    engine = Engine(offline_after_s=60)
    name = "robot.battery.percent"
    seen = [kinds(engine.on_envelope(metric("amr-7", name, v), ALL)) for v in (50, 19, 15, 22, 26)]
    assert seen == [
        [("Clear", "Battery low", "amr-7")],  # first point since start: clears what may be open
        [("Raise", "Battery low", "amr-7")],
        [],  # still low: no repeat
        [],  # between 20 and 25: neither
        [("Clear", "Battery low", "amr-7")],
    ]


def test_drift_over_threshold_watches_each_tag_set() -> None:
    engine = Engine(offline_after_s=60)
    steps = [
        ("rear", 0.05),
        ("front", 0.6),  # raises
        ("rear", 0.01),  # the other camera is still drifting: nothing
        ("front", 0.15),  # all clear now
    ]
    seen = [
        kinds(engine.on_envelope(metric("amr-7", "drift.psi_input", v, camera=c), ALL))
        for c, v in steps
    ]
    assert seen == [
        [("Clear", "Drift over threshold", "amr-7")],
        [("Raise", "Drift over threshold", "amr-7")],
        [],
        [("Clear", "Drift over threshold", "amr-7")],
    ]


def test_metric_rules_match_tags_and_operators() -> None:
    rule = Rule(
        9,
        "Hot motor",
        AlertSeverity.WARNING,
        MetricThreshold(metric="motor.temp", op=">", threshold=80, tags={"motor": "left"}),
    )
    engine = Engine(offline_after_s=60)
    assert engine.on_envelope(metric("amr-7", "motor.temp", 90, motor="right"), [rule]) == []
    assert kinds(engine.on_envelope(metric("amr-7", "motor.temp", 90, motor="left"), [rule])) == [
        ("Raise", "Hot motor", "amr-7")
    ]


def test_buffer_dropping_raises_when_drop_counts_grow() -> None:
    engine = Engine(offline_after_s=60)
    first = engine.on_envelope(state("amr-7", telemetry=5), ALL)  # unknown before: no alert
    same = engine.on_envelope(state("amr-7", at(1), telemetry=5), ALL)
    grew = engine.on_envelope(state("amr-7", at(2), telemetry=9, detections=1), ALL)
    assert (first, same) == ([], [])
    assert kinds(grew) == [("Raise", "Buffer dropping", "amr-7")]
    assert isinstance(grew[0], Raise)
    assert grew[0].detail["new"] == {
        "telemetry": 4,
        "detections": 1,
    }
    overflow = engine.on_envelope(event("amr-7", "buffer_overflow"), ALL)
    assert kinds(overflow) == [("Raise", "Buffer dropping", "amr-7")]


def test_device_offline_raises_after_the_threshold_and_clears_when_back() -> None:
    engine = Engine(offline_after_s=60)
    rules = [RULES["Device offline"]]
    fresh = Liveness("amr-7", True, T0, T0)
    will = Liveness("amr-7", False, T0, at(5))  # the last will came 5 s after the last state
    assert kinds(engine.offline([fresh], rules, at(30))) == [("Clear", "Device offline", "amr-7")]
    assert engine.offline([will], rules, at(60)) == []  # offline for 55 s only
    assert kinds(engine.offline([will], rules, at(65))) == [("Raise", "Device offline", "amr-7")]
    assert engine.offline([will], rules, at(600)) == []  # still offline: decided once
    back = Liveness("amr-7", True, at(700), at(700))
    assert kinds(engine.offline([back], rules, at(701))) == [("Clear", "Device offline", "amr-7")]
    silent = Liveness("amr-7", True, at(700), at(700))  # online, but no state for 2 minutes
    assert kinds(engine.offline([silent], rules, at(820))) == [("Raise", "Device offline", "amr-7")]


def test_a_rule_may_set_its_own_offline_threshold() -> None:
    from hub.alerts.conditions import DeviceOffline

    rule = Rule(9, "Offline 10 s", AlertSeverity.CRITICAL, DeviceOffline(after_s=10))
    engine = Engine(offline_after_s=600)
    actions = engine.offline([Liveness("amr-7", False, T0, T0)], [rule], at(11))
    assert kinds(actions) == [("Raise", "Offline 10 s", "amr-7")]


def test_unrelated_traffic_decides_nothing() -> None:
    engine = Engine(offline_after_s=60)
    assert engine.on_envelope(event("amr-7", "camera_lost"), ALL) == []
    assert engine.on_envelope(metric("amr-7", "cpu.percent", 99), ALL) == []
    only_events = [Rule(1, "x", AlertSeverity.INFO, EventMatch(events=["robot_fault"]))]
    assert engine.on_envelope(danger("amr-7"), only_events) == []
