"""`protocol.fast.decode_telemetry` is a shortcut, never a second contract: whatever it
accepts, `decode_envelope` accepts with the same values; and it does accept what agents
send, or it would save nothing."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import Channel, DecodeError, Envelope, TelemetryBatch, decode_envelope, encode
from protocol.fast import SUBMICROSECOND, FastTelemetry, decode_telemetry
from tests.protocol.strategies import device_ids, points, seqs, stream_ids, timestamps

EXAMPLES = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def same(fast: FastTelemetry, env: Envelope) -> bool:
    assert isinstance(env.body, TelemetryBatch)
    head = (fast.device, fast.stream, fast.seq, fast.ts, fast.v)
    if head != (env.device, env.stream, env.seq, env.ts, env.v) or env.kind != Channel.TELEMETRY:
        return False
    ours = [(p.ts, p.metric, p.value, p.tags) for p in fast.body.points]
    theirs = [(p.ts, p.metric, p.value, dict(p.tags)) for p in env.body.points]
    return ours == theirs


@EXAMPLES
@given(
    device_ids, stream_ids, seqs, timestamps, st.lists(points, min_size=1, max_size=5)
)  # fmt: skip
def test_what_agents_send_takes_the_fast_path_with_the_same_values(
    device: str, stream: str, seq: int, ts: Any, batch: list[Any]
) -> None:
    env = Envelope(
        device=device, stream=stream, seq=seq, ts=ts, kind=Channel.TELEMETRY,
        body=TelemetryBatch(points=batch),
    )  # fmt: skip
    raw = encode(env)
    assume(not SUBMICROSECOND.search(raw))  # a metric or tag that looks like a fine time
    fast = decode_telemetry(raw)
    assert fast is not None
    assert same(fast, decode_envelope(raw))


# Near misses for every field: wrong types, edges of every limit, odd time formats.
TIMES = st.sampled_from(
    [
        "2026-01-01T00:00:00Z", "2026-01-01t00:00:00z", "2026-01-01 00:00:00+05:30",
        "2026-01-01T00:00:00.1234567Z", "2026-01-01T00:00:00.999999-23:59",
        "2026-01-01T23:59:60Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00Z",
        "2026-01-01T00:00:00", "2026-01-01T00:00:00+0530", "2026-01-01T00:00:00,5Z",
        "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00.Z", "1700000000",
    ]
) | st.integers(0, 2**40) | st.floats(allow_nan=False)  # fmt: skip
STRINGS = st.text(max_size=130) | st.sampled_from(
    ["cpu", "cpu\n", "x" * 128, "x" * 129, "\U0001f600" * 128, "a:b.c-d", "-a", "", "AMR-7"]
)
NUMBERS = (
    st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans() | st.none() | st.sampled_from(["1.5", "nan", 1e308])
)  # fmt: skip
VALUES = TIMES | STRINGS | NUMBERS | st.dictionaries(STRINGS, STRINGS, max_size=34)


@st.composite
def near_misses(draw: st.DrawFn) -> bytes:
    point: dict[str, Any] = {"ts": "2026-01-01T00:00:00Z", "metric": "cpu", "value": 0.5}
    body: dict[str, Any] = {"points": [point]}
    envelope: dict[str, Any] = {
        "v": "1.0", "device": "amr-7", "stream": "s1", "seq": 3,
        "ts": "2026-01-01T00:00:00Z", "kind": "telemetry", "body": body,
    }  # fmt: skip
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from([envelope, point, body]))
        field = draw(st.sampled_from([*target, "tags", "v", "extra"]))
        target[field] = draw(VALUES)
    try:
        return orjson.dumps(envelope)
    except TypeError:  # an integer orjson cannot write: write it as JSON text does
        return json.dumps(envelope).encode()


@EXAMPLES
@given(near_misses())
def test_whatever_the_fast_path_accepts_decode_envelope_accepts_alike(raw: bytes) -> None:
    fast = decode_telemetry(raw)
    if fast is None:
        return
    try:
        env = decode_envelope(raw)
    except DecodeError as exc:
        raise AssertionError(f"fast path accepted what decode_envelope refuses: {exc}") from exc
    assert same(fast, env)


def test_other_kinds_and_bad_input_are_left_to_decode_envelope() -> None:
    event = b'{"v":"1.0","device":"a","stream":"s","seq":1,"ts":"2026-01-01T00:00:00Z",'
    assert decode_telemetry(event + b'"kind":"events","body":{}}') is None
    assert decode_telemetry(b"{not json") is None
    assert decode_telemetry(b"x" * (2 << 20)) is None
