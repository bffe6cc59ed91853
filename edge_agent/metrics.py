"""Prometheus metrics of the agent on a local port (`[metrics] port`, 0 disables)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from edge_agent.outbox import OutboxStats
from edge_agent.uplink import LinkState, LinkStatus


class AgentMetrics:
    """The agent's gauges, in a registry of its own (several agents can share a process)."""

    def __init__(self, registry: CollectorRegistry, server: Any = None) -> None:
        self.registry, self._server = registry, server

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"outpost_agent_{name}", doc, labels, registry=registry)

        self.depth = gauge("outbox_depth", "Rows waiting for the hub")
        self.bytes = gauge("outbox_bytes", "Logical bytes in the outbox")
        self.dropped = gauge("outbox_dropped", "Rows dropped under the cap", ("class",))
        self.link_up = gauge("link_up", "1 while connected to the broker")
        self.published = gauge("published", "Messages published")
        self.resent = gauge("resent", "Messages re-sent")
        self.watermark = gauge("watermark", "Hub watermark (seq)")

    @classmethod
    def serve(cls, host: str, port: int) -> AgentMetrics:
        """Create the gauges and, when `port` is not 0, serve them over HTTP."""
        registry = CollectorRegistry()
        server = None
        if port:
            server, _thread = start_http_server(port, addr=host, registry=registry)
        return cls(registry, server)

    def update(self, stats: OutboxStats, link: LinkStatus) -> None:
        """Copy the current figures into the gauges."""
        self.depth.set(stats.depth)
        self.bytes.set(stats.bytes)
        for cls, count in stats.dropped.items():
            self.dropped.labels(cls.value).set(count)
        self.link_up.set(1 if link.state is LinkState.UP else 0)
        self.published.set(link.published)
        self.resent.set(link.resent)
        self.watermark.set(link.watermark)

    def close(self) -> None:
        """Stop the HTTP server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
