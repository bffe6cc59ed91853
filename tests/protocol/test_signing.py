"""Keys and signatures for commands, manifests and model assignments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocol import (
    ModelAssignment,
    ModelManifest,
    SignatureError,
    canonical_json,
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_text,
    public_key_to_text,
    sign,
    verify,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
KEY = generate_private_key()


def manifest() -> ModelManifest:
    return ModelManifest(
        name="outpost-sim-detector",
        version="1.2.0",
        sha256="0" * 64,
        size=11_500_000,
        url="https://hub.example/api/v1/models/outpost-sim-detector/1.2.0/artifact",
        input_size=(320, 320),
        classes=["person", "forklift", "pallet"],
        baseline={"class_hist": [0.5, 0.3, 0.2]},
        created_at=NOW,
    )


def test_canonical_json_sorts_keys_and_is_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "é": "ü"}) == '{"a":[1,2],"b":1,"é":"ü"}'.encode()


def test_signed_manifest_and_assignment_verify() -> None:
    signed_manifest = sign(manifest(), KEY)
    verify(signed_manifest, KEY.public_key())
    assignment = sign(
        ModelAssignment(device="amr-7", manifest=signed_manifest, assigned_at=NOW), KEY
    )
    verify(assignment, KEY.public_key())


def test_tampered_manifest_is_refused() -> None:
    signed_manifest = sign(manifest(), KEY)
    tampered = signed_manifest.model_copy(update={"sha256": "1" * 64})
    with pytest.raises(SignatureError):
        verify(tampered, KEY.public_key())


def test_another_key_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify(sign(manifest(), KEY), generate_private_key().public_key())


def test_unsigned_is_refused() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify(manifest(), KEY.public_key())


def test_garbage_signature_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify(manifest().model_copy(update={"sig": "A"}), KEY.public_key())


def test_keys_round_trip_through_text_and_pem() -> None:
    text = public_key_to_text(KEY.public_key())
    assert len(text) == 43
    loaded = private_key_from_pem(private_key_to_pem(KEY))
    verify(sign(manifest(), loaded), public_key_from_text(text))


@pytest.mark.parametrize("text", ["", "not base64!", "AAAA"])
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(SignatureError):
        public_key_from_text(text)


def test_non_ed25519_pem_is_refused() -> None:
    with pytest.raises(SignatureError):
        private_key_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
