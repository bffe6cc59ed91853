"""Is msgpack worth offering beside orjson? Encode + decode rate and size, same messages.

Both sides run the whole protocol path a reader and a writer pay: pydantic
`model_dump` / `model_validate` plus the serializer. The ratio is orjson's rate
over msgpack's; at ≥ 0.9 msgpack buys too little to justify a second wire format.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import orjson

from bench.report import BenchResult, Measure, rate
from protocol import (
    Box,
    Channel,
    DetectedObject,
    DetectionBatch,
    Envelope,
    FrameResult,
    ModelRef,
    TelemetryBatch,
    TelemetryPoint,
    decode_envelope,
    encode,
)

TARGET = 0.9


def sample_envelopes() -> list[Envelope]:
    """A realistic mix: a 50-point telemetry batch and a 10-frame detection batch."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        TelemetryPoint(
            ts=t0 + timedelta(milliseconds=100 * i),
            metric=("cpu", "battery", "speed", "temp")[i % 4],
            value=i * 0.37,
            tags={"unit": "pct"},
        )
        for i in range(50)
    ]
    model = ModelRef(name="outpost-sim-detector", version="1.0.0", sha256="ab" * 32)
    frames = [
        FrameResult(
            ts=t0 + timedelta(milliseconds=66 * i),
            frame_id=f"cam0-{i}",
            model=model,
            objects=[
                DetectedObject(cls="person", conf=0.91, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.6)),
                DetectedObject(cls="forklift", conf=0.77, box=Box(x1=0.5, y1=0.4, x2=0.9, y2=0.9)),
            ],
            latency_ms=21.5,
            zones={"danger": [0]},
        )
        for i in range(10)
    ]
    return [
        Envelope(
            device="amr-1",
            stream="s1",
            seq=1,
            ts=t0,
            kind=Channel.TELEMETRY,
            body=TelemetryBatch(points=points),
        ),
        Envelope(
            device="amr-1",
            stream="s1",
            seq=2,
            ts=t0,
            kind=Channel.DETECTIONS,
            body=DetectionBatch(frames=frames),
        ),
    ]


def _msgpack_roundtrip(envelopes: list[Envelope]) -> int:
    for env in envelopes:
        data = msgpack.packb(env.model_dump(mode="json", exclude_none=True))
        Envelope.model_validate(msgpack.unpackb(data))
    return len(envelopes)


def _orjson_roundtrip(envelopes: list[Envelope]) -> int:
    for env in envelopes:
        decode_envelope(encode(env))
    return len(envelopes)


def _raw_rate(dumps: Any, loads: Any, objs: list[dict[str, Any]], seconds: float) -> float:
    def run() -> int:
        for obj in objs:
            loads(dumps(obj))
        return len(objs)

    return rate(run, min_seconds=seconds)


def run(*, seconds: float = 0.5) -> BenchResult:
    """Measure and return the result."""
    envelopes = sample_envelopes()
    objs = [e.model_dump(mode="json", exclude_none=True) for e in envelopes]
    ours = rate(lambda: _orjson_roundtrip(envelopes), min_seconds=seconds)
    theirs = rate(lambda: _msgpack_roundtrip(envelopes), min_seconds=seconds)
    json_bytes = sum(len(orjson.dumps(o)) for o in objs)
    msgpack_bytes = sum(len(msgpack.packb(o)) for o in objs)
    return BenchResult(
        name="codec",
        numerator=Measure(ours, "msgs/s", "orjson encode+decode incl. pydantic"),
        denominator=Measure(theirs, "msgs/s", "msgpack encode+decode incl. pydantic"),
        target=TARGET,
        details={
            "orjson_bytes": json_bytes,
            "msgpack_bytes": msgpack_bytes,
            "size_ratio_msgpack_over_json": round(msgpack_bytes / json_bytes, 3),
            "raw_orjson_msgs_per_s": round(_raw_rate(orjson.dumps, orjson.loads, objs, seconds)),
            "raw_msgpack_msgs_per_s": round(
                _raw_rate(msgpack.packb, msgpack.unpackb, objs, seconds)
            ),
        },
    )
