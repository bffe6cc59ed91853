"""Prometheus metrics of a hub process (`[metrics] port`; 0, the default, serves none).

Each role registers what it counts: ingest (`outpost_ingest_*`: received, routed,
dead-lettered by reason, bus retries), the writer (`outpost_writer_*`: records,
stored, duplicates, watermarks, restarts, and the consumer lag per topic), and the
API (`outpost_command_publish_seconds`, the time from handing a signed command to
the broker to its PUBACK). The counters live where the work is done, as plain dataclasses;
this module only reads them when Prometheus scrapes, so counting costs nothing more.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Seen:
    ...     received: int = 0
    >>> registry = CollectorRegistry()
    >>> counters = Seen(3)
    >>> registry.register(CountersCollector("outpost_demo", counters))
    >>> registry.get_sample_value("outpost_demo_received_total")
    3.0
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LagSource = Callable[[], Mapping[str, int]]
"""Messages not yet consumed, per topic, as last measured."""


class CountersCollector(Collector):
    """Exposes every int field of a counters dataclass as `PREFIX_FIELD_total`.

    A `dict[str, int]` field becomes one counter with a `reason` label.
    """

    def __init__(self, prefix: str, counters: Any) -> None:
        if not dataclasses.is_dataclass(counters):
            raise TypeError(f"{type(counters).__name__} is not a dataclass")
        self._prefix, self._counters = prefix, counters

    def collect(self) -> Iterator[Metric]:
        """One family per field, read now."""
        for spec in dataclasses.fields(self._counters):
            value = getattr(self._counters, spec.name)
            name = f"{self._prefix}_{spec.name}"
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                yield CounterMetricFamily(name, f"{spec.name} so far", value=float(value))
            elif isinstance(value, dict):
                family = CounterMetricFamily(name, f"{spec.name} by reason", labels=["reason"])
                for reason, count in sorted(value.items()):
                    family.add_metric([str(reason)], float(count))
                yield family


class LagCollector(Collector):
    """`outpost_consumer_lag{group, topic}`: records on the bus not yet consumed."""

    def __init__(self, group: str, source: LagSource) -> None:
        self._group, self._source = group, source

    def collect(self) -> Iterator[Metric]:
        """The last measured lag per topic."""
        family = GaugeMetricFamily(
            "outpost_consumer_lag", "Records not yet consumed", labels=["group", "topic"]
        )
        for topic, lag in sorted(self._source().items()):
            family.add_metric([self._group, topic], float(lag))
        yield family


class HubMetrics:
    """The process's registry and, when a port is set, its HTTP endpoint (`/metrics`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.command_publish = Histogram(
            "outpost_command_publish_seconds",
            "From handing a signed command to the broker to its PUBACK",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self._server: Any = None

    def count(self, prefix: str, counters: Any) -> None:
        """Expose a counters dataclass (see `CountersCollector`)."""
        self.registry.register(CountersCollector(prefix, counters))

    def lag(self, group: str, source: LagSource) -> None:
        """Expose a consumer group's lag."""
        self.registry.register(LagCollector(group, source))

    def serve(self, host: str, port: int) -> None:
        """Serve `/metrics` on `host:port` (in a thread); port 0 serves nothing."""
        if port:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
            logger.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
