"""Round trips and garbled payloads: decoding raises the protocol's own error and nothing else."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_MESSAGE_BYTES,
    Channel,
    Command,
    DecodeError,
    EncodeError,
    Envelope,
    Event,
    ProtocolError,
    TelemetryBatch,
    TelemetryPoint,
    VersionError,
    Watermark,
    decode,
    decode_envelope,
    encode,
)
from tests.protocol.strategies import envelopes, watermarks

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def telemetry(**overrides: Any) -> dict[str, Any]:
    env = Envelope(
        device="amr-7",
        stream="s1",
        seq=3,
        ts=NOW,
        kind=Channel.TELEMETRY,
        body=TelemetryBatch(points=[TelemetryPoint(ts=NOW, metric="battery", value=81.5)]),
    )
    return {**env.model_dump(mode="json"), **overrides}


def decode_only_protocol_errors(data: bytes | str, model: type = Envelope) -> None:
    """Decoding may succeed or raise ProtocolError; anything else escapes and fails the test."""
    with contextlib.suppress(ProtocolError):
        decode(data, model)


@FAST
@given(envelopes())
def test_every_envelope_round_trips(env: Envelope) -> None:
    assert decode_envelope(encode(env)) == env


@FAST
@given(watermarks)
def test_watermark_round_trips(wm: Watermark) -> None:
    assert decode(encode(wm), Watermark) == wm


@FAST
@given(envelopes(), st.data())
def test_truncated_payloads_raise_decode_error(env: Envelope, data: st.DataObject) -> None:
    raw = encode(env)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        decode_envelope(raw[:cut])


@FAST
@given(st.binary(max_size=256))
def test_random_bytes_never_escape(raw: bytes) -> None:
    decode_only_protocol_errors(raw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), children, max_size=4)
    ),
    max_leaves=12,
)


@FAST
@given(st.sampled_from(sorted(telemetry())), json_values)
def test_wrong_types_in_any_field_never_escape(field: str, value: Any) -> None:
    decode_only_protocol_errors(orjson.dumps(telemetry(**{field: value})))


@FAST
@given(st.sampled_from(["ts", "metric", "value", "tags"]), json_values)
def test_wrong_types_inside_the_body_never_escape(field: str, value: Any) -> None:
    obj = telemetry()
    obj["body"]["points"][0][field] = value
    decode_only_protocol_errors(orjson.dumps(obj))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":"1.0","device":"amr-7","stream":"s","seq":1,"ts":"2026-01-01T00:00:00Z",'
        b'"kind":"telemetry","body":{"points":[{"ts":"2026-01-01T00:00:00Z","metric":"m","value":NaN}]}}',
        b'{"value": 1e999}',
        b'{"value": Infinity}',
        b"[1,2,3]",
        b'"just a string"',
        b"",
        b"\xff\xfe\x00",
        b'{"bad": "\xc0\xaf"}',
        b'{"lone": "\\ud800"}',
        b"[" * 5000,
    ],
    ids=[
        "nan",
        "1e999",
        "infinity",
        "array",
        "string",
        "empty",
        "bom",
        "overlong",
        "surrogate",
        "deep",
    ],
)
def test_garbled_payloads_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_envelope(payload)


def test_non_finite_values_are_refused_even_when_built_locally() -> None:
    with pytest.raises(ValueError, match="finite"):
        TelemetryPoint(ts=NOW, metric="m", value=float("nan"))


def test_huge_arrays_are_refused_by_size_or_count() -> None:
    point = {"ts": "2026-01-01T00:00:00Z", "metric": "m", "value": 1.0}
    many = telemetry(body={"points": [point] * 6000})
    with pytest.raises(DecodeError, match="points"):
        decode_envelope(orjson.dumps(many))
    huge = telemetry(body={"points": [point] * 40_000})
    raw = orjson.dumps(huge)
    assert len(raw) > MAX_MESSAGE_BYTES
    with pytest.raises(DecodeError, match="exceeds"):
        decode_envelope(raw)


def test_body_must_match_kind() -> None:
    event = Event(ts=NOW, type="estop_engaged").model_dump(mode="json")
    with pytest.raises(DecodeError, match="body"):
        decode_envelope(orjson.dumps(telemetry(body=event)))


def test_downlink_kind_is_not_an_envelope() -> None:
    with pytest.raises(DecodeError, match="uplink"):
        decode_envelope(orjson.dumps(telemetry(kind="cmd")))


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(DecodeError, match="ts"):
        decode_envelope(orjson.dumps(telemetry(ts="2026-01-01T00:00:00")))


def test_newer_minor_version_is_read_and_unknown_fields_ignored() -> None:
    env = decode_envelope(orjson.dumps(telemetry(v="1.9", added_in_1_9={"x": 1})))
    assert env.v == "1.9"
    assert env.seq == 3


@pytest.mark.parametrize("version", ["2.0", "0.9", "1", "v1.0", 1.0, None])
def test_other_major_or_malformed_version_is_refused(version: object) -> None:
    with pytest.raises(VersionError):
        decode_envelope(orjson.dumps(telemetry(v=version)))


def test_strings_that_cannot_be_utf8_raise_encode_error() -> None:
    event = Event(ts=NOW, type="rule_fired", detail={"note": "\ud800"})
    with pytest.raises(EncodeError):
        encode(event)


def test_decode_accepts_command_model() -> None:
    with pytest.raises(DecodeError, match="Command"):
        decode(b'{"v":"1.0","cmd_id":"x"}', Command)
