"""`outpost hub serve`: one process runs one role, or all of them (the embedded default).

| role   | what runs                                                        |
|--------|------------------------------------------------------------------|
| api    | the REST + WebSocket API (uvicorn)                               |
| ingest | MQTT shared subscription → bus, acknowledged after the bus holds it |
| worker | bus → database, watermarks, rollups, retention                   |
| all    | every role above in one process                                  |

Several ingest and worker processes run side by side against the same broker,
Kafka and PostgreSQL: the shared subscription spreads the fleet over ingest
processes, the consumer group spreads partitions over workers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import uvicorn

from hub.app import create_app
from hub.bus import create_bus
from hub.bus.base import Bus
from hub.errors import HubError
from hub.ingest.service import Ingest
from hub.settings import HubSettings
from hub.storage.db import create_engine, session_factory
from hub.storage.migrate import migrate
from hub.worker import Housekeeping, Writer

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
    """Run `role` until cancelled (SIGTERM / Ctrl-C)."""
    if settings.broker.kind == "embedded" and role in ("all", "ingest"):
        raise HubError(
            "the embedded MQTT broker is not built yet (issue #4): set [broker] kind = "
            '"external" and url = "mqtt://HOST:PORT" to use Mosquitto'
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database.url, schema=settings.database.schema_name or None)
    if role == "all":
        await migrate(engine)
    bus = build_bus(settings)
    await bus.start()
    sessions = session_factory(engine)
    try:
        async with asyncio.TaskGroup() as tg:
            if role in ("all", "ingest"):
                tg.create_task(Ingest(settings, bus).run(), name="ingest")
            if role in ("all", "worker"):
                tg.create_task(Writer(settings, bus, sessions).run(), name="writer")
                tg.create_task(Housekeeping(settings, bus, sessions).run(), name="housekeeping")
            if role in ("all", "api"):
                app = create_app(settings, engine, lambda: _bus_ok(bus))
                server = uvicorn.Server(
                    uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")
                )
                tg.create_task(server.serve(), name="api")
            logger.info("hub role %s running", role)
    finally:
        await bus.stop()
        await engine.dispose()


async def _bus_ok(bus: Bus) -> str:
    probe = getattr(bus, "probe", None)
    if probe is not None:
        await probe()
    return "ok"
