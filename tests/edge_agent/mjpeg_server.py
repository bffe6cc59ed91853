"""A real MJPEG-over-HTTP camera for tests: `multipart/x-mixed-replace` JPEG frames.

Each frame is drawn with OpenCV (a square moving across a dark field and the
frame number), encoded as JPEG and sent as one part of the multipart response at
a fixed rate, the way IP cameras and the simulator serve `/stream.mjpg`.
`stop()` kills the stream (the listening socket and every open connection are
closed, so clients see the camera vanish); `start()` serves again on the same
port. `stall()` keeps connections open but sends nothing (a cable pulled
somewhere on the way), `resume()` sends again.

Example:
    with MjpegServer(fps=20) as cam:
        ...  # Camera(CameraSection(source=cam.url))
        cam.stop()  # the camera is gone
        cam.start()  # and back, same URL
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType

import cv2
import numpy as np

BOUNDARY = "frame"


def draw_frame(n: int, width: int, height: int) -> bytes:
    """JPEG of frame `n`: a moving square and the frame number."""
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    side = max(8, height // 4)
    x = (n * 4) % max(1, width - side)
    cv2.rectangle(image, (x, height // 3), (x + side, height // 3 + side), (0, 200, 255), -1)
    cv2.putText(image, str(n), (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:  # pragma: no cover - imencode of a plain BGR image does not fail
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MjpegServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read the counters, not the access log."""

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path.split("?")[0] != owner.path:
            self.send_error(404)
            return
        owner.track(self.connection, open_=True)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            owner.stream_to(self.wfile)
        except OSError:
            pass  # the client went away or stop() closed the connection
        finally:
            owner.track(self.connection, open_=False)
            self.close_connection = True


class MjpegServer:
    """An MJPEG camera on 127.0.0.1 that can be killed and brought back on the same port."""

    def __init__(
        self,
        *,
        fps: float = 20.0,
        width: int = 160,
        height: int = 120,
        path: str = "/stream.mjpg",
        draw: Callable[[int, int, int], bytes] | None = None,
    ) -> None:
        """`draw(n, width, height)` gives frame n's JPEG (default: a moving square)."""
        self.draw = draw or draw_frame
        self.fps = fps
        self.width = width
        self.height = height
        self.path = path
        self.port = 0
        self.frames_sent = 0
        self.connections_served = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        """Where the stream is served."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def open_connections(self) -> int:
        """How many clients are connected now."""
        with self._lock:
            return len(self._open)

    def start(self) -> None:
        """Listen (again) and serve the stream; the port stays the one first bound."""
        if self._server is not None:
            return
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._running.set()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Kill the stream: stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._running.clear()
        server.shutdown()
        server.server_close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):  # already gone
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stall(self) -> None:
        """Keep connections open but send nothing (the network hangs)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Send frames again after `stall()`."""
        self._flowing.set()

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        """Record a client connection opening or closing (for `stop()` to cut)."""
        with self._lock:
            if open_:
                self._open.add(conn)
                self.connections_served += 1
            else:
                self._open.discard(conn)

    def stream_to(self, out: BufferedIOBase) -> None:
        """Write multipart JPEG parts to `out` at `fps` until stopped or the client leaves."""
        period = 1.0 / self.fps
        due = time.monotonic()
        while self._running.is_set():
            if not self._flowing.is_set():
                self._flowing.wait(0.05)
                due = time.monotonic()
                continue
            with self._lock:
                n = self.frames_sent
                self.frames_sent += 1
            jpeg = self.draw(n, self.width, self.height)
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            )
            out.write(head.encode("ascii") + jpeg + b"\r\n")
            due += period
            time.sleep(max(0.0, due - time.monotonic()))

    def __enter__(self) -> MjpegServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
