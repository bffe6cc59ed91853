"""A fast decoder for the fleet's bulk traffic: telemetry envelopes, through msgspec.

The hub validates every message twice, at ingest and at the writer, and telemetry is
nearly all of it. pydantic builds a model per point (about 7 µs each); msgspec parses
and checks the same envelope in C, several times faster. It is a shortcut, never a
second contract: `decode_telemetry` accepts only envelopes that `decode_envelope`
accepts with the same values (a property test holds the two together), and answers
`None` for anything else, which the caller then gives to `decode_envelope` for the
authoritative verdict and its error message.

Example:
    >>> from datetime import UTC, datetime
    >>> from protocol import Channel, Envelope, TelemetryBatch, TelemetryPoint, encode
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> env = Envelope(device="amr-7", stream="s1", seq=3, ts=now, kind=Channel.TELEMETRY,
    ...     body=TelemetryBatch(points=[TelemetryPoint(ts=now, metric="cpu", value=0.5)]))
    >>> fast = decode_telemetry(encode(env))
    >>> fast.device, fast.seq, fast.body.points[0].metric
    ('amr-7', 3, 'cpu')
    >>> decode_telemetry(b'{"kind": "events"}') is None
    True
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocol.models import MAX_BATCH_POINTS, MAX_MESSAGE_BYTES, MAX_TAGS
from protocol.version import PROTOCOL_MAJOR

# The patterns of protocol.models, anchored with \A...\Z: Python's `$` also matches before
# a final newline, which pydantic's (Rust) `$` does not; ASCII classes where \d is Unicode.
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Metric = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,127}\Z")]
_DeviceId = Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9-]{0,62}\Z")]
_StreamId = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9_\-]{1,64}\Z")]
_Version = Annotated[str, msgspec.Meta(pattern=rf"\A{PROTOCOL_MAJOR}\.[0-9]{{1,4}}\Z")]
_Seq = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class FastPoint(msgspec.Struct, frozen=True, gc=False):
    """`protocol.TelemetryPoint`."""

    ts: _Aware
    metric: _Metric
    value: float  # finite: checked after decoding
    tags: Annotated[dict[_Name, _Name], msgspec.Meta(max_length=MAX_TAGS)] = {}


class FastBatch(msgspec.Struct, frozen=True, gc=False):
    """`protocol.TelemetryBatch`."""

    points: Annotated[list[FastPoint], msgspec.Meta(min_length=1, max_length=MAX_BATCH_POINTS)]


class FastTelemetry(msgspec.Struct, frozen=True, gc=False):
    """A telemetry `protocol.Envelope`."""

    v: _Version
    device: _DeviceId
    stream: _StreamId
    seq: _Seq
    ts: _Aware
    kind: Literal["telemetry"]
    body: FastBatch


_DECODER = msgspec.json.Decoder(FastTelemetry)
SUBMICROSECOND = re.compile(rb":[0-9]{2}\.[0-9]{7}")
"""A time with more than 6 decimals of a second: msgspec rounds it, pydantic truncates.
(A tag or metric that looks like one only sends its envelope the slow way.)"""


def decode_telemetry(data: bytes | bytearray | memoryview | str) -> FastTelemetry | None:
    """The telemetry envelope in `data`, or `None`: not telemetry, or not valid (ask
    `protocol.decode_envelope` which, and why)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_MESSAGE_BYTES or SUBMICROSECOND.search(raw):
        return None
    try:
        envelope = _DECODER.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    if not all(math.isfinite(point.value) for point in envelope.body.points):
        return None
    return envelope
