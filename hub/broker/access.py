"""Who may log in to the embedded broker, and what each login may touch.

A device logs in with its id as username and the password the hub issued it
(`outpost hub device add`); it may publish only its own uplink topics and
subscribe to (and receive) only its own downlink topics. The hub's own clients
(ingest, the watermark publisher) log in as the hub user and may do anything.

Example:
    >>> may("amr-7", "outpost/v1/amr-7/telemetry", "publish", hub_user="outpost-hub")
    True
    >>> may("amr-7", "outpost/v1/amr-8/telemetry", "publish", hub_user="outpost-hub")
    False
    >>> may("amr-7", "outpost/v1/amr-7/cmd", "subscribe", hub_user="outpost-hub")
    True
    >>> may("amr-7", "outpost/v1/+/cmd", "subscribe", hub_user="outpost-hub")
    False
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.storage.db import transaction
from hub.storage.repositories import active_password_hash, password_matches
from protocol import DOWNLINK_CHANNELS, UPLINK_CHANNELS, TopicError, parse_topic

logger = logging.getLogger(__name__)

Action = Literal["publish", "subscribe", "receive"]


def may(username: str | None, topic: str | None, action: Action, *, hub_user: str) -> bool:
    """Whether `username` may `action` on `topic` (a topic name, or a filter to subscribe)."""
    if username is None or not topic:
        return False
    if username == hub_user:
        return True
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return False  # wildcards, other trees, malformed: never for a device
    if parsed.device != username:
        return False
    allowed = UPLINK_CHANNELS if action == "publish" else DOWNLINK_CHANNELS
    return parsed.channel in allowed


@dataclass
class AccessCounters:
    """Refusals, for logs, metrics and tests."""

    logins: int = 0
    refused_logins: int = 0
    denied: dict[str, int] = field(default_factory=dict)

    def deny(self, action: Action) -> None:
        """Count one refused publish / subscribe / receive."""
        self.denied[action] = self.denied.get(action, 0) + 1


class DeviceAuthority:
    """Checks logins against the device credentials in the hub's database.

    Every login reads the stored hash (so a revoked or re-issued credential is
    refused at once); a (username, password) pair verified against that same hash
    is remembered for `cache_s` seconds, so a device reconnecting in a loop costs
    one argon2 verification per minute, not one per attempt.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        hub_user: str,
        hub_password: str,
        cache_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions, self.hub_user, self._hub_password = sessions, hub_user, hub_password
        self._cache_s, self._clock = cache_s, clock
        self._verified: dict[tuple[str, bytes], tuple[str, float]] = {}
        self.counters = AccessCounters()

    async def authenticate(self, username: str | None, password: str | None) -> bool:
        """Whether this login is the hub's own or a device's with valid credentials."""
        ok = await self._check(username or "", password or "")
        if ok:
            self.counters.logins += 1
        else:
            self.counters.refused_logins += 1
            logger.warning("embedded broker refused the login of %r", (username or "")[:64])
        return ok

    async def _check(self, username: str, password: str) -> bool:
        if not username or not password:
            return False
        if username == self.hub_user:
            return hmac.compare_digest(password.encode(), self._hub_password.encode())
        async with transaction(self._sessions) as session:
            stored = await active_password_hash(session, device=username)
        if stored is None:
            return False
        key = (username, hashlib.sha256(password.encode()).digest())
        cached = self._verified.get(key)
        if cached is not None and cached[0] == stored and cached[1] > self._clock():
            return True
        if not await asyncio.to_thread(password_matches, stored, password):
            return False
        self._verified[key] = (stored, self._clock() + self._cache_s)
        return True

    def permits(self, username: str | None, topic: str | None, action: Action) -> bool:
        """`may`, counted when refused."""
        if may(username, topic, action, hub_user=self.hub_user):
            return True
        self.counters.deny(action)
        if action != "receive":  # receive checks happen for every subscriber; too chatty
            logger.warning("embedded broker denied %s %s to %r", action, topic, username)
        return False
