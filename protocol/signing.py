"""Canonical JSON and Ed25519 signatures for commands, manifests and assignments.

The signed bytes are the canonical JSON of the message without its `sig` field:
UTF-8, keys sorted by code point, no insignificant whitespace, numbers in their
shortest round-trip form, timestamps as the ISO 8601 strings that were sent.
Verification works on the object *as received*, so fields a reader does not
know (a newer minor version) are still covered by the signature.

`sig` is the unpadded base64url of the 64-byte signature; public keys travel as
the unpadded base64url of their 32 raw bytes.

Example:
    >>> key = generate_private_key()
    >>> payload = {"v": "1.0", "hello": "robot", "sig": ""}
    >>> payload["sig"] = sign_object(payload, key)
    >>> verify_object(payload, key.public_key())
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from protocol.codec import dumps
from protocol.errors import SignatureError

S = TypeVar("S", bound=BaseModel)
"""A signable wire model: one with a `sig` field (command, manifest, assignment)."""


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON object (sorted keys, compact, UTF-8)."""
    return dumps(dict(obj), sort_keys=True)


def signing_bytes(obj: Mapping[str, Any]) -> bytes:
    """What a signature covers: the canonical JSON of `obj` without `sig`."""
    return canonical_json({k: v for k, v in obj.items() if k != "sig"})


def sign_object(obj: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """Sign a JSON object; returns the `sig` value."""
    return _b64(key.sign(signing_bytes(obj)))


def verify_object(obj: Mapping[str, Any], key: Ed25519PublicKey) -> None:
    """Raise `SignatureError` unless `obj["sig"]` is `key`'s signature over the rest of `obj`."""
    sig = obj.get("sig")
    if not isinstance(sig, str) or not sig:
        raise SignatureError("message is not signed")
    try:
        key.verify(_unb64(sig), signing_bytes(obj))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise SignatureError("signature does not verify with the pinned hub key") from exc


def sign(message: S, key: Ed25519PrivateKey) -> S:
    """Return a copy of a signable wire model (command, manifest, assignment) with `sig` set."""
    body = message.model_dump(mode="json", exclude_none=True)
    result: S = message.model_copy(update={"sig": sign_object(body, key)})
    return result


def verify(message: BaseModel, key: Ed25519PublicKey) -> None:
    """Verify a wire model built locally (for a received one, verify the raw object)."""
    verify_object(message.model_dump(mode="json", exclude_none=True), key)


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (protect it with file permissions, mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Load a PKCS#8 PEM Ed25519 key; `SignatureError` if it is anything else."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"expected an Ed25519 key, got {type(key).__name__}")
    return key


def public_key_to_text(key: Ed25519PublicKey) -> str:
    """The 32 raw public key bytes as unpadded base64url (what agents pin)."""
    return _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a key written by `public_key_to_text`; `SignatureError` if malformed."""
    try:
        return Ed25519PublicKey.from_public_bytes(_unb64(text))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("malformed Ed25519 public key") from exc


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
