"""A command's lifecycle as the API shows it: the hub's own steps, then the device's acks.

Example:
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> acks = [AckRecord("done", t, None, None), AckRecord("received", t, None, None),
    ...         AckRecord("done", t, None, None)]
    >>> [s.status for s in device_steps(acks)]
    ['received', 'done']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from hub.storage.repositories.commands import STATUS_RANK, AckRecord, CommandRecord

FINAL = frozenset(s for s, rank in STATUS_RANK.items() if rank == max(STATUS_RANK.values()))
"""Statuses after which nothing changes: done, failed, rejected, expired."""


@dataclass(frozen=True, slots=True)
class Step:
    """One lifecycle step: who reported it (`hub` or `device`), what, when."""

    status: str
    at: datetime
    source: Literal["hub", "device"]
    detail: str | None = None


def device_steps(acks: Sequence[AckRecord]) -> list[Step]:
    """One step per status, the first report of it, in lifecycle order (then time).

    The agent re-sends an ack until the hub's watermark covers it, so a status can be
    stored twice; a late `received` still sorts before `done`.
    """
    first: dict[str, AckRecord] = {}
    for ack in acks:
        first.setdefault(ack.status, ack)
    ordered = sorted(first.values(), key=lambda a: (STATUS_RANK.get(a.status, 0), a.at))
    return [Step(a.status, a.at, "device", a.detail or a.reason) for a in ordered]


def lifecycle(command: CommandRecord, acks: Sequence[AckRecord]) -> list[Step]:
    """`sent`, `publish_failed` when the broker never confirmed, then the device's steps."""
    steps = [Step("sent", command.issued_at, "hub")]
    if command.publish_error is not None and command.published_at is not None:
        steps.append(Step("publish_failed", command.published_at, "hub", command.publish_error))
    return steps + device_steps(acks)
