"""The enrollment contract: how a new device gets its identity from the hub.

A field technician runs `edge-agent install --hub URL --token TOKEN`. The agent
creates its Ed25519 key, then sends `POST {hub}/api/v1/enroll` with an
`EnrollRequest`. The hub answers:

- `201` with an `EnrollResponse`: the device id, the MQTT credentials of this
  device, and the hub's public key that the agent pins to verify commands;
- `401 {"detail": "..."}`: the token is not recognised;
- `410 {"detail": "..."}`: the token was already used or has expired (tokens are
  single-use and expiring);
- `422`: the request is malformed.

Example:
    >>> from protocol.signing import generate_private_key, public_key_to_text
    >>> key = public_key_to_text(generate_private_key().public_key())
    >>> req = EnrollRequest(token="t-123", name="AMR 7", public_key=key, agent_version="0.1.0")
    >>> mqtt = {"url": "mqtts://hub:8883", "username": "amr-7", "password": "s3cret"}
    >>> EnrollResponse(device_id="amr-7", mqtt=mqtt, hub_public_key=key).mqtt.url
    'mqtts://hub:8883'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from protocol.models import DeviceId, Name, WireModel

ENROLL_PATH = "/api/v1/enroll"
"""Path of the enrollment endpoint, relative to the hub's base URL."""

ENROLL_CREATED = 201
ENROLL_UNKNOWN_TOKEN = 401
ENROLL_TOKEN_GONE = 410
ENROLL_INVALID = 422

MQTT_URL_PATTERN = r"^mqtts?://[^/\s]+(:\d+)?/?$"
"""`mqtt://host:port` or `mqtts://host:port` (TLS); no path."""

PUBLIC_KEY_PATTERN = r"^[A-Za-z0-9_\-]{42}[AEIMQUYcgkosw048]$"
"""Exactly 32 bytes as unpadded base64url (`protocol.signing.public_key_to_text`)."""

PublicKeyText = Annotated[str, StringConstraints(pattern=PUBLIC_KEY_PATTERN)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=256)]
AgentVersion = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.+\-]{1,64}$")]
MqttUrl = Annotated[str, StringConstraints(pattern=MQTT_URL_PATTERN)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class EnrollRequest(WireModel):
    """What the agent sends: the single-use token, a display name and its public key."""

    token: Token
    name: Name
    public_key: PublicKeyText
    agent_version: AgentVersion


class MqttCredentials(WireModel):
    """Where and as whom the device connects to the broker, and which MQTT version it speaks.

    `protocol` is "5" for an external broker (Mosquitto, EMQX) and "3.1.1" for a
    hub's embedded broker; absent (hubs before it existed) means "5".
    """

    url: MqttUrl
    username: Secret
    password: Secret
    protocol: Literal["5", "3.1.1"] = "5"


class EnrollResponse(WireModel):
    """What the hub returns on `201`: identity, broker credentials and the key to pin."""

    device_id: DeviceId
    mqtt: MqttCredentials
    hub_public_key: PublicKeyText
