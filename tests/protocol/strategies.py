"""Hypothesis strategies for valid protocol messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from protocol import (
    Ack,
    AckStatus,
    Box,
    BufferStatus,
    Channel,
    DetectedObject,
    DetectionBatch,
    DeviceState,
    Envelope,
    EstopStatus,
    Event,
    Frame,
    FrameResult,
    Mode,
    ModelRef,
    PriorityClass,
    Severity,
    StopSource,
    TelemetryBatch,
    TelemetryPoint,
    Watermark,
)

# Text that can travel as UTF-8 (lone surrogates cannot; see test_codec for that case).
text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24)
device_ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
stream_ids = st.from_regex(r"\A[A-Za-z0-9_\-]{1,64}\Z")
metrics = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,20}\Z")
seqs = st.integers(min_value=0, max_value=(1 << 63) - 1)
units = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
finite = st.floats(allow_nan=False, allow_infinity=False)
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])
# hypothesis wants naive bounds and attaches the zones itself.
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=zones,
)
sha256 = st.from_regex(r"\A[0-9a-f]{64}\Z")


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x = sorted([draw(units), draw(units)])
    y = sorted([draw(units), draw(units)])
    return Box(x1=x[0], y1=y[0], x2=x[1], y2=y[1])


model_refs = st.builds(ModelRef, name=text, version=text, sha256=sha256)
points = st.builds(
    TelemetryPoint,
    ts=timestamps,
    metric=metrics,
    value=finite,
    tags=st.dictionaries(text, text, max_size=3),
)
objects = st.builds(DetectedObject, cls=text, conf=units, box=boxes())


@st.composite
def frame_results(draw: st.DrawFn) -> FrameResult:
    objs = draw(st.lists(objects, max_size=4))
    zone_map = {}
    if objs:
        indices = st.lists(st.integers(0, len(objs) - 1), max_size=len(objs))
        zone_map = draw(st.dictionaries(text, indices, max_size=2))
    return FrameResult(
        ts=draw(timestamps),
        frame_id=draw(text),
        camera=draw(text),
        model=draw(model_refs),
        objects=objs,
        latency_ms=draw(st.floats(0.0, 10_000.0)),
        zones=zone_map,
    )


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, text)

BODIES = {
    Channel.TELEMETRY: st.builds(TelemetryBatch, points=st.lists(points, min_size=1, max_size=5)),
    Channel.DETECTIONS: st.builds(
        DetectionBatch, frames=st.lists(frame_results(), min_size=1, max_size=3)
    ),
    Channel.EVENTS: st.builds(
        Event,
        ts=timestamps,
        type=st.from_regex(r"\A[a-z][a-z0-9_.]{0,20}\Z"),
        severity=st.sampled_from(Severity),
        detail=st.dictionaries(text, json_scalars, max_size=4),
    ),
    Channel.STATE: st.builds(
        DeviceState,
        online=st.booleans(),
        agent_version=st.none() | text,
        model=st.none() | model_refs,
        estop=st.none()
        | st.builds(
            EstopStatus,
            engaged=st.booleans(),
            source=st.none() | st.sampled_from(StopSource),
            reason=st.none() | text,
            since=st.none() | timestamps,
        ),
        mode=st.none() | st.sampled_from(Mode),
        buffer=st.none()
        | st.builds(
            BufferStatus,
            depth=seqs,
            bytes=seqs,
            oldest_ts=st.none() | timestamps,
            dropped=st.dictionaries(st.sampled_from(PriorityClass), seqs),
        ),
    ),
    Channel.ACKS: st.builds(
        Ack,
        cmd_id=text,
        status=st.sampled_from(AckStatus),
        at=timestamps,
        detail=st.none() | text,
        reason=st.none() | text,
    ),
    Channel.FRAMES: st.builds(
        Frame,
        ts=timestamps,
        frame_id=text,
        camera=text,
        width=st.integers(1, 4096),
        height=st.integers(1, 4096),
        jpeg=st.binary(min_size=2, max_size=64).map(lambda b: b"\xff\xd8" + b),
    ),
}


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    kind = draw(st.sampled_from(sorted(BODIES)))
    return Envelope(
        device=draw(device_ids),
        stream=draw(stream_ids),
        seq=draw(seqs),
        ts=draw(timestamps),
        kind=kind,
        body=draw(BODIES[kind]),
    )


watermarks = st.builds(Watermark, device=device_ids, stream=stream_ids, seq=seqs, at=timestamps)
