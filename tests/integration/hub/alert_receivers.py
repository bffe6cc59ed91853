"""Real receivers for alert notifications: an HTTP server checking webhook signatures, and an
SMTP server (aiosmtpd) keeping what it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from hub.alerts.notifier import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.harness import free_port


@dataclass
class Delivery:
    """One webhook request as received, and whether its signature checked out."""

    body: bytes
    headers: dict[str, str]
    valid: bool


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint: answers `failures` times 500, then 204."""

    secret: str
    failures: int = 0
    received: list[Delivery] = field(default_factory=list)
    url: str = ""
    event: threading.Event = field(default_factory=threading.Event)


@contextmanager
def webhook_receiver(secret: str, failures: int = 0) -> Iterator[WebhookReceiver]:
    """A `WebhookReceiver` served on 127.0.0.1 for the block."""
    receiver = WebhookReceiver(secret, failures)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items()}
            valid = verify(
                receiver.secret,
                self.headers.get(TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(SIGNATURE_HEADER, ""),
            )
            receiver.received.append(Delivery(body, headers, valid))
            failing = len(receiver.received) <= receiver.failures
            self.send_response(500 if failing else 204)
            self.end_headers()
            if not failing:
                receiver.event.set()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/outpost-hook"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Mailbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.event = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message; 250."""
        content = envelope.content
        raw = content if isinstance(content, bytes) else content.encode()
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(raw)))
        self.event.set()
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1 for the block: its mailbox and port."""
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
