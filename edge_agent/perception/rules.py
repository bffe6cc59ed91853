"""Local rules over each frame's detections, evaluated at the edge with no hub round trip.

A rule matches a frame when at least `count_at_least` objects of one of its
`classes`, with confidence at least `min_conf` (and inside `zone`, if it names
one), are in it. "A person in `danger`" is `classes = ["person"], zone =
"danger"`; "three or more pallets" is `classes = ["pallet"], count_at_least = 3`.

Each rule is a small state machine driven by frames, not by wall time, so its
behaviour does not depend on how busy the machine is:
- it becomes active after `min_frames` consecutive matching frames (1: on the
  very frame of the detection, the fastest a stop can be asked for);
- it becomes inactive after `clear_frames` consecutive frames that do not match.
  Frames that never come (a dead camera) never clear it: a stop rule that holds
  keeps holding, which is the safe side.

On activation an event rule yields a `RuleHit`; a stop rule yields a `RuleHit`
(always critical) and a `ConditionChange` that starts a local stop condition,
and on deactivation a `ConditionChange` that ends it. The engine never calls the
safety supervisor: the caller hands each change to
`SafetySupervisor.set_condition(change.name, change.reason, ts)`. Ending a
condition does not move the robot: the stop stays latched until an operator's
signed `release`, which the supervisor refuses while any condition holds.
`cooldown_s` rate-limits a rule's events (per rule, in frame time); it never
delays or suppresses a stop condition.

After a restart the supervisor still holds the conditions it persisted; pass them
as `held` so that those rules start active and clear the normal way, and clear
the ones `stale_conditions` names (rules since removed or no longer stops).

Example:
    >>> from datetime import UTC, datetime
    >>> from protocol import Box, DetectedObject
    >>> config = PerceptionRules(
    ...     zones=[ZoneSection(name="danger", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)])],
    ...     rules=[RuleSection(name="person-in-danger", classes=["person"], zone="danger",
    ...                        min_conf=0.6, action="stop", clear_frames=2)])
    >>> engine = RuleEngine(config)
    >>> person = DetectedObject(cls="person", conf=0.8, box=Box(x1=0.4, y1=0.3, x2=0.6, y2=0.9))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> result = engine.evaluate(t, [person])
    >>> result.zones, [h.rule for h in result.hits], result.changes[0].name
    ({'danger': [0]}, ['person-in-danger'], 'rule:person-in-danger')
    >>> engine.evaluate(t, []).changes, engine.evaluate(t, []).changes
    ((), (ConditionChange(name='rule:person-in-danger', reason=None),))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from edge_agent.perception.zones import Label, ZoneIndex, ZoneSection, boxes_array
from edge_agent.sections import Section
from protocol import DetectedObject, Event, KnownEvent, Severity
from protocol.models import MAX_TAGS, JsonScalar, Name, Unit

Action = Literal["stop", "event"]
CONDITION_PREFIX = "rule:"
_MAX_DETAIL_OBJECTS = 32


class RuleSection(Section):
    """One local rule (`[[perception.rules]]`)."""

    name: Label
    classes: Annotated[list[Name], Field(min_length=1, max_length=64)]
    """Class names that count (any of them)."""
    zone: Label | None = None
    """Count only objects inside this zone (None: anywhere in the image)."""
    min_conf: Unit = 0.5
    count_at_least: Annotated[int, Field(ge=1, le=1000)] = 1
    min_frames: Annotated[int, Field(ge=1, le=10_000)] = 1
    """Consecutive matching frames before the rule becomes active."""
    clear_frames: Annotated[int, Field(ge=1, le=100_000)] = 10
    """Consecutive non-matching frames before an active rule becomes inactive."""
    action: Action = "event"
    severity: Severity | None = None
    """Event severity; default `critical` for `stop` (the only one allowed), `warning` otherwise."""
    cooldown_s: Annotated[float, Field(ge=0, le=86_400)] = 10.0
    """Least time between two events of this rule (frame time); never delays a stop condition."""
    camera: Label | None = None
    """For a rule without a zone: the camera it watches (None: each camera on its own)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.action == "stop" and self.severity not in (None, Severity.CRITICAL):
            raise ValueError(
                f"rule {self.name!r}: a stop rule's events are critical; drop severity"
            )
        if self.zone is not None and self.camera is not None:
            raise ValueError(
                f"rule {self.name!r}: a zone rule watches its zone's camera; drop camera"
            )
        return self

    @property
    def event_severity(self) -> Severity:
        """The severity of this rule's events."""
        if self.severity is not None:
            return self.severity
        return Severity.CRITICAL if self.action == "stop" else Severity.WARNING


