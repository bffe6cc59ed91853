"""A camera for the pipeline: the newest frame only, at most `fps` a second, self-healing.

A dedicated thread reads the source (OpenCV reads block) and keeps only the
latest frame; the event loop takes it through `next_frame()` / `frames()`, a thread of
the consumer's own through `take_frame()`. A slow
consumer therefore always gets the scene as it is now: frames it had no time for
are dropped and counted, never queued. When the source fails the thread reports
`camera_lost` once, reopens it with capped, jittered backoff, and reports
`camera_restored` when frames flow again.

Example:
    section = CameraSection(source="http://cam.local:8080/stream.mjpg", fps=5)
    async with Camera(section, on_event=outbox_put) as camera:
        async for frame in camera.frames():
            detect(frame.image)  # BGR uint8; frame.frame_id, frame.ts, frame.seq
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from types import TracebackType

from edge_agent.perception.camera_config import (
    CameraList,
    CameraSection,
    SourceSpec,
    parse_source,
    redact_url,
)
from edge_agent.perception.camera_sources import (
    SOURCE_FACTORIES,
    CameraError,
    DeviceSource,
    FileSource,
    FrameSource,
    Image,
    SourceUnavailable,
    StreamSource,
    make_source,
)
from protocol.backoff import Backoff
from protocol.models import Event, KnownEvent, Severity

__all__ = [
    "SOURCE_FACTORIES",
    "Camera",
    "CameraEnded",
    "CameraError",
    "CameraFrame",
    "CameraList",
    "CameraSection",
    "CameraStats",
    "DeviceSource",
    "EventSink",
    "FileSource",
    "FrameSource",
    "Image",
    "SourceSpec",
    "SourceUnavailable",
    "StreamSource",
    "make_source",
    "parse_source",
    "redact_url",
]

logger = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
"""Receives `camera_lost` / `camera_restored`, called on the event loop (the outbox's put)."""

STOP_GRACE_S = 1.0


class CameraEnded(CameraError):
    """The source ended (a file played once): no more frames will come."""


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """One captured frame and where and when it was taken."""

    image: Image
    """BGR, height x width x 3, uint8; the consumer's own (the camera never reuses it)."""
    seq: int
    """1, 2, 3, … per camera, across reconnects and loops; gaps are dropped frames."""
    frame_id: str
    """Unique across agent restarts: `{camera}-{start}-{seq}`; detections quote it."""
    ts: datetime
    """When the frame was read (aware UTC)."""
    camera: str

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class CameraStats:
    """Counters for `state` and metrics."""

    captured: int
    """Frames read from the source."""
    delivered: int
    """Frames handed to the pipeline."""
    dropped: int
    """Frames read but never handed over (rate limit, slow consumer, outage)."""
    online: bool
    """Frames are flowing (False before the first frame and while lost)."""
    losses: int
    """How many times the camera was lost."""


class _Mailbox:
    """The newest frame, handed from the capture thread to the event loop or a thread."""

    POLL_S = 0.1
    """How often a waiting thread looks at its stop flag."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._cond = threading.Condition(threading.Lock())
        self._fresh = asyncio.Event()
        self._frame: CameraFrame | None = None
        self._ended = False
        self._failure: BaseException | None = None

    def put(self, frame: CameraFrame) -> None:
        """(thread) Replace the waiting frame, if any, with this newer one."""
        with self._cond:
            self._frame = frame
            self._cond.notify_all()
        self.call(self._fresh.set)

    def discard(self) -> None:
        """(thread) Drop the waiting frame: it shows the scene before an outage."""
        with self._cond:
            self._frame = None

    def finish(self, failure: BaseException | None = None) -> None:
        """(thread) No more frames: stopped, the stream ended, or the thread failed."""
        with self._cond:
            self._ended = True
            self._failure = failure
            self._cond.notify_all()
        self.call(self._fresh.set)

    def call(self, callback: Callable[[], object]) -> None:
        """(thread) Run `callback` on the event loop, unless the loop is gone."""
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:
            logger.debug("event loop closed; dropped a camera callback")

    async def newer_than(self, seq: int) -> CameraFrame:
        """(loop) Wait for a frame newer than `seq`; `CameraEnded` once none can come."""
        while True:
            # Clearing before looking cannot lose a wake-up: `set` runs on this loop.
            self._fresh.clear()
            with self._cond:
                frame = self._newer_than(seq)
            if frame is not None:
                return frame
            await self._fresh.wait()

    def wait_newer_than(self, seq: int, stop: threading.Event) -> CameraFrame | None:
        """(thread) Block until a frame newer than `seq`; None once `stop` is set.

        `CameraEnded` once none can come.
        """
        with self._cond:
            while not stop.is_set():
                frame = self._newer_than(seq)
                if frame is not None:
                    return frame
                self._cond.wait(self.POLL_S)
        return None

    def _newer_than(self, seq: int) -> CameraFrame | None:
        """(lock held) The waiting frame if newer than `seq`; raises once none can come."""
        if self._frame is not None and self._frame.seq > seq:
            return self._frame
        if self._failure is not None:
            raise CameraError(f"camera capture failed: {self._failure!r}") from self._failure
        if self._ended:
            raise CameraEnded("the camera's source ended")
        return None


class _Capture:
    """The capture thread's work: open, read, pace, and reconnect with backoff."""

    def __init__(
        self,
        section: CameraSection,
        source: FrameSource,
        mailbox: _Mailbox,
        emit: Callable[[Event], None],
        *,
        rng: random.Random,
    ) -> None:
        self._section = section
        self._source = source
        self._mailbox = mailbox
        self._emit = emit
        self._backoff = Backoff(section.reconnect_initial_s, section.reconnect_max_s, rng=rng)
        self._run_id = f"{time.time_ns() // 1_000_000:x}"
        self.stop = threading.Event()
        self.captured = 0
        self.losses = 0
        self.online = False
        self._is_open = False
        self._lost_at: float | None = None
        self._next_at = 0.0

    def run(self) -> None:
        """Thread body: capture until stopped, the source ends, or an unexpected error."""
        failure: Exception | None = None
        try:
            self._capture_until_stopped()
        except Exception as exc:
            logger.exception("camera %s: capture thread failed", self._section.name)
            failure = exc
        finally:
            self.online = False
            self._source.close()
            self._mailbox.finish(failure)

    def _capture_until_stopped(self) -> None:
        while not self.stop.is_set():
            try:
                image = self._read()
            except SourceUnavailable as exc:
                self._lost(str(exc))
                self.stop.wait(self._backoff.next())
                continue
            if image is None:
                logger.info("camera %s: %s ended", self._section.name, self._shown)
                return
            self._restored()
            self._mailbox.put(self._frame(image))
            self._pace()

    @property
    def _shown(self) -> str:
        return self._section.display_source

    def _read(self) -> Image | None:
        if not self._is_open:
            self._source.open()
            self._is_open = True
            self._next_at = time.monotonic()
        return self._source.read()

    def _frame(self, image: Image) -> CameraFrame:
        self.captured += 1
        name = self._section.name
        return CameraFrame(
            image=image,
            seq=self.captured,
            frame_id=f"{name}-{self._run_id}-{self.captured}",
            ts=datetime.now(UTC),
            camera=name,
        )

    def _pace(self) -> None:
        """Files: wait for the next frame's time; live sources pace themselves."""
        interval = self._source.frame_interval_s
        if interval <= 0:
            return
        self._next_at += interval
        delay = self._next_at - time.monotonic()
        if delay < -interval:
            self._next_at = time.monotonic()  # fell behind: no burst to catch up
        elif delay > 0:
            self.stop.wait(delay)

    def _lost(self, reason: str) -> None:
        self._source.close()
        self._is_open = False
        self.online = False
        if self._lost_at is not None:
            logger.debug("camera %s: still lost: %s", self._section.name, reason)
            return
        self._lost_at = time.monotonic()
        self.losses += 1
        self._mailbox.discard()
        logger.warning("camera %s lost: %s", self._section.name, reason)
        self._emit(self._event(KnownEvent.CAMERA_LOST, Severity.WARNING, reason=reason[:500]))

    def _restored(self) -> None:
        self.online = True
        if self._lost_at is None:
            return
        down_for = round(time.monotonic() - self._lost_at, 3)
        self._lost_at = None
        self._backoff.reset()
        logger.info("camera %s restored after %.1f s", self._section.name, down_for)
        self._emit(self._event(KnownEvent.CAMERA_RESTORED, Severity.INFO, down_for_s=down_for))

    def _event(self, kind: KnownEvent, severity: Severity, **detail: str | float) -> Event:
        base: dict[str, str | float] = {
            "camera": self._section.name,
            "source": self._shown,
            "kind": self._section.kind,
        }
        return Event(ts=datetime.now(UTC), type=kind, severity=severity, detail=base | detail)


class Camera:
    """One camera: a capture thread behind an async, rate-limited, newest-only interface."""

    def __init__(
        self,
        section: CameraSection,
        *,
        on_event: EventSink | None = None,
        source: FrameSource | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`source` overrides the plugin the section names (a test fake, a ROS 2 topic)."""
        self.section = section
        self._source = source if source is not None else make_source(section)
        self._on_event = on_event
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._period = 1.0 / section.fps if section.fps > 0 else 0.0
        self._capture: _Capture | None = None
        self._mailbox: _Mailbox | None = None
        self._thread: threading.Thread | None = None
        self._last_seq = 0
        self._delivered = 0
        self._dropped = 0
        self._due = 0.0

    async def start(self) -> None:
        """Start the capture thread (once per camera); frames follow as the source opens."""
        if self._thread is not None:
            return
        self._mailbox = _Mailbox(asyncio.get_running_loop())
        mailbox = self._mailbox
        self._capture = _Capture(
            self.section,
            self._source,
            mailbox,
            lambda event: mailbox.call(partial(self._deliver_event, event)),
            rng=self._rng,
        )
        self._thread = threading.Thread(
            target=self._capture.run, name=f"camera-{self.section.name}", daemon=True
        )
        self._thread.start()
        logger.info("camera %s: capturing from %s", self.section.name, self.section.display_source)

    async def close(self) -> None:
        """Stop capturing and release the source; waiting consumers get `CameraEnded`.

        Waits out a read in progress (OpenCV reads cannot be interrupted), at most the
        open and read timeouts.
        """
        thread, capture = self._thread, self._capture
        if thread is None or capture is None:
            return
        capture.stop.set()
        limit = self.section.open_timeout_s + self.section.read_timeout_s + STOP_GRACE_S
        await asyncio.to_thread(thread.join, limit)
        if thread.is_alive():
            logger.warning("camera %s: capture thread still blocked in a read", self.section.name)

    async def next_frame(self) -> CameraFrame:
        """The newest frame not seen yet, no sooner than `1/fps` after the last one.

        Raises `CameraEnded` when the source ended (a file played once).
        """
        mailbox = self._started()
        delay = self._due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return self._took(await mailbox.newer_than(self._last_seq))

    def take_frame(self, stop: threading.Event) -> CameraFrame | None:
        """`next_frame` for a thread of its own: blocks; None once `stop` is set.

        The pipeline's worker thread takes its frames here, so the event loop is not on
        its frame cycle. Raises `CameraEnded` when the source ended.
        """
        mailbox = self._started()
        delay = self._due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return None
        frame = mailbox.wait_newer_than(self._last_seq, stop)
        return None if frame is None else self._took(frame)

    def _started(self) -> _Mailbox:
        if self._mailbox is None:
            raise CameraError("camera not started: use `async with Camera(...)` or `start()`")
        return self._mailbox

    def _took(self, frame: CameraFrame) -> CameraFrame:
        """Count `frame` as delivered and the ones it replaced as dropped; set the next due."""
        self._dropped += frame.seq - self._last_seq - 1
        self._last_seq = frame.seq
        self._delivered += 1
        if self._period:
            # A frame a little late keeps the schedule (the average stays at `fps`); a
            # consumer later than a whole period starts a new one (no catch-up burst).
            now = time.monotonic()
            self._due = max((self._due or now) + self._period, now)
        return frame

    async def frames(self) -> AsyncIterator[CameraFrame]:
        """`next_frame()` until the source ends.

        Example:
            async for frame in camera.frames():
                ...
        """
        while True:
            try:
                frame = await self.next_frame()
            except CameraEnded:
                return
            yield frame

    @property
    def stats(self) -> CameraStats:
        """A snapshot of the counters."""
        capture = self._capture
        return CameraStats(
            captured=capture.captured if capture else 0,
            delivered=self._delivered,
            dropped=self._dropped,
            online=capture.online if capture else False,
            losses=capture.losses if capture else 0,
        )

    def _deliver_event(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("camera %s: event handler failed on %s", self.section.name, event.type)

    async def __aenter__(self) -> Camera:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
