"""What an alert rule watches: one pydantic model per condition type, keyed on `type`.

Example:
    >>> parse_condition({"type": "metric_threshold", "metric": "drift.psi", "op": ">=",
    ...                  "threshold": 0.2}).holds(0.25)
    True
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from protocol.models import KnownEvent


class AlertSeverity(StrEnum):
    """How urgent an alert is; channels receive alerts at or above their `min_severity`."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return ("info", "warning", "critical").index(self.value)


class AlertState(StrEnum):
    """Lifecycle: active → acknowledged → resolved (active → resolved also allowed)."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


EventName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9_.-]+$")]


class ZoneIntrusion(_Condition):
    """A device's perception rule fired (`rule_fired`) with objects of `classes` in a zone.

    `zones` empty: any zone. `classes` empty: any class.
    """

    type: Literal["zone_intrusion"] = "zone_intrusion"
    zones: list[EventName] = Field(default_factory=list, max_length=64)
    classes: list[EventName] = Field(default_factory=lambda: ["person"], max_length=64)


class EventMatch(_Condition):
    """A device event of one of `events` raises; one of `resolve_on` resolves."""

    type: Literal["event"] = "event"
    events: list[EventName] = Field(min_length=1, max_length=32)
    resolve_on: list[EventName] = Field(default_factory=list, max_length=32)


Op = Literal["<", "<=", ">", ">="]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class MetricThreshold(_Condition):
    """A telemetry metric compared with `threshold` (battery, drift scores...).

    Resolves when the value no longer holds against `clear_at` (hysteresis), or
    against `threshold` when `clear_at` is not set. `tags` narrows the points.
    """

    type: Literal["metric_threshold"] = "metric_threshold"
    metric: Annotated[str, Field(min_length=1, max_length=128)]
    op: Op
    threshold: float
    clear_at: float | None = None
    tags: dict[str, str] = Field(default_factory=dict, max_length=16)

    def holds(self, value: float) -> bool:
        """Whether `value` breaks the threshold."""
        return _OPS[self.op](value, self.threshold)

    def cleared(self, value: float) -> bool:
        """Whether `value` is back on the safe side of `clear_at` (or `threshold`)."""
        limit = self.threshold if self.clear_at is None else self.clear_at
        return not _OPS[self.op](value, limit)


class DeviceOffline(_Condition):
    """No state from the device for `after_s` (None: `[alerts] offline_after_s`)."""

    type: Literal["device_offline"] = "device_offline"
    after_s: Annotated[float, Field(gt=0, le=30 * 86_400)] | None = None


class BufferDropping(_Condition):
    """The device's outbox dropped data (its `state` drop counts grew, or `buffer_overflow`)."""

    type: Literal["buffer_dropping"] = "buffer_dropping"
    classes: list[Literal["safety", "detections", "telemetry"]] = Field(default_factory=list)


Condition = Annotated[
    ZoneIntrusion | EventMatch | MetricThreshold | DeviceOffline | BufferDropping,
    Field(discriminator="type"),
]
ConditionType = Literal[
    "zone_intrusion", "event", "metric_threshold", "device_offline", "buffer_dropping"
]
_ADAPTER: TypeAdapter[Condition] = TypeAdapter(Condition)

BUFFER_OVERFLOW = KnownEvent.BUFFER_OVERFLOW.value
RULE_FIRED = KnownEvent.RULE_FIRED.value


def parse_condition(data: Any) -> Condition:
    """A condition from its JSON form (raises pydantic's `ValidationError`)."""
    return _ADAPTER.validate_python(data)
