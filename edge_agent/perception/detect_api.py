"""Synchronous detection for other processes on the robot or gateway: `POST /v1/detect`.

A local HTTP endpoint (`[detect_api] port`, off by default) that runs one image through
the same detection step as the camera pipeline (`pipeline.detect_frame`: the model
active now, its letterbox, NMS and box mapping, its class names) and answers with the
objects in the wire's `DetectedObject` layout. Zones and rules are not applied: this is
detection only, and it never stops the robot.

The body is the image itself (`image/jpeg`, `image/png` or `application/octet-stream`)
or `multipart/form-data` with a file field named `image` (parsed with the stdlib `email`
package). The bytes decide the format: JPEG or PNG, decoded by OpenCV. Errors are JSON
`{"error": reason}` with a 4xx status that says what to change (5xx: the agent's side).

Why `http.server.ThreadingHTTPServer` in a thread of its own, not an asyncio server: the
stdlib has no asyncio HTTP server, so asyncio would mean parsing HTTP by hand, while
`http.server` already parses requests, `Expect: 100-continue` and keep-alive, and each
connection's blocking work (reading the body, decoding, inference) stays off the
agent's event loop by construction. The agent's Prometheus endpoint runs the same way.
Bounds: one request decodes and detects at a time (inference already uses the cores
it is given, and one decoded image at a time bounds memory), at most `MAX_WAITING`
requests hold a body at once (more get 503 with `Retry-After`), every socket read has
a timeout, and a PNG or JPEG header declaring more than `MAX_PIXELS` is refused before
it is decoded.

    api = DetectApi(settings.detect_api, agent.active_model)
    api.start()                  # raises DetectApiError when it cannot listen
    ...                          # curl --data-binary @frame.jpg \\
    api.close()                  #   -H 'Content-Type: image/jpeg' http://127.0.0.1:8719/v1/detect
"""

from __future__ import annotations

import email.policy
import logging
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from email.errors import CloseBoundaryNotFoundDefect
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Annotated, Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import orjson
from pydantic import Field, StringConstraints

from edge_agent.errors import AgentError
from edge_agent.perception.camera_sources import Image
from edge_agent.perception.detector import Detections, ModelError
from edge_agent.perception.pipeline import ActiveModel, ModelProvider, detect_frame
from edge_agent.sections import Section
from protocol.models import ModelRef

logger = logging.getLogger(__name__)

DETECT_PATH = "/v1/detect"
HEALTH_PATH = "/v1/health"
RAW_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
MULTIPART = "multipart/form-data"
ACCEPTED_TYPES = (*RAW_TYPES, MULTIPART)
MAX_BODY_BYTES = 64 << 20
"""The highest `max_bytes` allowed."""
MAX_PIXELS = 7680 * 4320
"""Largest image decoded (8K UHD, ~100 MB as BGR): a small file may declare a huge one."""
MAX_WAITING = 4
"""Requests holding a body at once; each may hold `max_bytes`."""
DRAIN_LIMIT = MAX_BODY_BYTES
"""A refused body up to this size is read and dropped, so the client reads the answer
instead of a reset connection; a longer one closes the connection."""
DEFAULT_TIMEOUT_S = 30.0

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers; not DHT, JPG, DAC
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length
_ROUTES = {DETECT_PATH: ("POST",), HEALTH_PATH: ("GET", "HEAD")}


class DetectApiSection(Section):
    """`[detect_api]`: `POST /v1/detect` for local processes (port 0: off)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Port to listen on; 0 turns the API off (suggested: 8719)."""
    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,253}$")] = "127.0.0.1"
    """Address to listen on: the default lets only processes on this machine in."""
    max_bytes: Annotated[int, Field(ge=1024, le=MAX_BODY_BYTES)] = 8 << 20
    """Largest request body (the image, or the whole multipart form), in bytes."""


