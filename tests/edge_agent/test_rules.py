"""Local rules: frame counting, clearing, cooldown, config checks, and the supervisor contract."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from edge_agent.perception.rules import (
    ConditionChange,
    PerceptionRules,
    RuleEngine,
    RuleSection,
    stale_conditions,
    unknown_classes,
)
from edge_agent.perception.zones import ZoneSection
from edge_agent.safety.supervisor import Decision, SafetyStore, SafetySupervisor, Stop
from protocol import Box, DetectedObject, KnownEvent, Severity
from protocol.models import StopSource

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PERIOD = timedelta(milliseconds=66)
DANGER = ZoneSection(name="danger", polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
STOP = RuleSection(
    name="person-in-danger",
    classes=["person"],
    zone="danger",
    min_conf=0.6,
    min_frames=3,
    clear_frames=3,
    action="stop",
)
CROWD = RuleSection(name="pallets", classes=["pallet"], count_at_least=3, cooldown_s=5.0)


def thing(cls: str = "person", conf: float = 0.8, feet_y: float = 0.9) -> DetectedObject:
    return DetectedObject(cls=cls, conf=conf, box=Box(x1=0.4, y1=feet_y / 2, x2=0.5, y2=feet_y))


IN_DANGER = [thing()]
OUTSIDE = [thing(feet_y=0.4)]


class Clock:
    """Frame timestamps, one frame period apart."""

    def __init__(self) -> None:
        self.ts = T0

    def __call__(self, seconds: float | None = None) -> datetime:
        self.ts += PERIOD if seconds is None else timedelta(seconds=seconds)
        return self.ts


def engine(*rules: RuleSection, **kwargs) -> RuleEngine:
    return RuleEngine(PerceptionRules(zones=[DANGER], rules=list(rules)), **kwargs)


def test_stop_rule_holds_after_min_frames_and_reports_a_critical_event():
    rules, clock = engine(STOP), Clock()
    assert rules.evaluate(clock(), IN_DANGER).changes == ()
    assert rules.evaluate(clock(), IN_DANGER).changes == ()
    third = rules.evaluate(clock(), IN_DANGER)
    assert third.changes == (
        ConditionChange("rule:person-in-danger", "1 x person in danger, conf 0.80, 3 frames"),
    )
    assert rules.stop_conditions == {"rule:person-in-danger": third.changes[0].reason}
    (hit,) = third.hits
    event = hit.event()
    assert (event.type, event.severity, event.ts) == (
        KnownEvent.RULE_FIRED,
        Severity.CRITICAL,
        clock.ts,
    )
    assert event.detail["zone"] == "danger"
    assert event.detail["objects"] == [0]
    assert event.detail["condition"] == "rule:person-in-danger"
    assert third.zones == {"danger": [0]}


def test_one_missing_frame_restarts_the_count():
    rules, clock = engine(STOP), Clock()
    for frame in (IN_DANGER, IN_DANGER, OUTSIDE, IN_DANGER, IN_DANGER):
        assert rules.evaluate(clock(), frame).changes == ()
    assert rules.evaluate(clock(), IN_DANGER).changes[0].reason is not None


def test_min_frames_one_asks_for_the_stop_on_the_frame_of_the_detection():
    rules = engine(STOP.model_copy(update={"min_frames": 1}))
    assert rules.evaluate(T0, IN_DANGER).changes[0].name == "rule:person-in-danger"


@pytest.mark.parametrize(
    ("objects", "counts"),
    [
        ([thing(conf=0.6)], True),
        ([thing(conf=0.59)], False),
        ([thing(cls="forklift")], False),
        (OUTSIDE, False),
        ([thing(feet_y=1.0)], True),  # cut off by the frame's bottom edge
        ([thing(cls="forklift"), thing(conf=0.3), thing(conf=0.7)], True),
    ],
)
def test_which_objects_count(objects, counts):
    rules = engine(STOP.model_copy(update={"min_frames": 1}))
    assert bool(rules.evaluate(T0, objects).changes) is counts


def test_condition_clears_after_clear_frames_consecutive_misses_only():
    rules, clock = engine(STOP.model_copy(update={"min_frames": 1})), Clock()
    rules.evaluate(clock(), IN_DANGER)
    for frame in (OUTSIDE, [], IN_DANGER, OUTSIDE, []):  # the person shows again: count restarts
        assert rules.evaluate(clock(), frame).changes == ()
    assert rules.stop_conditions
    cleared = rules.evaluate(clock(), OUTSIDE)
    assert cleared.changes == (ConditionChange("rule:person-in-danger", None),)
    assert cleared.hits == ()
    assert rules.stop_conditions == {}
    assert rules.evaluate(clock(), []).changes == ()  # cleared once, not again


def test_count_rule_fires_on_the_rising_edge_with_cooldown():
    rules, clock = engine(CROWD), Clock()
    three = [thing("pallet", feet_y=0.2)] * 3
    first = rules.evaluate(clock(), three)
    assert [(h.rule, h.action, h.severity) for h in first.hits] == [
        ("pallets", "event", Severity.WARNING)
    ]
    assert first.changes == ()  # an event rule never stops anything
    assert rules.evaluate(clock(), three).hits == ()  # still active: no repeat
    assert rules.evaluate(clock(), three[:2]).hits == ()
    for _ in range(9):
        rules.evaluate(clock(), [])
    assert rules.evaluate(clock(), three).hits == ()  # re-armed, but within the cooldown
    assert rules.suppressed == 1
    for _ in range(10):
        rules.evaluate(clock(), [])
    assert rules.evaluate(clock(5.0), three).hits[0].rule == "pallets"


def test_cooldown_never_holds_back_a_stop_condition():
    rule = STOP.model_copy(update={"min_frames": 1, "clear_frames": 1, "cooldown_s": 60.0})
    rules, clock = engine(rule), Clock()
    assert rules.evaluate(clock(), IN_DANGER).hits
    rules.evaluate(clock(), [])
    again = rules.evaluate(clock(), IN_DANGER)
    assert again.hits == ()
    assert again.changes[0].reason is not None
    assert rules.suppressed == 1


def test_the_supervisor_stops_and_refuses_release_until_the_rule_clears():
    supervisor = SafetySupervisor(SafetyStore(None))
    rules = engine(STOP.model_copy(update={"min_frames": 1, "clear_frames": 2}))
    clock = Clock()

    def feed(objects: list[DetectedObject]) -> list[Decision]:
        result = rules.evaluate(clock(), objects)
        return [
            supervisor.set_condition(c.name, c.reason, clock.ts, source=StopSource.RULE)
            for c in result.changes
        ]

    (decision,) = feed(IN_DANGER)
    (stop,) = decision.actions
    assert isinstance(stop, Stop)
    assert stop.reason.startswith("rule:person-in-danger: 1 x person in danger")
    assert supervisor.status.engaged
    assert supervisor.status.source is StopSource.RULE
    feed([])
    assert not supervisor.release("cmd-1", "clear", clock.ts).accepted
    feed([])
    assert supervisor.conditions == {}
    assert supervisor.release("cmd-2", "clear", clock.ts).accepted


def test_conditions_held_across_a_restart_start_active_and_clear_normally():
    held = {"rule:person-in-danger": "before restart", "rule:removed": "old", "hardware": "x"}
    config = PerceptionRules(zones=[DANGER], rules=[STOP, CROWD])
    rules = RuleEngine(config, held=held)
    assert rules.stop_conditions == {"rule:person-in-danger": "before restart"}
    changes = [rules.evaluate(T0, []).changes for _ in range(3)]
    assert changes[-1] == (ConditionChange("rule:person-in-danger", None),)
    assert stale_conditions(config, held) == ["rule:removed"]
    as_event = PerceptionRules(zones=[DANGER], rules=[STOP.model_copy(update={"action": "event"})])
    assert stale_conditions(as_event, held) == ["rule:person-in-danger", "rule:removed"]


def test_each_camera_sees_only_its_zones_and_names_its_conditions():
    rear_zone = DANGER.model_copy(update={"name": "rear-danger", "camera": "rear"})
    config = PerceptionRules(
        zones=[DANGER, rear_zone],
        rules=[
            STOP.model_copy(update={"min_frames": 1}),
            STOP.model_copy(update={"name": "rear", "zone": "rear-danger", "min_frames": 1}),
            CROWD.model_copy(update={"action": "stop", "cooldown_s": 0.0}),
        ],
    )
    rear = RuleEngine(config, camera="rear")
    result = rear.evaluate(T0, [*IN_DANGER, *[thing("pallet", feet_y=0.2)] * 3])
    assert result.zones == {"rear-danger": [0]}
    assert [c.name for c in result.changes] == ["rule:rear@rear", "rule:pallets@rear"]


TOML = """
[[zones]]
name = "danger"
polygon = [[0.2, 0.5], [0.8, 0.5], [0.8, 1.0], [0.2, 1.0]]

