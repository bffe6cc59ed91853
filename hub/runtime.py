"""`outpost hub serve`: one process runs one role, or all of them (the embedded default).

| role   | what runs                                                        |
|--------|------------------------------------------------------------------|
| api    | the REST + WebSocket API (uvicorn)                               |
| ingest | MQTT shared subscription → bus, acknowledged after the bus holds it |
| worker | bus → database, watermarks, rollups, retention, alerts, drift     |
| all    | every role above in one process                                  |

Several ingest and worker processes run side by side against the same broker,
Kafka and PostgreSQL: the shared subscription spreads the fleet over ingest
processes, the consumer group spreads partitions over workers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import Any, Literal

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.alerts.worker import AlertWorker
from hub.app import broker_provisioner, create_app
from hub.broker.access import DeviceAuthority
from hub.broker.embedded import EmbeddedBroker, device_url, local_url
from hub.bus import create_bus
from hub.bus.base import Bus
from hub.drift.worker import DriftWorker
from hub.errors import HubConfigError, HubError
from hub.ingest.service import Ingest
from hub.metrics import HubMetrics
from hub.settings import HubSettings
from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from hub.worker import Housekeeping, Writer
from protocol.taskdump import install_task_dump

logger = logging.getLogger(__name__)

Role = Literal["all", "api", "ingest", "worker"]
ROLES: tuple[Role, ...] = ("all", "api", "ingest", "worker")


def build_bus(settings: HubSettings) -> Bus:
    """The configured bus (not started)."""
    cfg = settings.bus
    return create_bus(
        cfg.kind,
        bootstrap=cfg.bootstrap,
        topic_prefix=cfg.topic_prefix,
        partitions=cfg.partitions,
        replication_factor=cfg.replication_factor,
        timeout_s=cfg.timeout_s,
    )


async def serve(settings: HubSettings, role: Role) -> None:
    """Run `role` until cancelled (SIGTERM / Ctrl-C); SIGUSR1 logs every task's stack."""
    install_task_dump()
    embedded = settings.broker.kind == "embedded"
    if embedded and role != "all":
        raise HubConfigError(
            f"--role {role}: the embedded MQTT broker lives inside a single hub process; "
            'run --role all, or set [broker] kind = "external" with url = "mqtt://HOST:PORT" '
            "to split roles over processes"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database.url, schema=settings.database.schema_name or None)
    if role == "all":
        await migrate(engine)
    sessions = session_factory(engine)
    broker: EmbeddedBroker | None = None
    if embedded:
        settings, broker = _embedded_broker(settings, sessions)
        await broker.start()
    provisioner = broker_provisioner(settings)
    if provisioner is not None:  # every role publishes under outpost/ (commands, watermarks)
        await provisioner.bootstrap()
    bus = build_bus(settings)
    metrics = HubMetrics()
    try:
        await bus.start()
        metrics.serve(settings.metrics.host, settings.metrics.port)
        if broker is not None:  # refused logins: unenrolled or removed devices, bad passwords
            metrics.count("outpost_broker", broker.authority.counters)
        async with asyncio.TaskGroup() as tg:
            if role in ("all", "ingest"):
                ingest = Ingest(settings, bus)
                metrics.count("outpost_ingest", ingest.counters)
                tg.create_task(_essential("ingest", ingest.run()), name="ingest")
            if role in ("all", "worker"):
                writer = Writer(settings, bus, sessions)
                metrics.count("outpost_writer", writer.counters)
                metrics.lag(settings.worker.group, lambda: writer.lag)
                tg.create_task(_essential("writer", writer.run()), name="writer")
                housekeeping = Housekeeping(settings, bus, sessions)
                tg.create_task(_essential("housekeeping", housekeeping.run()), name="housekeeping")
                alerts = AlertWorker(settings, bus, sessions)
                tg.create_task(_essential("alerts", alerts.run()), name="alerts")
                drift = DriftWorker(settings, bus, sessions)
                tg.create_task(_essential("drift", drift.run()), name="drift")
            if role in ("all", "api"):
                app = create_app(
                    settings,
                    engine,
                    lambda: _bus_ok(bus),
                    broker.probe if broker else None,
                    bus=bus,
                    metrics=metrics,
                )
                server = uvicorn.Server(
                    uvicorn.Config(
                        app,
                        host=settings.host,
                        port=settings.port,
                        log_level="info",
                        log_config=None,  # uvicorn logs through ours (text or JSON)
                    )
                )
                tg.create_task(server.serve(), name="api")
            logger.info("hub role %s running", role)
    except* HubError as group:  # one loop failed: the others were cancelled; report it plainly
        raise group.exceptions[0] from None
    finally:
        metrics.close()
        await bus.stop()
        if broker is not None:
            await broker.stop()
        await engine.dispose()


async def _essential(name: str, loop: Coroutine[Any, Any, None]) -> None:
    """Run one of the role's loops; one that ends by a cancellation nobody asked for fails
    the process (exit 1, for systemd or Kubernetes to restart) instead of leaving a hub
    that runs but no longer consumes: a `TaskGroup` silently ignores a child that ended
    cancelled."""
    try:
        await loop
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # shutdown
            raise
        logger.exception("hub loop %s ended by a stray cancellation", name)
        raise HubError(f"the {name} loop ended by a stray cancellation (a bug): restart") from None


def _embedded_broker(
    settings: HubSettings, sessions: async_sessionmaker[AsyncSession]
) -> tuple[HubSettings, EmbeddedBroker]:
    """The broker, and the settings the hub's own clients use to reach it.

    The hub's login is `[broker] username` with `[broker] password`, or a random
    password for this run when none is set (only this process needs it).
    """
    cfg = settings.broker
    password = cfg.password or secrets.token_urlsafe(24)
    authority = DeviceAuthority(sessions, hub_user=cfg.username, hub_password=password)
    broker = EmbeddedBroker(cfg.url, authority)
    # Enrollment must still give devices the outside address, not the loopback one.
    public = cfg.public_url or device_url(cfg.url)
    local = cfg.model_copy(
        update={"url": local_url(cfg.url), "password": password, "public_url": public}
    )
    return settings.model_copy(update={"broker": local}), broker


async def _bus_ok(bus: Bus) -> str:
    probe = getattr(bus, "probe", None)
    if probe is not None:
        await probe()
    return "ok"
