"""`edge-agent status`: what the running agent reports, read without disturbing it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from edge_agent.config import AgentSettings
from edge_agent.outbox import OutboxError, OutboxStats, read_stats

STALE_AFTER_S = 5.0


def collect(settings: AgentSettings) -> dict[str, Any]:
    """The status document: the agent's own report when it is running, the outbox always."""
    doc: dict[str, Any] = {"device": settings.device.id, "running": False}
    stats: OutboxStats | None = None
    path = settings.device.status_path
    if path.is_file():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
        age = time.time() - float(report.get("updated_at", 0))
        doc.update(report)
        doc["running"] = age < STALE_AFTER_S and _alive(int(report.get("pid", 0)))
        doc["report_age_s"] = round(age, 1)
    if settings.device.outbox_path.is_file():
        try:
            stats = read_stats(settings.device.outbox_path)
        except OutboxError as exc:  # e.g. the agent is creating it right now
            doc["outbox_error"] = str(exc)
            stats = None
    if stats is not None:
        doc["outbox"] = {
            "stream": stats.stream,
            "depth": stats.depth,
            "bytes": stats.bytes,
            "oldest_ts": stats.oldest_ts.isoformat() if stats.oldest_ts else None,
            "unsent": stats.unsent,
            "inflight": stats.inflight,
            "dropped": {k.value: v for k, v in stats.dropped.items()},
            "cap_bytes": stats.cap_bytes,
        }
    if not doc["running"]:
        doc["link"] = {"state": "agent not running"}
    return doc


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
