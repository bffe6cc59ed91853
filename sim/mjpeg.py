"""The simulator's cameras as IP cameras: MJPEG over HTTP on loopback.

| path | what |
|---|---|
| `/cameras/{name}.mjpg` | `multipart/x-mixed-replace` stream of JPEG frames at `fps` |
| `/cameras/{name}.jpg` | one JPEG snapshot |
| `/cameras` | JSON index: each camera's size and URLs |

The edge agent reads a stream with `[perception] source = "http://127.0.0.1:PORT/cameras/NAME.mjpg"`
(OpenCV's FFmpeg backend, like any IP camera). Frames are rendered on demand, at most
`fps` a second per camera however many clients watch, and none while nobody does.
Camera faults injected into the world (`freeze_camera`, `blackout_camera`) show here.

Example:
    >>> from sim.scenario import default_scenario
    >>> from sim.world import World
    >>> with MjpegCameraServer(World(default_scenario(robots=1)), fps=5) as server:
    ...     server.url("cam-dock").endswith("/cameras/cam-dock.mjpg")
    True
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import cv2
import numpy as np

from sim.errors import SimError
from sim.render import Camera, cameras_for
from sim.world import World

logger = logging.getLogger(__name__)

BOUNDARY = "outpostframe"
_ROUTE = re.compile(r"^/cameras/(?P<name>[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63})\.(?P<ext>mjpg|jpg)$")


def _part(jpeg: bytes) -> bytes:
    """One part of the multipart stream."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


class _Feed:
    """One camera's latest JPEG, rendered again once it is older than the frame period."""

    def __init__(self, camera: Camera, world: World, period_s: float, quality: int, seed: int):
        self.camera, self.world = camera, world
        self.period_s, self.quality = period_s, quality
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.jpeg = b""
        self.rendered_at = -1e9
        self.frames = 0

    def latest(self) -> bytes:
        """A JPEG at most one frame period old."""
        with self.lock:
            now = time.monotonic()
            if now - self.rendered_at >= self.period_s or not self.jpeg:
                frame = self.camera.render(self.world, self.rng)
                params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
                ok, data = cv2.imencode(".jpg", frame.image, params)
                if not ok:  # pragma: no cover - encoding a BGR uint8 image does not fail
                    raise SimError(f"camera {self.camera.name}: JPEG encoding failed")
                self.jpeg, self.rendered_at = data.tobytes(), now
                self.frames += 1
            return self.jpeg


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MjpegCameraServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Access lines go to debug logging, not stderr."""
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?")[0]
        if path in ("/cameras", "/cameras/"):
            self._send(200, "application/json", json.dumps(owner.index()).encode())
            return
        match = _ROUTE.match(path)
        feed = owner.feeds.get(match["name"]) if match else None
        if match is None or feed is None:
            self.send_error(404, "no such camera; see /cameras")
            return
        if match["ext"] == "jpg":
            self._send(200, "image/jpeg", feed.latest())
            return
        self._stream(owner, feed)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, owner: MjpegCameraServer, feed: _Feed) -> None:
        owner.track(self.connection, open_=True)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            due = time.monotonic()
            while owner.running:
                jpeg = feed.latest()
                self.wfile.write(_part(jpeg))
                self.wfile.flush()
                due += feed.period_s
                time.sleep(max(0.0, due - time.monotonic()))
        except OSError:
            pass  # the client went away, or stop() cut the connection
        finally:
            owner.track(self.connection, open_=False)
            self.close_connection = True


class MjpegCameraServer:
    """Serves a world's cameras as MJPEG streams and JPEG snapshots on `host:port`.

    `port=0` picks a free port (read `port` after `start()`). Render work happens on
    the HTTP threads; step the world elsewhere (e.g. `sim.world.RealTimeStepper`).
    """

    def __init__(
        self,
        world: World,
        cameras: Mapping[str, Camera] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fps: float = 10.0,
        quality: int = 80,
        seed: int = 0,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.world = world
        cameras = cameras if cameras is not None else cameras_for(world)
        self.feeds = {
            name: _Feed(cam, world, 1.0 / fps, quality, seed + i)
            for i, (name, cam) in enumerate(cameras.items())
        }
        self.host, self.port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.running = False

    def url(self, camera: str) -> str:
        """The camera's MJPEG stream URL."""
        return f"http://{self.host}:{self.port}/cameras/{camera}.mjpg"

    def snapshot_url(self, camera: str) -> str:
        """The camera's single-JPEG URL."""
        return f"http://{self.host}:{self.port}/cameras/{camera}.jpg"

    def index(self) -> dict[str, dict[str, object]]:
        """What `/cameras` answers: per camera, its size and URLs."""
        return {
            name: {
                "width": feed.camera.optics.width,
                "height": feed.camera.optics.height,
                "mjpeg": self.url(name),
                "snapshot": self.snapshot_url(name),
            }
            for name, feed in self.feeds.items()
        }

    def frames_rendered(self, camera: str) -> int:
        """How many frames the camera has rendered for clients so far."""
        return self.feeds[camera].frames

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Record a streaming connection opening or closing (for `stop()` to cut)."""
        with self._lock:
            if open_:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def start(self) -> None:
        """Listen and serve on a thread (no-op when serving)."""
        if self._server is not None:
            return
        try:
            self._server = _Server((self.host, self.port), self)
        except OSError as exc:
            raise SimError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = self._server.server_address[1]
        self.running = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sim-mjpeg",
            daemon=True,
        )
        self._thread.start()
        logger.info("cameras served on http://%s:%d/cameras", self.host, self.port)

    def stop(self) -> None:
        """Stop listening and cut every open stream."""
        server, self._server = self._server, None
        if server is None:
            return
        self.running = False
        server.shutdown()
        server.server_close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegCameraServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
