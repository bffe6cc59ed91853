"""A hub app with an in-process bus and an alert worker, on a migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.alerts.notifier import Notifier
from hub.alerts.service import AlertService
from hub.alerts.worker import AlertWorker
from hub.auth.principal import Role
from hub.bus.base import Record
from hub.bus.memory import InMemoryBus
from hub.bus.topics import ALERTS, EVENTS
from hub.settings import AlertsSection
from hub.storage.db import transaction
from hub.storage.repositories import store_envelopes
from hub.storage.repositories.alerts import AlertRecord
from protocol.models import Envelope
from tests.hub.alerts.support import wire
from tests.hub.assets.support import add_site, enrolled
from tests.hub.auth.support import Hub, running_hub
from tests.hub.control.support import FakePublisher


class NoSleep:
    """A notifier `sleep` that returns at once and remembers the delays."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@dataclass
class AlertRig:
    """The app, its bus, the worker, and two sites with a device each."""

    hub: Hub
    bus: InMemoryBus
    worker: AlertWorker
    mine: str
    theirs: str
    _headers: dict[str, dict[str, str]] = field(default_factory=dict)

    async def feed(self, *envelopes: Envelope) -> list[AlertRecord]:
        """Hand envelopes to the worker as one bus batch."""
        records = [
            Record(EVENTS, e.device.encode(), wire(e), 0, i, 0) for i, e in enumerate(envelopes)
        ]
        return await self.worker.handle(records)

    async def store(self, *envelopes: Envelope) -> None:
        """Write envelopes as the database writer would (device status, events...)."""
        async with transaction(self.hub.sessions) as session:
            await store_envelopes(session, envelopes=list(envelopes))

    async def published(self) -> list[dict[str, Any]]:
        """Every record on the `alerts` topic so far, decoded."""
        async with self.bus.consumer([ALERTS], group="test-reader") as consumer:
            records = await consumer.poll(max_records=10_000, timeout_s=0.05)
            await consumer.commit()
        return [orjson.loads(r.value) | {"_key": r.key.decode()} for r in records]

    async def call(self, method: str, user: str, path: str, body: Any = None) -> Any:
        """An API call as `user` (logged in once per rig)."""
        if user not in self._headers:
            self._headers[user] = await self.hub.bearer(user)
        return await self.hub.client.request(
            method, f"/api/v1{path}", headers=self._headers[user], json=body
        )


@asynccontextmanager
async def alert_rig(
    engine: AsyncEngine,
    data_dir: Path,
    *,
    alerts: dict[str, Any] | None = None,
    sleep: NoSleep | None = None,
) -> AsyncIterator[AlertRig]:
    """The rig on `engine` (migrated): root (admin), olga (operator, plant-a), vic (viewer)."""
    async with running_hub(engine, data_dir, publisher=FakePublisher()) as hub:
        bus = InMemoryBus()
        await bus.start()
        try:
            hub.app.state.alerts = AlertService(hub.sessions, bus=bus)
            cfg = AlertsSection.model_validate(alerts or {})
            settings = hub.settings.model_copy(update={"alerts": cfg})
            notifier = Notifier(hub.sessions, cfg, sleep=sleep or NoSleep())
            worker = AlertWorker(settings, bus, hub.sessions, notifier=notifier)
            await add_site(hub, "plant-a")
            await add_site(hub, "plant-b")
            mine = await enrolled(hub, "plant-a", "AMR A")
            theirs = await enrolled(hub, "plant-b", "AMR B")
            await hub.add_user("olga", Role.OPERATOR, ["plant-a"])
            await hub.add_user("vic", Role.VIEWER, ["plant-a"])
            yield AlertRig(hub, bus, worker, mine, theirs)
        finally:
            await bus.stop()


def ids(items: Sequence[dict[str, Any]]) -> list[int]:
    """The `id` of each item."""
    return [int(i["id"]) for i in items]
