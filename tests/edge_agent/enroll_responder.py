"""A real HTTP enrollment endpoint for tests: FastAPI + uvicorn on 127.0.0.1, in a thread.

It implements the hub's side of `protocol.enrollment`: single-use, expiring
tokens (`issue_token`), device ids derived from the name, fixed MQTT credentials
given to the constructor, and its own Ed25519 key pair whose public half the
agent must pin.

Example:
    with EnrollResponder() as hub:
        token = hub.issue_token(ttl_s=60)
        ...  # edge-agent install --hub {hub.url} --token {token}
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from fastapi import FastAPI, HTTPException

from protocol.enrollment import (
    ENROLL_CREATED,
    ENROLL_PATH,
    ENROLL_TOKEN_GONE,
    ENROLL_UNKNOWN_TOKEN,
    EnrollRequest,
    EnrollResponse,
    MqttCredentials,
)
from protocol.signing import generate_private_key, public_key_to_text

STARTUP_TIMEOUT_S = 10.0


@dataclass
class _Token:
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class Enrollment:
    """One successful enrollment, as the hub recorded it."""

    device_id: str
    request: EnrollRequest


def device_id_from_name(name: str, taken: set[str]) -> str:
    """A device id (`[a-z0-9][a-z0-9-]{0,62}`) from a display name, unique among `taken`."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:56] or "device"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for "hub unreachable" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EnrollResponder:
    """The hub's enrollment endpoint, served for real on a free loopback port."""

    def __init__(
        self,
        *,
        mqtt_url: str = "mqtt://127.0.0.1:1883",
        mqtt_password: str = "broker-secret",  # noqa: S107 - a test broker
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mqtt_url = mqtt_url
        self.mqtt_password = mqtt_password
        self.hub_key = generate_private_key()
        self.hub_public_key = public_key_to_text(self.hub_key.public_key())
        self.enrollments: list[Enrollment] = []
        self.attempts = 0
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def issue_token(self, ttl_s: float = 600.0) -> str:
        """A new single-use token valid for `ttl_s` seconds (0: already expired)."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = _Token(expires_at=self._clock() + ttl_s)
        return token

    def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """What `POST /api/v1/enroll` does: spend the token, issue identity and credentials."""
        with self._lock:
            self.attempts += 1
            self._spend(request.token)
            device_id = device_id_from_name(request.name, {e.device_id for e in self.enrollments})
            self.enrollments.append(Enrollment(device_id, request))
        mqtt = MqttCredentials(url=self.mqtt_url, username=device_id, password=self.mqtt_password)
        return EnrollResponse(device_id=device_id, mqtt=mqtt, hub_public_key=self.hub_public_key)

    def _spend(self, token: str) -> None:
        entry = self._tokens.get(token)
        if entry is None:
            raise HTTPException(ENROLL_UNKNOWN_TOKEN, "unknown enrollment token")
        if entry.used or self._clock() >= entry.expires_at:
            raise HTTPException(ENROLL_TOKEN_GONE, "enrollment token already used or expired")
        entry.used = True

    def app(self) -> FastAPI:
        """The FastAPI app with the one enrollment route."""
        app = FastAPI()
        app.post(ENROLL_PATH, status_code=ENROLL_CREATED)(self.enroll)
        return app

    def start(self) -> None:
        """Serve on a free port of 127.0.0.1; returns once the server accepts connections."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app(), log_level="warning", lifespan="off", ws="none", http="h11"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="enroll-responder"
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("enrollment responder did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=STARTUP_TIMEOUT_S)

    def __enter__(self) -> EnrollResponder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
