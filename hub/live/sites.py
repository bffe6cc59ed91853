"""Which site a device belongs to, for scoping live messages: cached with a short TTL.

Example:
    >>> async def site_of(cache: SiteCache) -> str | None:  # doctest: +SKIP
    ...     return (await cache.sites_of({"amr-7"}))["amr-7"]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.storage.db import transaction
from hub.storage.repositories.assets import get_device

DEFAULT_TTL_S = 30.0


class SiteCache:
    """Device id → site id (None for a device the hub does not know), kept `ttl_s` seconds.

    A device moved to another site reaches the new site's users within `ttl_s`.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An empty cache reading devices through `sessions`."""
        self._sessions, self._ttl_s, self._clock = sessions, ttl_s, clock
        self._known: dict[str, tuple[str | None, float]] = {}

    async def sites_of(self, devices: Iterable[str]) -> dict[str, str | None]:
        """The site of each device; one transaction for those not cached (or expired)."""
        now = self._clock()
        found: dict[str, str | None] = {}
        missing: list[str] = []
        for device in set(devices):
            cached = self._known.get(device)
            if cached is not None and cached[1] > now:
                found[device] = cached[0]
            else:
                missing.append(device)
        if missing:
            async with transaction(self._sessions) as session:
                for device in missing:
                    record = await get_device(session, device_id=device)
                    site = None if record is None else record.site_id
                    self._known[device] = (site, now + self._ttl_s)
                    found[device] = site
        return found
