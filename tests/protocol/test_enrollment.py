"""The enrollment contract: models, key format and JSON Schemas agree."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from protocol import EnrollRequest, EnrollResponse, MqttCredentials
from protocol.schema import SCHEMA_DIR
from protocol.signing import generate_private_key, public_key_from_text, public_key_to_text


def key_text() -> str:
    return public_key_to_text(generate_private_key().public_key())


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def response(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "device_id": "amr-7",
        "mqtt": {"url": "mqtts://hub:8883", "username": "amr-7", "password": "pw"},
        "hub_public_key": key_text(),
    }
    return {**body, **changes}


def test_request_and_response_validate_against_their_schemas() -> None:
    request = EnrollRequest(token="t", name="AMR 7", public_key=key_text(), agent_version="0.1.0")
    answer = EnrollResponse.model_validate(response())

    validator("enroll-request.json").validate(request.model_dump(mode="json"))
    validator("enroll-response.json").validate(answer.model_dump(mode="json"))
    assert isinstance(answer.mqtt, MqttCredentials)


def test_every_generated_public_key_is_accepted_and_round_trips() -> None:
    for _ in range(200):
        text = key_text()
        answer = EnrollResponse.model_validate(response(hub_public_key=text))
        assert public_key_to_text(public_key_from_text(answer.hub_public_key)) == text


@pytest.mark.parametrize(
    "bad",
    [
        {"hub_public_key": key_text() + "="},
        {"hub_public_key": key_text()[:-1]},
        {"hub_public_key": key_text()[:-1] + "B"},
        {"device_id": "AMR 7"},
        {"mqtt": {"url": "http://hub:1883", "username": "u", "password": "p"}},
        {"mqtt": {"url": "mqtt://hub:1883", "username": "u", "password": ""}},
    ],
)
def test_malformed_responses_are_refused_by_model_and_schema(bad: dict[str, object]) -> None:
    body = response(**bad)
    with pytest.raises(ValidationError):
        EnrollResponse.model_validate(body)
    assert not validator("enroll-response.json").is_valid(body)
