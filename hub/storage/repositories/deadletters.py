"""The dead-letter store: input that could not be used, kept with the reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.storage.errors import translated
from hub.storage.models import DEVICE_LEN, DeadLetter

MAX_PAYLOAD_BYTES = 64 << 10
MAX_REASON_CHARS = 2000
MAX_SOURCE_CHARS = 256


@translated
async def store_deadletter(
    session: AsyncSession,
    *,
    source: str,
    payload: bytes,
    reason: str,
    device: str | None = None,
    received_at: datetime,
) -> int:
    """Keep a rejected payload (first 64 KiB, `truncated` set beyond); return its id.

    `source` is where it came from (an MQTT topic or bus topic); `device` is the
    device it claims to be from, when known. Long reasons are cut to 2000 characters.

    Example:
        >>> async def reject(session, topic, raw, error, now):
        ...     return await store_deadletter(session, source=topic, payload=raw,
        ...                                   reason=str(error), received_at=now)
    """
    statement = (
        insert(DeadLetter)
        .values(
            received_at=received_at,
            source=source[:MAX_SOURCE_CHARS],
            device=device[:DEVICE_LEN] if device else None,
            reason=reason[:MAX_REASON_CHARS],
            payload=bytes(payload[:MAX_PAYLOAD_BYTES]),
            size=len(payload),
            truncated=len(payload) > MAX_PAYLOAD_BYTES,
        )
        .returning(DeadLetter.id)
    )
    return int((await session.execute(statement)).scalar_one())
