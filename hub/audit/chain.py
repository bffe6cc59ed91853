"""The audit log's hash chain: how a row is sealed and how the chain is checked.

Each row's `hash` is the SHA-256 of the canonical JSON (sorted keys, no spaces,
UTF-8) of its fields — id, at, actor, role, action, target, decision, result,
detail (the stored JSON text) — and `prev_hash`, the hash of the row before
(64 zeros for the first). Ids are consecutive from 1, so:

* an edited row no longer matches its own hash;
* a deleted row leaves a gap in the ids (and the next row's `prev_hash` dangling);
* an inserted or replaced row breaks the `prev_hash` link of the row after it.

Someone able to rewrite every later row too can forge a consistent chain; keep the
head (`outpost hub audit verify` prints it) somewhere else and check it with
`--anchor` to catch that, and a truncated tail.

Example:
    >>> from datetime import UTC, datetime
    >>> entry = Entry(actor="ana", role="admin", action="user.create", decision="allowed",
    ...               target="user:bob", result="201", detail={"role": "viewer"})
    >>> first = seal(entry, row_id=1, prev_hash=GENESIS, at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> check = ChainCheck()
    >>> check.feed(first), check.rows, check.problem
    (True, 1, None)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from hub.storage.repositories.audit import AuditRecord

GENESIS = "0" * 64
MAX_DETAIL_CHARS = 16_384
Decision = Literal["allowed", "denied"]
_LIMITS = {"actor": 128, "role": 16, "action": 256, "target": 512, "result": 64}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit row names: a username (with their role), `device:ID` or `system`."""

    name: str
    role: str | None = None


SYSTEM = Actor("system")
"""The hub itself, and `outpost hub` commands run on the hub's host."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What happened, before it is sealed into the chain.

    `actor` is a username, `device:ID` or `system`; `decision` is the authorization
    outcome, `result` what came of it (an HTTP status, a command ack).
    """

    actor: str
    action: str
    decision: Decision
    role: str | None = None
    target: str | None = None
    result: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept; non-JSON values become strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _clean(text: str | None, limit: int) -> str | None:
    # PostgreSQL text cannot hold NUL; cap at the column's width.
    return None if text is None else text.replace("\x00", "\ufffd")[:limit]


def _detail_text(detail: Mapping[str, Any]) -> str:
    text = canonical_json(dict(detail))
    if len(text) > MAX_DETAIL_CHARS:
        text = canonical_json({"truncated": True, "preview": text[: MAX_DETAIL_CHARS // 2]})
    return text


def row_hash(
    *,
    row_id: int,
    at: datetime,
    actor: str,
    role: str | None,
    action: str,
    target: str | None,
    decision: str,
    result: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    """The hash of one row's fields (see the module doc)."""
    body = {
        "id": row_id,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "role": role,
        "action": action,
        "target": target,
        "decision": decision,
        "result": result,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def record_hash(record: AuditRecord) -> str:
    """The hash a stored row should have."""
    return row_hash(
        row_id=record.id,
        at=record.at,
        actor=record.actor,
        role=record.role,
        action=record.action,
        target=record.target,
        decision=record.decision,
        result=record.result,
        detail=record.detail,
        prev_hash=record.prev_hash,
    )


def seal(entry: Entry, *, row_id: int, prev_hash: str, at: datetime) -> AuditRecord:
    """The row to store for `entry` after the row whose hash is `prev_hash`."""
    unsealed = AuditRecord(
        id=row_id,
        at=at.astimezone(UTC),
        actor=_clean(entry.actor, _LIMITS["actor"]) or "?",
        role=_clean(entry.role, _LIMITS["role"]),
        action=_clean(entry.action, _LIMITS["action"]) or "?",
        target=_clean(entry.target, _LIMITS["target"]),
        decision=entry.decision,
        result=_clean(entry.result, _LIMITS["result"]),
        detail=_detail_text(entry.detail),
        prev_hash=prev_hash,
        hash="",
    )
    return replace(unsealed, hash=record_hash(unsealed))


@dataclass(frozen=True, slots=True)
class Problem:
    """The first place the chain is broken."""

    row_id: int
    kind: Literal["edited", "deleted", "inserted", "truncated"]
    message: str


@dataclass
class ChainCheck:
    """Walks rows in id order and stops at the first break."""

    rows: int = 0
    last_id: int = 0
    last_hash: str = GENESIS
    problem: Problem | None = None

    def feed(self, record: AuditRecord) -> bool:
        """Check the next row; False (and `problem` set) at the first break."""
        if self.problem is None:
            self.problem = self._check(record)
            if self.problem is None:
                self.rows, self.last_id, self.last_hash = self.rows + 1, record.id, record.hash
        return self.problem is None

    def _check(self, record: AuditRecord) -> Problem | None:
        expected = self.last_id + 1
        if record.id != expected:
            missing = f"{expected}" if record.id == expected + 1 else f"{expected}-{record.id - 1}"
            return Problem(
                expected, "deleted", f"row {missing} missing (deleted) before row {record.id}"
            )
        if record_hash(record) != record.hash:
            return Problem(
                record.id, "edited", f"row {record.id}: contents do not match its hash (edited)"
            )
        if record.prev_hash != self.last_hash:
            before = f"row {self.last_id}" if self.last_id else "the start of the log"
            return Problem(
                record.id,
                "inserted",
                f"row {record.id}: does not follow {before} "
                "(inserted, or the row before it was replaced)",
            )
        return None
