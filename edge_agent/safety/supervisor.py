"""A latched protective stop, motion deadlines and watchdogs, as a pure state machine.

The supervisor decides; the agent carries out what it returns. Every call takes
`now` and returns a `Decision`: accepted or refused (with the reason), the
actions for the robot adapter (`Stop`, `Drive`, `FollowPath`), and the events
for the outbox's never-drop class. It does no I/O except persisting the latch,
so an agent restarted while stopped comes back stopped.

The rules (DESIGN.md "Safety: the edge decides"):
- the stop latches, whoever engages it (hub, local rule, local CLI, hardware
  input, watchdog), and every motion command is refused while it holds;
- only a fresh, validly signed `release` clears it (the caller has checked the
  signature and freshness with `protocol.accept_command`), and only while no
  local stop condition (a person in a danger zone, the hardware e-stop input) holds;
- every motion has a deadline; when it lapses the robot is told to stop;
- while moving, a silent hub link or a silent adapter heartbeat engages the stop.

This is a protective stop layered on the robot's own hard-wired emergency stop
chain, never a replacement for it.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> s = SafetySupervisor(SafetyStore(None))
    >>> s.engage(StopSource.HUB, "operator pressed stop", t0).actions
    (Stop(reason='operator pressed stop'),)
    >>> s.release("cmd-2", "area clear", t0 + timedelta(seconds=5)).accepted
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from edge_agent.files import write_atomic
from protocol import Command, CommandType, Event, KnownEvent, Severity
from protocol.models import (
    EstopStatus,
    Mode,
    OverrideParams,
    PathPlanParams,
    StopSource,
    Waypoint,
)

logger = logging.getLogger(__name__)

_JUST_AFTER = timedelta(milliseconds=1)
"""Watchdogs fire when silence *exceeds* the timeout: wake just after it."""


@dataclass(frozen=True)
class Stop:
    """Bring the robot to a standstill now."""

    reason: str


@dataclass(frozen=True)
class Drive:
    """Drive at these velocities until `until` (the adapter stops by itself after it)."""

    cmd_id: str
    linear: float
    angular: float
    until: datetime


@dataclass(frozen=True)
class FollowPath:
    """Follow the waypoints at `speed`; the supervisor stops the robot at `until`."""

    cmd_id: str
    waypoints: tuple[Waypoint, ...]
    speed: float
    until: datetime


Action = Stop | Drive | FollowPath


@dataclass(frozen=True)
class Decision:
    """What the supervisor decided, what the robot must do, what to report."""

    accepted: bool
    reason: str = ""
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass
class _Latch:
    engaged: bool = False
    source: StopSource | None = None
    reason: str | None = None
    since: datetime | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    """Local stop conditions that hold now (name → why): they forbid a release."""


@dataclass
class _Motion:
    cmd_id: str
    mode: Mode
    until: datetime


class SafetyStore:
    """Where the latch survives restarts: a small JSON file (None: memory only, for tests)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> _Latch:
        """The saved latch; a missing file is a released stop, an unreadable one an engaged stop."""
        if self.path is None or not self.path.exists():
            return _Latch()
        try:
            data: dict[str, Any] = orjson.loads(self.path.read_bytes())
            return _Latch(
                engaged=bool(data["engaged"]),
                source=StopSource(data["source"]) if data.get("source") else None,
                reason=data.get("reason"),
                since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
                conditions=dict(data.get("conditions") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError):
            # Fail safe: a state we cannot read is a stop an operator has to release.
            logger.exception("safety state %s unreadable: starting stopped", self.path)
            return _Latch(engaged=True, source=StopSource.LOCAL, reason="safety state unreadable")

    def save(self, latch: _Latch) -> None:
        """Write the latch atomically."""
        if self.path is None:
            return
        data = {
            "engaged": latch.engaged,
            "source": latch.source.value if latch.source else None,
            "reason": latch.reason,
            "since": latch.since.isoformat() if latch.since else None,
            "conditions": latch.conditions,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, orjson.dumps(data))


class SafetySupervisor:
    """Owns motion permission. Not thread-safe: call it from the agent's event loop."""

    def __init__(
        self,
        store: SafetyStore,
        *,
        link_timeout_s: float = 3.0,
        heartbeat_timeout_s: float = 1.0,
    ) -> None:
        self._store = store
        self._latch = store.load()
        self._motion: _Motion | None = None
        self.link_timeout = timedelta(seconds=link_timeout_s)
        self.heartbeat_timeout = timedelta(seconds=heartbeat_timeout_s)

    @property
    def status(self) -> EstopStatus:
        """The latch as the `state` message reports it."""
        latch = self._latch
        return EstopStatus(
            engaged=latch.engaged, source=latch.source, reason=latch.reason, since=latch.since
        )

    @property
    def mode(self) -> Mode:
        """Stopped, moving under a command, or idle."""
        if self._latch.engaged:
            return Mode.STOPPED
        return self._motion.mode if self._motion else Mode.IDLE

    @property
    def conditions(self) -> dict[str, str]:
        """Local stop conditions holding now."""
        return dict(self._latch.conditions)

    def engage(self, source: StopSource, reason: str, now: datetime) -> Decision:
        """Latch the stop (again, if already engaged: the robot is told to stop anyway)."""
        first = not self._latch.engaged
        if first:
            self._latch.engaged, self._latch.source = True, source
            self._latch.reason, self._latch.since = reason[:256], now
            self._store.save(self._latch)
        self._motion = None
        events = (
            (
                _event(
                    now, KnownEvent.ESTOP_ENGAGED, Severity.CRITICAL, source=source, reason=reason
                ),
            )
            if first
            else ()
        )
        return Decision(True, actions=(Stop(reason),), events=events)

    def set_condition(
        self, name: str, reason: str | None, now: datetime, *, source: StopSource = StopSource.RULE
    ) -> Decision:
        """A local stop condition starts (`reason`) or ends (None); starting one engages."""
        if reason is None:
            if self._latch.conditions.pop(name, None) is not None:
                self._store.save(self._latch)
            return Decision(True)
        self._latch.conditions[name] = reason[:256]
        self._store.save(self._latch)
        return self.engage(source, f"{name}: {reason}", now)

    def release(self, cmd_id: str, reason: str, now: datetime) -> Decision:
        """Clear the latch: only from a verified `release` command, only with no condition."""
        if self._latch.conditions:
            held = "; ".join(f"{k}: {v}" for k, v in sorted(self._latch.conditions.items()))
            return self._refuse(now, cmd_id, f"a local stop condition holds ({held})")
        if not self._latch.engaged:
            return Decision(True, reason="not engaged")
        source = self._latch.source
        self._latch = _Latch()
        self._store.save(self._latch)
        event = _event(
            now,
            KnownEvent.ESTOP_RELEASED,
            Severity.WARNING,
            cmd_id=cmd_id,
            reason=reason,
            was=source.value if source else None,
        )
        return Decision(True, events=(event,))

    def motion(self, command: Command, now: datetime) -> Decision:
        """Start an override or a path, refused while the stop is engaged."""
        if self._latch.engaged:
            return self._refuse(now, command.cmd_id, f"stop engaged: {self._latch.reason}")
        params = command.params
        action: Action
        if command.type is CommandType.OVERRIDE and isinstance(params, OverrideParams):
            until = now + timedelta(seconds=params.duration_s)
            action = Drive(command.cmd_id, params.linear, params.angular, until)
            mode = Mode.OVERRIDE
        elif command.type is CommandType.PATH_PLAN and isinstance(params, PathPlanParams):
            until = now + timedelta(seconds=params.timeout_s)
            action = FollowPath(command.cmd_id, tuple(params.waypoints), params.speed, until)
            mode = Mode.PATH
        else:
            return self._refuse(now, command.cmd_id, f"{command.type.value} is not a motion")
        self._motion = _Motion(command.cmd_id, mode, until)
        return Decision(True, actions=(action,))

    def finished(self, cmd_id: str) -> None:
        """The adapter reports the motion done (path reached): nothing left to supervise."""
        if self._motion is not None and self._motion.cmd_id == cmd_id:
            self._motion = None

    def tick(
        self, now: datetime, *, link_seen: datetime | None, heartbeat_seen: datetime | None
    ) -> Decision:
        """Deadlines and watchdogs; call it every control period."""
        motion = self._motion
        if motion is None:
            return Decision(True)
        if now >= motion.until:
            self._motion = None
            event = _event(now, KnownEvent.DEADLINE_STOP, Severity.INFO, cmd_id=motion.cmd_id)
            return Decision(True, actions=(Stop("deadline lapsed"),), events=(event,))
        for what, seen, timeout in (
            ("hub link", link_seen, self.link_timeout),
            ("robot adapter heartbeat", heartbeat_seen, self.heartbeat_timeout),
        ):
            if seen is None or now - seen > timeout:
                silent = (
                    "never heard"
                    if seen is None
                    else f"silent {(now - seen).total_seconds():.1f} s"
                )
                decision = self.engage(StopSource.WATCHDOG, f"{what} {silent} while moving", now)
                watchdog = _event(now, KnownEvent.WATCHDOG_STOP, Severity.CRITICAL, what=what)
                return Decision(True, actions=decision.actions, events=(*decision.events, watchdog))
        return Decision(True)

    def next_due(
        self, *, link_seen: datetime | None, heartbeat_seen: datetime | None
    ) -> datetime | None:
        """The earliest moment `tick` could stop the robot (a deadline or a watchdog lapsing);
        None when nothing moves. The control loop wakes then, not a period later.

        Example:
            >>> from datetime import UTC, datetime
            >>> SafetySupervisor(SafetyStore(None)).next_due(link_seen=None, heartbeat_seen=None)
        """
        motion = self._motion
        if motion is None:
            return None
        due = [motion.until]
        for seen, timeout in (
            (link_seen, self.link_timeout),
            (heartbeat_seen, self.heartbeat_timeout),
        ):
            if seen is not None:
                due.append(seen + timeout + _JUST_AFTER)
        return min(due)

    def _refuse(self, now: datetime, cmd_id: str, reason: str) -> Decision:
        event = _event(
            now, KnownEvent.COMMAND_REJECTED, Severity.WARNING, cmd_id=cmd_id, reason=reason
        )
        return Decision(False, reason=reason, events=(event,))


def hardware_input(path: Path, active: str) -> str | None:
    """Why the hardware stop input holds now, or None when it is released.

    Fail safe: a file that cannot be read counts as a pressed stop.

    Example:
        >>> import tempfile
        >>> gpio = Path(tempfile.mkdtemp()) / "value"
        >>> _ = gpio.write_text("1\\n")
        >>> hardware_input(gpio, "1")
        'hardware stop input asserted'
        >>> _ = gpio.write_text("0\\n")
        >>> hardware_input(gpio, "1") is None
        True
        >>> hardware_input(gpio.with_name("gone"), "1")
        'hardware stop input unreadable'
    """
    try:
        value = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "hardware stop input unreadable"
    return "hardware stop input asserted" if value == active else None


def _event(now: datetime, kind: KnownEvent, severity: Severity, **detail: Any) -> Event:
    clean = {k: (v.value if hasattr(v, "value") else v) for k, v in detail.items() if v is not None}
    return Event(ts=now, type=kind, severity=severity, detail=clean)