class PerceptionRules(Section):
    """Zones and the rules over them; rules may only name zones defined here."""

    zones: list[ZoneSection] = Field(default_factory=list)
    rules: list[RuleSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Self:
        _unique("zone", [z.name for z in self.zones])
        _unique("rule", [r.name for r in self.rules])
        known = {z.name for z in self.zones}
        for rule in self.rules:
            if rule.zone is not None and rule.zone not in known:
                have = ", ".join(sorted(known)) or "none defined"
                raise ValueError(
                    f"rule {rule.name!r} names zone {rule.zone!r}, which is not defined "
                    f"(zones: {have})"
                )
        cameras = [z.camera for z in self.zones]
        for camera in set(cameras):
            if cameras.count(camera) > MAX_TAGS:
                raise ValueError(f"camera {camera!r} has more than {MAX_TAGS} zones")
        return self

    @property
    def cameras(self) -> set[str]:
        """Camera names the zones and rules refer to (check them against the configured cameras)."""
        return {z.camera for z in self.zones} | {r.camera for r in self.rules if r.camera}


def _unique(kind: str, names: list[str]) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{kind} names must be unique: {', '.join(twice)} defined twice")


def condition_name(rule: str, camera: str = "default") -> str:
    """The supervisor's name for a stop rule's condition: `rule:NAME`, `rule:NAME@CAMERA`.

    Example:
        >>> condition_name("person-in-danger"), condition_name("crowd", "rear")
        ('rule:person-in-danger', 'rule:crowd@rear')
    """
    suffix = "" if camera == "default" else f"@{camera}"
    return f"{CONDITION_PREFIX}{rule}{suffix}"


def stale_conditions(config: PerceptionRules, held: Mapping[str, str]) -> list[str]:
    """Rule conditions in `held` that no stop rule of `config` owns (clear them at start-up).

    Example:
        >>> stale_conditions(PerceptionRules(), {"rule:gone": "x", "hardware": "y"})
        ['rule:gone']
    """
    stops = {r.name for r in config.rules if r.action == "stop"}
    return sorted(
        name
        for name in held
        if name.startswith(CONDITION_PREFIX)
        and name[len(CONDITION_PREFIX) :].split("@", 1)[0] not in stops
    )


def unknown_classes(config: PerceptionRules, classes: Iterable[str]) -> dict[str, list[str]]:
    """Rule name → its classes the model does not know: such a rule can never fire.

    Check on every model activation: a typo or a renamed class silently disables a rule.

    Example:
        >>> rules = PerceptionRules(rules=[RuleSection(name="r", classes=["preson", "cart"])])
        >>> unknown_classes(rules, ["person", "cart"])
        {'r': ['preson']}
    """
    known = set(classes)
    out = {r.name: [c for c in r.classes if c not in known] for r in config.rules}
    return {name: missing for name, missing in out.items() if missing}


@dataclass(frozen=True)
class RuleHit:
    """A rule became active on this frame: what to report, and what it asks for."""

    rule: str
    action: Action
    severity: Severity
    ts: datetime
    detail: dict[str, JsonScalar | list[JsonScalar]]

    def event(self) -> Event:
        """The `rule_fired` event for the outbox."""
        return Event(
            ts=self.ts, type=KnownEvent.RULE_FIRED, severity=self.severity, detail=self.detail
        )


@dataclass(frozen=True)
class ConditionChange:
    """A stop rule's local stop condition starts (`reason`) or ends (`reason is None`)."""

    name: str
    reason: str | None


@dataclass(frozen=True)
class Evaluation:
    """One frame's outcome: zone membership (for `FrameResult.zones`), hits, condition changes."""

    zones: dict[str, list[int]]
    hits: tuple[RuleHit, ...] = ()
    changes: tuple[ConditionChange, ...] = ()


@dataclass
class _Rule:
    config: RuleSection
    classes: frozenset[str]
    column: int | None
    condition: str
    active: bool = False
    streak: int = 0
    misses: int = 0
    last_event: datetime | None = None
    reason: str = ""


@dataclass
class _Frame:
    ts: datetime
    cls: list[str]
    conf: list[float]
    inside: list[list[bool]]
    hits: list[RuleHit] = field(default_factory=list)
    changes: list[ConditionChange] = field(default_factory=list)


class RuleEngine:
    """Evaluates one camera's rules frame by frame; synchronous and allocation-light.

    Example: see the module docstring.
    """

    def __init__(
        self,
        config: PerceptionRules,
        *,
        camera: str = "default",
        held: Mapping[str, str] | None = None,
    ) -> None:
        zones = [z for z in config.zones if z.camera == camera]
        self.camera = camera
        self.zones = ZoneIndex(zones)
        self.suppressed = 0
        """Events held back by a rule's cooldown since start."""
        column = {z.name: i for i, z in enumerate(zones)}
        held = held or {}
        self._rules: list[_Rule] = []
        for rule in config.rules:
            watches = rule.zone in column if rule.zone else rule.camera in (None, camera)
            if not watches:
                continue
            name = condition_name(rule.name, camera)
            state = _Rule(rule, frozenset(rule.classes), column.get(rule.zone or ""), name)
            if rule.action == "stop" and name in held:
                state.active, state.reason = True, held[name]
            self._rules.append(state)

    @property
    def stop_conditions(self) -> dict[str, str]:
        """Stop conditions this engine holds now: condition name → reason."""
        return {
            r.condition: r.reason for r in self._rules if r.active and r.config.action == "stop"
        }

    def evaluate(self, ts: datetime, objects: Sequence[DetectedObject]) -> Evaluation:
        """Feed one frame's detections (`ts`: the frame's time); every frame must be fed."""
        inside = self.zones.inside(boxes_array(objects)) if objects else None
        frame = _Frame(
            ts,
            [o.cls for o in objects],
            [o.conf for o in objects],
            inside.tolist() if inside is not None else [],
        )
        for rule in self._rules:
            self._step(rule, frame)
        zones = self.zones.members_of(inside) if inside is not None else {}
        return Evaluation(zones, tuple(frame.hits), tuple(frame.changes))

    def _step(self, rule: _Rule, frame: _Frame) -> None:
        matched = _matching(rule, frame)
        if len(matched) >= rule.config.count_at_least:
            rule.streak, rule.misses = rule.streak + 1, 0
        else:
            rule.streak = 0
            rule.misses += rule.active
        if not rule.active and rule.streak >= rule.config.min_frames:
            self._activate(rule, frame, matched)
        elif rule.active and rule.misses >= rule.config.clear_frames:
            rule.active, rule.misses = False, 0
            if rule.config.action == "stop":
                frame.changes.append(ConditionChange(rule.condition, None))

    def _activate(self, rule: _Rule, frame: _Frame, matched: list[int]) -> None:
        rule.active = True
        config = rule.config
        classes = sorted({frame.cls[i] for i in matched})
        top = max(frame.conf[i] for i in matched)
        where = f" in {config.zone}" if config.zone else ""
        rule.reason = (
            f"{len(matched)} x {'/'.join(classes)}{where}, conf {top:.2f}, {rule.streak} frames"
        )
        if config.action == "stop":
            frame.changes.append(ConditionChange(rule.condition, rule.reason))
        last = rule.last_event
        if last is not None and (frame.ts - last).total_seconds() < config.cooldown_s:
            self.suppressed += 1
            return
        rule.last_event = frame.ts
        detail: dict[str, JsonScalar | list[JsonScalar]] = {
            "rule": config.name,
            "action": config.action,
            "camera": self.camera,
            "classes": list[JsonScalar](classes),
            "count": len(matched),
            "conf": round(top, 4),
            "frames": rule.streak,
            "objects": list[JsonScalar](matched[:_MAX_DETAIL_OBJECTS]),
            "reason": rule.reason,
        }
        if config.zone:
            detail["zone"] = config.zone
        if config.action == "stop":
            detail["condition"] = rule.condition
        frame.hits.append(
            RuleHit(config.name, config.action, config.event_severity, frame.ts, detail)
        )


def _matching(rule: _Rule, frame: _Frame) -> list[int]:
    """Indices of the objects that count for `rule` in this frame."""
    floor, classes, column = rule.config.min_conf, rule.classes, rule.column
    return [
        i
        for i, (cls, conf) in enumerate(zip(frame.cls, frame.conf, strict=True))
        if conf >= floor and cls in classes and (column is None or frame.inside[i][column])
    ]
