"""The rollout state machine, pure: what to do next given what the devices report.

States: `canary` (the canary devices are assigned) → `canary_healthy` (every canary
runs the model, unrejected, for the health window) → `promoted` (the rest are
assigned) → `completed` (every device runs it). From any of the first three,
`rolled_back`: a `model_rejected` from an assigned device, an inference latency
above `latency_factor` x the previous model's, or an admin's rollback. With
`auto_promote` a healthy canary is promoted at once.

Example:
    >>> canary_devices(["c", "a", "b", "d"], 50)
    ['a', 'b']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal


class RolloutState(StrEnum):
    """Where a rollout stands."""

    CANARY = "canary"
    CANARY_HEALTHY = "canary_healthy"
    PROMOTED = "promoted"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


IN_PROGRESS = frozenset({RolloutState.CANARY, RolloutState.CANARY_HEALTHY, RolloutState.PROMOTED})
"""States the rollout loop watches; a device belongs to at most one such rollout."""


class DeviceRollout(StrEnum):
    """Where one device of a rollout stands."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    ACTIVE = "active"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


def canary_devices(device_ids: Iterable[str], percent: int) -> list[str]:
    """The first ceil(N x percent / 100) of the devices by id (at least one)."""
    ordered = sorted(set(device_ids))
    count = max(1, math.ceil(len(ordered) * percent / 100))
    return ordered[:count]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one assigned device reports about the rollout's model."""

    device: str
    active: bool
    rejected: str | None = None
    """The reason of a `model_rejected` event since the assignment, if any."""
    latency_ms: float | None = None
    """Mean inference latency on the new model, when the device sent detections."""
    baseline_ms: float | None = None
    """Mean inference latency on the model it ran before, when known."""


Action = Literal["wait", "canary_healthy", "promote", "complete", "rollback"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the loop should do now; `canary_active_at` is stored whatever the action."""

    action: Action
    reason: str | None = None
    canary_active_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """How a rollout is judged (from `[registry]` and the rollout's own flag)."""

    health_window: timedelta
    latency_factor: float
    auto_promote: bool


def judge(
    state: RolloutState,
    observations: Sequence[Observation],
    *,
    canary_active_at: datetime | None,
    now: datetime,
    policy: Policy,
) -> Verdict:
    """The next step of a rollout in progress (`wait` for any other)."""
    if state not in IN_PROGRESS:
        return Verdict("wait", canary_active_at=canary_active_at)
    failure = _failure(observations, policy.latency_factor)
    if failure is not None:
        return Verdict("rollback", failure, canary_active_at)
    everyone_active = bool(observations) and all(o.active for o in observations)
    if state is RolloutState.PROMOTED:
        return Verdict("complete" if everyone_active else "wait", canary_active_at=canary_active_at)
    if state is RolloutState.CANARY_HEALTHY:
        return Verdict("wait", canary_active_at=canary_active_at)
    if not everyone_active:
        return Verdict("wait", canary_active_at=None)
    since = canary_active_at or now
    if now - since < policy.health_window:
        return Verdict("wait", canary_active_at=since)
    return Verdict("promote" if policy.auto_promote else "canary_healthy", canary_active_at=since)


def _failure(observations: Sequence[Observation], factor: float) -> str | None:
    for o in observations:
        if o.rejected is not None:
            return f"model_rejected by {o.device}: {o.rejected}"
    for o in observations:
        if o.latency_ms is not None and o.baseline_ms and o.latency_ms > factor * o.baseline_ms:
            return (
                f"latency_regression on {o.device}: {o.latency_ms:.1f} ms against "
                f"{o.baseline_ms:.1f} ms before (limit {factor:g}x)"
            )
    return None
