"""`edge-agent buffer stats|export` and `status` read the outbox of a stopped agent;
the Prometheus endpoint serves the agent's gauges."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox, OutboxStats
from edge_agent.uplink import LinkState, LinkStatus
from protocol import Channel, PriorityClass, TelemetryBatch, TelemetryPoint, encode

runner = CliRunner()


def config_with_rows(tmp_path: Path, rows: int) -> Path:
    data = tmp_path / "data"

    async def fill() -> None:
        outbox = await Outbox.open(data / "outbox.db", device="amr-3")
        point = TelemetryPoint(ts=datetime.now(UTC), metric="m", value=1)
        body = encode(TelemetryBatch(points=[point]))
        await outbox.put_many([(Channel.TELEMETRY, body)] * rows)
        await outbox.close()

    asyncio.run(fill())
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "amr-3"\ndata_dir = "{data}"\n')
    return config


def test_buffer_stats_export_and_status_on_a_stopped_agent(tmp_path: Path) -> None:
    config = config_with_rows(tmp_path, 7)
    stats = runner.invoke(app, ["buffer", "stats", "--config", str(config)])
    assert stats.exit_code == 0
    assert "7" in stats.output
    out = tmp_path / "rows.jsonl"
    exported = runner.invoke(app, ["buffer", "export", "--config", str(config), "--out", str(out)])
    assert exported.exit_code == 0
    assert len(out.read_text().splitlines()) == 7
    status = runner.invoke(app, ["status", "--json", "--config", str(config)])
    doc = json.loads(status.output)
    assert doc["running"] is False
    assert doc["outbox"]["depth"] == 7
    assert doc["link"]["state"] == "agent not running"


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[device]\nid = "amr-3"\n[outbox]\nsynchronous = "FAST"\n')
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert "outbox.synchronous" in result.output
    assert "'NORMAL' or 'FULL'" in result.output


def test_metrics_endpoint_serves_the_gauges() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    metrics = AgentMetrics.serve("127.0.0.1", port)
    stats = OutboxStats(
        stream="s",
        depth=3,
        bytes=300,
        oldest_ts=None,
        unsent=3,
        inflight=0,
        dropped={PriorityClass.TELEMETRY: 5},
        cap_bytes=1000,
    )
    try:
        metrics.update(stats, LinkStatus(state=LinkState.UP, published=42))
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()
    assert "outpost_agent_outbox_depth 3.0" in body
    assert 'outpost_agent_outbox_dropped{class="telemetry"} 5.0' in body
    assert "outpost_agent_published 42.0" in body
    assert "outpost_agent_link_up 1.0" in body