[[zones]]
name = "dock"
polygon = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [0.0, 0.4]]
anchor = "center"

[[rules]]
name = "person-in-danger"
classes = ["person"]
zone = "danger"
min_conf = 0.6
min_frames = 2
clear_frames = 15
action = "stop"

[[rules]]
name = "crowd"
classes = ["person"]
count_at_least = 5
cooldown_s = 60
"""


def test_the_proposed_toml_shape_validates():
    config = PerceptionRules.model_validate(tomllib.loads(TOML))
    assert [r.event_severity for r in config.rules] == [Severity.CRITICAL, Severity.WARNING]
    assert config.zones[1].anchor == "center"
    assert config.cameras == {"default"}
    assert unknown_classes(config, ["person", "forklift"]) == {}
    assert unknown_classes(config, ["Person"]) == {
        "person-in-danger": ["person"],
        "crowd": ["person"],
    }


def test_no_camera_gets_more_zones_than_a_frame_result_can_carry():
    corner = [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1)]
    zones = [{"name": f"z{i}", "polygon": corner} for i in range(33)]
    with pytest.raises(ValidationError, match="camera 'default' has more than 32 zones"):
        PerceptionRules.model_validate({"zones": zones})
    PerceptionRules.model_validate({"zones": zones[:32]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rules": [{"name": "r", "classes": ["person"], "zone": "dnager"}]},
            "rule 'r' names zone 'dnager', which is not defined \\(zones: danger, dock\\)",
        ),
        ({"rules": [{"name": "crowd", "classes": ["x"]}] * 2}, "crowd defined twice"),
        (
            {"rules": [{"name": "r", "classes": ["p"], "action": "stop", "severity": "info"}]},
            "a stop rule's events are critical",
        ),
        (
            {"rules": [{"name": "r", "classes": ["p"], "zone": "dock", "camera": "rear"}]},
            "a zone rule watches its zone's camera",
        ),
        ({"rules": [{"name": "r", "classes": []}]}, "at least 1 item"),
        ({"rules": [{"name": "r", "classes": ["p"], "min_frame": 2}]}, "Extra inputs"),
        ({"rules": [{"name": "bad name", "classes": ["p"]}]}, "should match pattern"),
    ],
)
def test_bad_rule_configs_say_what_is_wrong(change, message):
    data = {**tomllib.loads(TOML), **change}
    with pytest.raises(ValidationError, match=message):
        PerceptionRules.model_validate(data)


def test_evaluating_a_frame_costs_well_under_a_frame_period():
    config = PerceptionRules.model_validate(tomllib.loads(TOML))
    rules = RuleEngine(config)
    objects = [thing(conf=0.5 + i * 0.04, feet_y=0.3 + i * 0.06) for i in range(10)]
    clock = Clock()
    rules.evaluate(clock(), objects)
    costs = []
    for _ in range(200):
        start = time.perf_counter()
        rules.evaluate(clock(), objects)
        costs.append(time.perf_counter() - start)
    costs.sort()
    assert costs[len(costs) // 2] < 0.002  # typically ~50 µs; a 15 fps frame period is 66 ms
