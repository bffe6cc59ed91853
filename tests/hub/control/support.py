"""A fake command publisher and helpers to act on commands through a test hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.control.errors import PublishError
from hub.storage.db import transaction
from hub.storage.repositories import store_envelopes
from protocol import Channel, Envelope
from protocol.models import Ack, AckStatus
from tests.hub.auth.support import Hub


@dataclass
class FakePublisher:
    """Keeps what would be published; raises `PublishError(failure)` while `failure` is set."""

    sent: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    failure: str | None = None

    async def publish(self, topic: str, payload: bytes, *, expiry_s: int) -> None:
        """Record the publish, or fail like a broker that never answered."""
        if self.failure is not None:
            raise PublishError(self.failure)
        self.sent.append((topic, orjson.loads(payload), expiry_s))


async def post(hub: Hub, user: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST as `user` (an httpx response)."""
    return await hub.client.post(f"/api/v1{path}", headers=await hub.bearer(user), json=body)


async def get(hub: Hub, user: str, path: str) -> Any:
    """GET as `user` (an httpx response)."""
    return await hub.client.get(f"/api/v1{path}", headers=await hub.bearer(user))


async def device_acks(
    hub: Hub, device: str, *acks: tuple[str, AckStatus], seq_from: int = 1
) -> None:
    """Store acks `(cmd_id, status)` as the worker would, in this order, from seq `seq_from`."""
    now = datetime.now(UTC)
    envelopes = [
        Envelope(
            device=device,
            stream="s1",
            seq=seq,
            ts=now,
            kind=Channel.ACKS,
            body=Ack(cmd_id=cmd_id, status=status, at=now, detail=f"{status.value} #{seq}"),
        )
        for seq, (cmd_id, status) in enumerate(acks, start=seq_from)
    ]
    async with transaction(hub.sessions) as session:
        await store_envelopes(session, envelopes=envelopes)
