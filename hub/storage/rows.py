"""Envelopes → table rows: pure functions, no database (the repositories write them).

Example:
    >>> from datetime import UTC, datetime
    >>> from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> env = Envelope(device="amr-7", stream="s1", seq=3, ts=now, kind=Channel.TELEMETRY,
    ...     body=TelemetryBatch(points=[TelemetryPoint(ts=now, metric="cpu", value=0.5)]))
    >>> rows = plan_rows([env])
    >>> rows.telemetry[0]["metric"], rows.received
    ('cpu', [{'device': 'amr-7', 'stream': 's1', 'seq': 3}])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from protocol import is_gateway_stream
from protocol.fast import FastBatch, FastTelemetry
from protocol.models import (
    Ack,
    DetectionBatch,
    DeviceState,
    Envelope,
    Event,
    Frame,
    FramePurpose,
    TelemetryBatch,
)

Row = dict[str, Any]
Uplink = Envelope | FastTelemetry
"""An uplink message as the writer decoded it: telemetry through the fast path when it
could (`protocol.fast`), anything else as the protocol's model."""


@dataclass
class RowPlan:
    """What a batch of envelopes writes, table by table."""

    telemetry: list[Row] = field(default_factory=list)
    detections: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    acks: list[Row] = field(default_factory=list)
    frames: list[Row] = field(default_factory=list)
    received: list[Row] = field(default_factory=list)
    states: dict[str, Row] = field(default_factory=dict)
    """The newest state per device in the batch (older ones could never win)."""
    state_envelopes: int = 0


class _Point(Protocol):
    """A telemetry point, from either decoder."""

    @property
    def ts(self) -> datetime: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def tags(self) -> Mapping[str, str]: ...


def _key(env: Uplink) -> Row:
    return {"device": env.device, "stream": env.stream, "seq": env.seq}


def telemetry_rows(env: Uplink, body: TelemetryBatch | FastBatch) -> list[Row]:
    """One row per point; `idx` is the point's position in the batch."""
    device, stream, seq = env.device, env.stream, env.seq
    points: Sequence[_Point] = body.points
    return [
        {
            "device": device,
            "stream": stream,
            "seq": seq,
            "idx": idx,
            "ts": point.ts,
            "metric": point.metric,
            "value": point.value,
            "tags": point.tags,  # read only: every strategy serialises it
        }
        for idx, point in enumerate(points)
    ]


def detection_rows(env: Envelope, body: DetectionBatch) -> list[Row]:
    """One row per frame result, with the sorted set of class names present."""
    return [
        {
            **_key(env),
            "idx": idx,
            "ts": frame.ts,
            "frame_id": frame.frame_id,
            "camera": frame.camera,
            "model_name": frame.model.name,
            "model_version": frame.model.version,
            "model_sha256": frame.model.sha256,
            "objects": [obj.model_dump(mode="json") for obj in frame.objects],
            "zones": {zone: list(indices) for zone, indices in frame.zones.items()},
            "latency_ms": frame.latency_ms,
            "classes": sorted({obj.cls for obj in frame.objects}),
        }
        for idx, frame in enumerate(body.frames)
    ]


def event_row(env: Envelope, body: Event) -> Row:
    """The event with its key."""
    return {
        **_key(env),
        "ts": body.ts,
        "type": body.type,
        "severity": body.severity.value,
        "detail": dict(body.detail),
    }


def ack_row(env: Envelope, body: Ack) -> Row:
    """The command lifecycle report with its key."""
    return {
        **_key(env),
        "cmd_id": body.cmd_id,
        "status": body.status.value,
        "at": body.at,
        "detail": body.detail,
        "reason": body.reason,
    }


def state_row(env: Envelope, body: DeviceState) -> Row:
    """A `device_status` row from a `state` envelope (its `ts` decides which state is newest)."""
    return {
        "device": env.device,
        "online": body.online,
        "last_seen": env.ts,
        "agent_version": body.agent_version,
        "state": body.model_dump(mode="json", exclude_none=True),
        "state_ts": env.ts,
    }


def frame_row(env: Envelope, body: Frame) -> Row:
    """A `frames` row: a snapshot or capture JPEG with what the hub needs to serve it."""
    return {
        **_key(env),
        "ts": body.ts,
        "frame_id": body.frame_id,
        "camera": body.camera,
        "purpose": body.purpose.value,
        "width": body.width,
        "height": body.height,
        "jpeg": body.jpeg,
    }


def plan_rows(envelopes: Sequence[Uplink]) -> RowPlan:
    """Split a batch into rows per table; frames sent for inference only record their seq.

    A gateway agent's streams record no seqs: they have no watermark (see
    `protocol.is_gateway_stream`)."""
    plan = RowPlan()
    for env in envelopes:
        if not is_gateway_stream(env.stream):
            plan.received.append(_key(env))
        if isinstance(env, FastTelemetry):
            plan.telemetry.extend(telemetry_rows(env, env.body))
            continue
        body = env.body
        if isinstance(body, TelemetryBatch):
            plan.telemetry.extend(telemetry_rows(env, body))
        elif isinstance(body, DetectionBatch):
            plan.detections.extend(detection_rows(env, body))
        elif isinstance(body, Event):
            plan.events.append(event_row(env, body))
        elif isinstance(body, Ack):
            plan.acks.append(ack_row(env, body))
        elif isinstance(body, DeviceState):
            plan.state_envelopes += 1
            _keep_newest(plan.states, state_row(env, body))
        elif isinstance(body, Frame) and body.purpose is not FramePurpose.INFERENCE:
            plan.frames.append(frame_row(env, body))
    return plan


def _keep_newest(states: dict[str, Row], row: Row) -> None:
    current = states.get(row["device"])
    if current is None or row["state_ts"] > current["state_ts"]:
        states[row["device"]] = row
