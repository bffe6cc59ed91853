"""Hub metrics: counters read at scrape time, the HTTP endpoint, and the Grafana dashboard
asking only for series the hub exports."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry

from hub.ingest.service import IngestCounters
from hub.metrics import HubMetrics
from hub.worker import WorkerCounters
from tests.integration.harness import free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "outpost-hub.json"


def metrics_of_every_role() -> tuple[HubMetrics, IngestCounters, WorkerCounters]:
    metrics = HubMetrics(CollectorRegistry())
    ingest, writer = IngestCounters(), WorkerCounters()
    metrics.count("outpost_ingest", ingest)
    metrics.count("outpost_writer", writer)
    metrics.lag("outpost-writers", lambda: {"telemetry.raw": 7})
    metrics.command_publish.observe(0.004)
    return metrics, ingest, writer


def test_counters_are_read_when_scraped() -> None:
    metrics, ingest, writer = metrics_of_every_role()
    ingest.received += 5
    ingest.reject("schema: bad payload")
    writer.stored += 3
    sample = metrics.registry.get_sample_value
    assert sample("outpost_ingest_received_total") == 5
    assert sample("outpost_ingest_reasons_total", {"reason": "schema"}) == 1
    assert sample("outpost_writer_stored_total") == 3
    assert (
        sample("outpost_consumer_lag", {"group": "outpost-writers", "topic": "telemetry.raw"}) == 7
    )
    assert sample("outpost_command_publish_seconds_count") == 1


def test_the_endpoint_serves_them() -> None:
    metrics, ingest, _ = metrics_of_every_role()
    ingest.received = 42
    port = free_port()
    metrics.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        metrics.close()
    assert "outpost_ingest_received_total 42.0" in text


def test_the_grafana_dashboard_uses_only_exported_series() -> None:
    metrics, ingest, _ = metrics_of_every_role()
    ingest.reject("schema: bad payload")  # a labelled family has samples once counted
    exported = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert expressions
    for expression in expressions:
        for name in re.findall(r"outpost_[a-z_]+", expression):
            assert name in exported, (name, sorted(exported))
