"""Real agents → Mosquitto → hub ingest → Kafka → hub worker → PostgreSQL, and the watermark back.

Hub roles run as real `outpost hub serve --role …` processes, agents as real
`edge-agent run` processes. The agents' outboxes empty only because the hub's
`ingested` watermarks reach them, so an empty outbox proves the loop closes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.edge.test_delivery import depth, drain_remainder
from tests.integration.harness import AgentProcess, agent_config

OUTPOST = str(Path(sys.executable).parent / "outpost")
AGENTS = 2
RATE_HZ = 50
RUN_S = 8


def hub_config(path: Path, *, run_id: str, mqtt_url: str, kafka: str, pg_dsn: str) -> Path:
    dsn = pg_dsn.replace("postgresql://", "postgresql+asyncpg://")
    path.write_text(
        f'data_dir = "{path.parent / "hub-data"}"\n'
        f'[database]\nurl = "{dsn}"\nschema = "t_{run_id}"\n'
        f'[bus]\nkind = "kafka"\nbootstrap = "{kafka}"\ntopic_prefix = "t{run_id}."\n'
        "partitions = 3\n"
        f'[broker]\nkind = "external"\nurl = "{mqtt_url}"\nusername = ""\n'
        f'[ingest]\nshared_group = "ingest-{run_id}"\n'
        f'[worker]\ngroup = "writers-{run_id}"\nrollup_interval_s = 2\n'
    )
    return path


class HubProcess:
    """`outpost hub serve --role ROLE` as a real process."""

    def __init__(self, config: Path, role: str, log: Path) -> None:
        self.config, self.role, self.log = config, role, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [OUTPOST, "hub", "serve", "--config", str(self.config), "--role", self.role],
                stdout=out,
                stderr=out,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def hub_stack(
    tmp_path: Path, run_id: str, mqtt_url: str, kafka_bootstrap: str, pg_dsn: str
) -> Iterator[Path]:
    config = hub_config(
        tmp_path / "hub.toml",
        run_id=run_id,
        mqtt_url=mqtt_url,
        kafka=kafka_bootstrap,
        pg_dsn=pg_dsn,
    )
    subprocess.run(
        [OUTPOST, "hub", "migrate", "--config", str(config)], check=True, capture_output=True
    )
    roles = [
        HubProcess(config, role, tmp_path / f"hub-{role}.log") for role in ("ingest", "worker")
    ]
    for role in roles:
        role.start()
    try:
        yield config
    finally:
        for role in roles:
            role.stop()
        asyncio.run(_cleanup(pg_dsn, kafka_bootstrap, run_id))


async def _cleanup(pg_dsn: str, kafka: str, run_id: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "t_{run_id}" CASCADE')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await asyncio.wait_for(admin.start(), 15)
    try:
        topics = [
            t
            for t in await asyncio.wait_for(admin.list_topics(), 15)
            if t.startswith(f"t{run_id}.")
        ]
        if topics:
            await asyncio.wait_for(admin.delete_topics(topics), 15)
    finally:
        await admin.close()


async def _counter_values(pg_dsn: str, run_id: str, device: str) -> list[float]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT value FROM "t_{run_id}".telemetry '  # noqa: S608 - run_id is hex
            "WHERE device = $1 AND metric = 'synthetic.counter' ORDER BY value",
            device,
        )
    finally:
        await conn.close()
    return [r["value"] for r in rows]


@pytest.mark.timeout(240)
def test_agents_to_postgres_exactly_once_and_watermarks_back(
    tmp_path: Path, run_id: str, mqtt_url: str, pg_dsn: str, hub_stack: Path
) -> None:
    agents = []
    for n in range(AGENTS):
        device = f"dp-{run_id}-{n}"
        data = tmp_path / device
        cfg = agent_config(
            tmp_path / f"{device}.toml",
            device=device,
            data_dir=data,
            mqtt_url=mqtt_url,
            telemetry={"sources": [{"type": "synthetic", "rate_hz": RATE_HZ}]},
        )
        agent = AgentProcess(cfg, tmp_path / f"{device}.log")
        agent.start()
        agents.append((device, data, cfg, agent))
    time.sleep(RUN_S)
    try:
        for device, data, cfg, agent in agents:
            assert agent.terminate() == 0
            drain_remainder(agent, cfg, device=device, data=data, mqtt_url=mqtt_url)
            assert depth(data / "outbox.db") == 0
        for device, _data, _cfg, _agent in agents:
            values = asyncio.run(_counter_values(pg_dsn, run_id, device))
            assert values == list(range(len(values))), "gap or duplicate in stored telemetry"
            assert len(values) >= RATE_HZ * RUN_S * 0.7
    finally:
        for _device, _data, _cfg, agent in agents:
            agent.ensure_stopped()