class DetectApiError(AgentError):
    """The detect API cannot listen on its address (in use, say); the message says which."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


class Refused(AgentError):
    """A request the API answers with an error status and a reason."""

    def __init__(self, status: int, reason: str, *headers: tuple[str, str]) -> None:
        super().__init__(reason)
        self.reply = Reply(status, {"error": reason}, headers)


class DetectApi:
    """The `POST /v1/detect` server (see the module docstring); a context manager."""

    def __init__(
        self,
        section: DetectApiSection,
        models: ModelProvider,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.section, self.timeout_s = section, timeout_s
        self._models = models
        self._detecting = threading.Lock()
        self.waiting = threading.BoundedSemaphore(MAX_WAITING)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT` it listens on (the bound port when `port` is 0 in tests)."""
        if self._server is None:
            raise DetectApiError("the detect API is not listening")
        host, port = self._server.server_name, self._server.server_port
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> None:
        """Listen and serve in a background thread; raise `DetectApiError` if it cannot."""
        host, port = self.section.host, self.section.port
        try:
            self._server = _Server((host, port), self)
        except OSError as exc:
            raise DetectApiError(
                f"[detect_api] cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="detect-api",
            daemon=True,
        )
        self._thread.start()
        logger.info("detect API listening on %s%s", self.url, DETECT_PATH)

    def close(self) -> None:
        """Stop listening; requests in progress finish on their own threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("detect API stopped")

    def __enter__(self) -> DetectApi:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def health(self) -> Reply:
        """`GET /v1/health`: the active model, or null."""
        active = self._models()
        return Reply(200, {"model": _model_json(active.ref) if active else None})

    def detect(self, body: bytes, content_type: str) -> Reply:
        """`POST /v1/detect` for a body already read: decode, detect, answer. Blocks."""
        started = time.perf_counter()
        try:
            data = image_bytes(body, content_type)  # a form is parsed before queueing
            parsed_ms = _ms_since(started)
            with self._detecting:
                return self._detect(data, started, parsed_ms)
        except Refused as exc:
            return exc.reply
        except ModelError as exc:
            logger.warning("detect API: %s", exc)
            return Reply(500, {"error": f"inference failed: {exc}"})
        except Exception:
            logger.exception("detect API: request failed")
            return Reply(500, {"error": "internal error; the agent's log has the details"})

    def _detect(self, data: bytes, started: float, parsed_ms: float) -> Reply:
        active = self._models()
        if active is None:
            raise Refused(
                503,
                "no model is active: the hub has not activated one and "
                "[perception] model is not set or did not load",
            )
        decoding = time.perf_counter()
        image = decode_image(data)
        decode_ms = parsed_ms + _ms_since(decoding)
        found = detect_frame(active, image)
        return Reply(200, _answer(active, image, found, decode_ms, _ms_since(started)))


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _model_json(ref: ModelRef) -> dict[str, Any]:
    return ref.model_dump(mode="json")


def _answer(
    active: ActiveModel, image: Image, found: Detections, decode_ms: float, total_ms: float
) -> dict[str, Any]:
    return {
        "model": _model_json(active.ref),
        "width": image.shape[1],
        "height": image.shape[0],
        "objects": [obj.model_dump(mode="json") for obj in found.objects],
        "latency_ms": {
            "decode": round(decode_ms, 3),
            "preprocess": round(found.preprocess_ms, 3),
            "inference": round(found.infer_ms, 3),
            "postprocess": round(found.postprocess_ms, 3),
            "total": round(total_ms, 3),
        },
    }


# --- decoding ------------------------------------------------------------------------------


def image_bytes(body: bytes, content_type: str) -> bytes:
    """The image in a request body: the body itself, or the `image` field of a form."""
    if _media_type(content_type) == MULTIPART:
        return multipart_image(content_type, body)
    return body


def decode_image(data: bytes) -> Image:
    """The BGR image in JPEG or PNG bytes; `Refused` (400) says what is wrong with them."""
    if not data:
        raise Refused(400, "the image is empty (0 bytes)")
    kind, width, height = image_header(data)
    if width * height > MAX_PIXELS:
        raise Refused(
            400, f"the {kind} is {width}x{height} pixels; at most {MAX_PIXELS} pixels are decoded"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise Refused(400, f"the {kind} ({len(data)} bytes) is corrupt: OpenCV cannot decode it")
    return np.asarray(image, dtype=np.uint8)


def image_header(data: bytes) -> tuple[str, int, int]:
    """`(kind, width, height)` from a JPEG or PNG header, before decoding anything.

    >>> image_header(b"\\x89PNG\\r\\n\\x1a\\n\\0\\0\\0\\rIHDR\\0\\0\\1\\0\\0\\0\\0\\x80")
    ('PNG', 256, 128)
    """
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise Refused(400, f"the PNG is truncated or corrupt: no IHDR header ({len(data)} B)")
        width, height = struct.unpack(">II", data[16:24])
        return "PNG", width, height
    if data.startswith(_JPEG):
        width, height = _jpeg_size(data)
        return "JPEG", width, height
    raise Refused(400, f"not a JPEG or PNG image (first bytes: {_first_bytes(data)})")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the JPEG's frame header (SOFn), walking its marker segments."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in _SOF and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    raise Refused(
        400, f"the JPEG is truncated or corrupt: no frame header in its {len(data)} bytes"
    )


def _first_bytes(data: bytes) -> str:
    head = data[:8]
    shown = f" {head.decode('ascii')!r}" if all(32 <= b < 127 for b in head) else ""
    return f"{head.hex(' ')}{shown}"


def multipart_image(content_type: str, body: bytes) -> bytes:
    """The bytes of the `image` field of a `multipart/form-data` body."""
    header = re.sub(r"[\r\n]+", " ", content_type).encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + header + b"\r\n\r\n" + body
    )
    if not message.get_param("boundary"):
        raise Refused(400, "multipart/form-data needs a boundary parameter in Content-Type")
    if not message.is_multipart():
        raise Refused(400, "the multipart body does not start with the boundary Content-Type names")
    if any(isinstance(d, CloseBoundaryNotFoundDefect) for d in message.defects):
        raise Refused(400, "the multipart body is truncated: its closing boundary is missing")
    names = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "image":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
        names.append(str(name))
    raise Refused(
        400,
        f"the multipart form has no field named 'image' (fields: {', '.join(names) or 'none'});"
        " send the file as image=@frame.jpg",
    )


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


# --- HTTP ----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: DetectApi) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without `HTTPServer`'s reverse DNS lookup of the host (slow with no network)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: every reply has a Content-Length, every body is read."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "outpost-edge-agent"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.api.timeout_s)  # a silent client frees its thread

    def do_GET(self) -> None:
        """`GET /v1/health`."""
        self._other()

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._other()

    def do_PUT(self) -> None:
        """Refused with 405 or 404."""
        self._other()

    def do_DELETE(self) -> None:
        """Refused with 405 or 404."""
        self._other()

    def do_PATCH(self) -> None:
        """Refused with 405 or 404."""
        self._other()

    def do_POST(self) -> None:
        """`POST /v1/detect`."""
        try:
            length, content_type = self._check_request()
        except Refused as exc:
            self._refuse(exc.reply)
            return
        if not self.server.api.waiting.acquire(blocking=False):
            busy = Refused(503, f"busy: {MAX_WAITING} requests are waiting", ("Retry-After", "1"))
            self._refuse(busy.reply)
            return
        try:
            body = self._read_body(length)
            if body is not None:
                self._send(self.server.api.detect(body, content_type))
        finally:
            self.server.api.waiting.release()

    def handle_expect_100(self) -> bool:
        """Refuse before the client sends the body, when the headers already say why."""
        try:
            self._check_request()
        except Refused as exc:
            self.close_connection = True
            self._send(exc.reply)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, say), as JSON too."""
        self.close_connection = True
        reason = message or explain or HTTPStatus(code).phrase
        self._send(Reply(code, {"error": reason}))

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go to the debug log, not stderr."""
        logger.debug("detect API %s: %s", self.address_string(), format % args)

    # --- steps ---

    def _other(self) -> None:
        refusal = self._route_refusal()
        if refusal is not None:
            self._refuse(refusal)
        else:
            self._send(self.server.api.health())

    def _route_refusal(self) -> Reply | None:
        path = urlsplit(self.path).path
        methods = _ROUTES.get(path)
        if methods is None:
            reason = f"no such path {path[:100]!r}: POST {DETECT_PATH} or GET {HEALTH_PATH}"
            return Reply(404, {"error": reason})
        if self.command not in methods:
            allowed = ", ".join(methods)
            reason = f"{self.command} is not allowed on {path}; use {allowed}"
            return Reply(405, {"error": reason}, (("Allow", allowed),))
        return None

    def _check_request(self) -> tuple[int, str]:
        """Content-Length and Content-Type of a detect request, once path and method fit."""
        refusal = self._route_refusal()
        if refusal is not None:
            raise Refused(refusal.status, refusal.body["error"], *refusal.headers)
        length = _content_length(
            self.headers.get("Transfer-Encoding"), self.headers.get("Content-Length")
        )
        limit = self.server.api.section.max_bytes
        if length > limit:
            raise Refused(
                413, f"the body is {length} bytes; the limit is {limit} ([detect_api] max_bytes)"
            )
        content_type = self.headers.get("Content-Type")
        if content_type is None or _media_type(content_type) not in ACCEPTED_TYPES:
            got = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
            raise Refused(415, f"{got}; send one of {', '.join(ACCEPTED_TYPES)}")
        return length, content_type

    def _read_body(self, length: int) -> bytes | None:
        """The body, or None after answering that it could not be read whole."""
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            reason = f"the body did not arrive within {self.server.api.timeout_s:g} s"
            self._send(Reply(408, {"error": reason}))
            return None
        if len(body) < length:
            self.close_connection = True
            reason = f"the body ended after {len(body)} of {length} bytes"
            self._send(Reply(400, {"error": reason}))
            return None
        return body

    def _refuse(self, reply: Reply) -> None:
        """Answer an error before the body was read: drop the body if it is not too long."""
        unread = self._declared_length()
        if unread is None or unread > DRAIN_LIMIT:
            self.close_connection = True
        elif unread:
            try:
                while unread > 0:
                    chunk = self.rfile.read(min(unread, 1 << 20))
                    if not chunk:
                        break
                    unread -= len(chunk)
            except OSError:
                self.close_connection = True
            if unread:
                self.close_connection = True
        self._send(reply)

    def _declared_length(self) -> int | None:
        try:
            return _content_length(
                self.headers.get("Transfer-Encoding"), self.headers.get("Content-Length")
            )
        except Refused:
            return None

    def _send(self, reply: Reply) -> None:
        data = orjson.dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _content_length(transfer_encoding: str | None, text: str | None) -> int:
    if transfer_encoding is not None and transfer_encoding.strip().lower() != "identity":
        raise Refused(
            411, f"Transfer-Encoding {transfer_encoding!r} is not accepted; send Content-Length"
        )
    if text is None:
        raise Refused(411, "Content-Length is required (curl --data-binary @FILE sets it)")
    if not text.strip().isdigit():
        raise Refused(400, f"Content-Length {text[:40]!r} is not a number of bytes")
    return int(text)
