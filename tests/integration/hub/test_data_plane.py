"""Real agents → Mosquitto → hub ingest → Kafka → hub worker → PostgreSQL, and the watermark back.

Hub roles run as real `outpost hub serve --role …` processes, agents as real
`edge-agent run` processes. The agents' outboxes empty only because the hub's
`ingested` watermarks reach them, so an empty outbox proves the loop closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.edge.test_delivery import data_depth, drain_remainder
from tests.integration.harness import AgentProcess, agent_config, wait_for
from tests.integration.hubrig import (
    HubProcess,
    drop_run,
    migrate,
    pg_counter_values,
    scale_config,
    wait_sessions_subscribed,
)

AGENTS = 2
RATE_HZ = 50
RUN_S = 8


@pytest.fixture
def hub_stack(
    tmp_path: Path, run_id: str, mqtt_url: str, kafka_bootstrap: str, pg_dsn: str
) -> Iterator[Path]:
    config = scale_config(
        tmp_path / "hub.toml",
        run_id=run_id,
        mqtt_url=mqtt_url,
        kafka=kafka_bootstrap,
        pg_dsn=pg_dsn,
    )
    migrate(config)
    roles = [
        HubProcess(tmp_path / f"hub-{role}.log", config=config, role=role)
        for role in ("ingest", "worker")
    ]
    for role in roles:
        role.start()
    try:
        # Agents start next: what they publish before the ingest has subscribed, the broker
        # drops (and another test's hub on the shared broker may acknowledge it meanwhile).
        wait_sessions_subscribed(roles[:1], f"ingest-{run_id}")
        yield config
    finally:
        for role in roles:
            role.stop()
        drop_run(pg_dsn, kafka_bootstrap, run_id)


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
    try:
        # RUN_S of running agents, not of processes still importing on a busy machine.
        for _device, data, _cfg, agent in agents:
            wait_for(lambda a=agent, d=data: a.reported_running(d), 60, "the agents to start")  # type: ignore[misc]
        time.sleep(RUN_S)
        for device, data, cfg, agent in agents:
            assert agent.terminate() == 0
            drain_remainder(agent, cfg, device=device, data=data, mqtt_url=mqtt_url)
            assert data_depth(data / "outbox.db") == 0  # the state sent as it stopped may wait
        for device, _data, _cfg, _agent in agents:
            values = asyncio.run(pg_counter_values(pg_dsn, run_id, device))
            assert values == list(range(len(values))), "gap or duplicate in stored telemetry"
            # Producing starts a moment after the status file; what matters above is that
            # nothing is missing or twice.
            assert len(values) >= RATE_HZ * RUN_S * 0.5
    finally:
        for _device, _data, _cfg, agent in agents:
            agent.ensure_stopped()
