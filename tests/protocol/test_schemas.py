"""The JSON Schemas in protocol/schemas are current; every encoded message validates."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
from hypothesis import HealthCheck, given, settings

from protocol import Envelope, Watermark, encode
from protocol.schema import SCHEMA_DIR, generate_schemas, render
from tests.protocol.strategies import envelopes, watermarks


def test_checked_in_schemas_are_current() -> None:
    expected = {name: render(schema) for name, schema in generate_schemas().items()}
    actual = {p.name: p.read_text(encoding="utf-8") for p in Path(SCHEMA_DIR).glob("*.json")}
    stale = sorted(n for n in expected.keys() | actual.keys() if expected.get(n) != actual.get(n))
    assert not stale, f"stale schemas {stale}: run `python -m protocol.schema` and commit"


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


ENVELOPE = _validator("envelope.json")
WATERMARK = _validator("watermark.json")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_encoded_envelopes_validate(env: Envelope) -> None:
    ENVELOPE.validate(orjson.loads(encode(env)))


@given(watermarks)
def test_encoded_watermarks_validate(wm: Watermark) -> None:
    WATERMARK.validate(orjson.loads(encode(wm)))


def test_schema_ties_body_to_kind() -> None:
    bad = {
        "v": "1.0",
        "device": "amr-7",
        "stream": "s",
        "seq": 1,
        "ts": "2026-01-01T00:00:00Z",
        "kind": "telemetry",
        "body": {"online": True},
    }
    assert not ENVELOPE.is_valid(bad)
