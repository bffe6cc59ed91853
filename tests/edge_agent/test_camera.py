"""Camera sources, for real: a video file written with OpenCV and an MJPEG stream over HTTP.

No fakes of OpenCV: each test opens a real file, a real HTTP server, or a device
path that does not exist, and watches what the pipeline would see.
"""

from __future__ import annotations

import asyncio
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.perception.camera import (
    SOURCE_FACTORIES,
    Camera,
    CameraEnded,
    CameraError,
    CameraFrame,
    CameraSection,
    parse_source,
)
from edge_agent.perception.camera_config import CameraList, SourceKind
from protocol.models import Event, KnownEvent, Severity
from tests.edge_agent.enroll_responder import free_port
from tests.edge_agent.mjpeg_server import MjpegServer

FAST = {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.4, "open_timeout_s": 1.0}


class EventLog:
    """The camera's `on_event` sink: records events and when they came."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))
        self._changed.set()

    def of(self, kind: KnownEvent) -> list[tuple[float, Event]]:
        return [(t, e) for t, e in self.events if e.type == kind]

    async def wait(self, kind: KnownEvent, *, count: int = 1, within: float = 5.0) -> float:
        """When the `count`-th event of `kind` arrived (monotonic)."""
        async with asyncio.timeout(within):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1][0]


def write_video(path: Path, *, frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """An MJPG .avi whose frame `i` is filled with grey level `10 * i % 250`."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 * i % 250, dtype=np.uint8))
    writer.release()
    return path


async def take(camera: Camera, n: int) -> list[CameraFrame]:
    return [await camera.next_frame() for _ in range(n)]


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    with MjpegServer(fps=20) as server:
        yield server


# --- the source string --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("0", "device", "0"),
        ("device:2", "device", "2"),
        ("/dev/video1", "device", "/dev/video1"),
        ("device:/dev/video3", "device", "/dev/video3"),
        ("file:/data/clip.avi", "file", "/data/clip.avi"),
        ("file:///data/clip.avi", "file", "/data/clip.avi"),
        ("clips/yard.mp4", "file", "clips/yard.mp4"),
        ("rtsp://10.0.0.5:554/stream1", "rtsp", "rtsp://10.0.0.5:554/stream1"),
        ("RTSPS://cam/x", "rtsp", "RTSPS://cam/x"),
        ("http://cam.local/video.mjpg", "http", "http://cam.local/video.mjpg"),
        ("https://cam.local:8443/mjpeg", "http", "https://cam.local:8443/mjpeg"),
    ],
)
def test_source_string_picks_the_kind(text: str, kind: str, target: str) -> None:
    assert tuple(parse_source(text)) == (kind, target)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"source": ""}, "source is empty; use a device index"),
        ({"source": "ftp://cam/x"}, "scheme 'ftp':// is not supported; use a device index"),
        ({"source": "rtps://cam/x"}, "use a device index (`0` or `device:0`"),
        ({"source": "device:front"}, "use `device:0` or `device:/dev/video0`"),
        ({"source": "http:///video.mjpg"}, "names no host; use http://HOST/PATH"),
        ({"source": "file:"}, "names no file; use `file:PATH`"),
        ({"source": "a.avi", "width": 640}, "width/height apply to device sources only"),
        ({"source": "0", "reconnect_max_s": 0.1}, "reconnect_max_s (0.1) is below"),
        ({"source": "0", "name": "front cam"}, "name"),
        ({"source": "0", "fps": -1}, "fps"),
        ({"source": "0", "colour": True}, "colour"),
    ],
)
def test_bad_settings_are_refused_with_the_allowed_forms(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        CameraSection.model_validate(settings)
    assert message in str(info.value)


def test_credentials_never_leave_the_settings() -> None:
    section = CameraSection(source="rtsp://admin:hunter2@10.0.0.5/live?token=abc")
    assert section.display_source == "rtsp://10.0.0.5/live"
    assert section.target == "rtsp://admin:hunter2@10.0.0.5/live?token=abc"


def test_camera_names_are_unique_in_a_list() -> None:
    from pydantic import TypeAdapter

    cameras = TypeAdapter(CameraList)
    assert len(cameras.validate_python([{"source": "0"}, {"name": "rear", "source": "1"}])) == 2
    with pytest.raises(ValidationError, match="'default' is used twice"):
        cameras.validate_python([{"source": "0"}, {"source": "1"}])


def test_every_source_kind_has_a_plugin() -> None:
    assert set(SOURCE_FACTORIES) == set(typing.get_args(SourceKind))


# --- files --------------------------------------------------------------------------------


async def test_file_plays_at_its_own_rate_and_loops(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=8, fps=25)
    async with Camera(CameraSection(source=f"file:{video}", fps=0)) as camera:
        frames = await take(camera, 21)
    gaps = np.diff([f.ts.timestamp() for f in frames[1:]])  # the first waits for the open
    assert abs(float(np.mean(gaps)) - 1 / 25) < 0.006, f"mean gap {np.mean(gaps):.4f} s"
    assert [f.seq for f in frames] == list(range(1, 22)), "a 25 fps file read at 25 fps skips none"
    levels = [int(f.image[0, 0, 0]) for f in frames]
    assert levels[8] == levels[0], "frame 9 is frame 1 again"
    assert levels[16] == levels[0]
    assert levels[3] > levels[0]
    assert frames[0].image.shape == (120, 160, 3)
    assert frames[0].image.dtype == np.uint8


async def test_file_played_once_ends_the_stream(tmp_path: Path) -> None:
    video = write_video(tmp_path / "once.avi", frames=5, fps=100)
    events = EventLog()
    section = CameraSection(source=str(video), loop=False, fps=0)
    async with Camera(section, on_event=events) as camera:
        frames = [frame async for frame in camera.frames()]
        with pytest.raises(CameraEnded):
            await camera.next_frame()
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert events.events == [], "the end of a file is not a lost camera"


async def test_a_thread_takes_newest_frames_at_the_rate_until_stopped_or_ended(
    tmp_path: Path,
) -> None:
    video = write_video(tmp_path / "clip.avi", frames=8, fps=100)
    stop = threading.Event()
    async with Camera(CameraSection(source=f"file:{video}", fps=20)) as camera:
        frames = await asyncio.to_thread(lambda: [camera.take_frame(stop) for _ in range(6)])
        stop.set()
        started = time.monotonic()
        assert await asyncio.to_thread(camera.take_frame, stop) is None
        assert time.monotonic() - started < 0.05, "a set stop answers at once"
    seqs = [f.seq for f in frames if f is not None]
    assert len(seqs) == 6
    assert seqs == sorted(set(seqs)), "newer frames only, in order"
    assert seqs[-1] - seqs[0] > 5, "frames the thread had no time for were dropped"
    gaps = np.diff([f.ts.timestamp() for f in frames[1:] if f is not None])
    assert float(np.mean(gaps)) >= 0.045, f"taken faster than 20 fps: {np.mean(gaps):.4f} s"
    assert camera.stats.delivered == 6

    once = write_video(tmp_path / "once.avi", frames=3, fps=100)
    async with Camera(CameraSection(source=str(once), loop=False, fps=0)) as camera:

        def take_all() -> list[int | str]:
            seqs: list[int | str] = []
            try:
                while (frame := camera.take_frame(threading.Event())) is not None:
                    seqs.append(frame.seq)
            except CameraEnded:
                seqs.append("ended")
            return seqs

        assert await asyncio.to_thread(take_all) == [1, 2, 3, "ended"]


async def test_missing_file_is_lost_then_restored_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.avi"
    events = EventLog()
    async with Camera(CameraSection(source=str(path), **FAST), on_event=events) as camera:
        await events.wait(KnownEvent.CAMERA_LOST)
        assert not camera.stats.online
        write_video(path, frames=4, fps=25)
        await events.wait(KnownEvent.CAMERA_RESTORED, within=2.0)
        frame = await asyncio.wait_for(camera.next_frame(), 2.0)
    (_, lost), (_, restored) = events.events
    assert lost.severity == Severity.WARNING
    assert lost.detail["reason"] == f"no such file: {path}"
    assert restored.detail["camera"] == "default"
    assert frame.image.shape == (120, 160, 3)


# --- MJPEG over HTTP ----------------------------------------------------------------------


async def test_mjpeg_stream_feeds_the_pipeline(mjpeg: MjpegServer) -> None:
    section = CameraSection(name="yard", source=mjpeg.url, fps=0)
    async with Camera(section) as camera:
        frames = await asyncio.wait_for(take(camera, 10), 30.0)  # FFmpeg opens slowly when busy
    seqs = [f.seq for f in frames]
    # In order and never twice; on a busy machine a frame may be skipped (drop-to-latest),
    # the first one too.
    assert seqs == sorted(set(seqs))
    assert frames[0].image.shape == (120, 160, 3)
    assert frames[0].camera == "yard"
    assert frames[0].frame_id.startswith("yard-")
    assert all(f.frame_id.endswith(f"-{f.seq}") for f in frames)
    assert len({f.frame_id for f in frames}) == 10
    assert frames[-1].ts > frames[0].ts
    assert frames[0].ts.utcoffset() is not None


async def test_killed_stream_is_lost_once_and_restored_within_the_backoff(
    mjpeg: MjpegServer,
) -> None:
    events = EventLog()
    section = CameraSection(source=mjpeg.url, fps=0, read_timeout_s=1.0, **FAST)
    async with Camera(section, on_event=events) as camera:
        await asyncio.wait_for(take(camera, 3), 5.0)
        await asyncio.sleep(0.2)  # newer frames wait in the camera, untaken
        mjpeg.stop()
        killed = time.monotonic()
        lost_at = await events.wait(KnownEvent.CAMERA_LOST, within=2.0)
        await asyncio.sleep(1.0)  # several reopen attempts fail meanwhile
        assert len(events.of(KnownEvent.CAMERA_LOST)) == 1
        assert not camera.stats.online
        mjpeg.start()
        back = time.monotonic()
        restored_at = await events.wait(KnownEvent.CAMERA_RESTORED, within=3.0)
        frame = await asyncio.wait_for(camera.next_frame(), 2.0)
        stats = camera.stats
    assert lost_at - killed < 0.5, "a closed connection is noticed at once"
    # The next attempt comes at most reconnect_max_s (0.4 s) later, then opening takes a moment.
    assert restored_at - back < 0.4 + 0.5, f"restored {restored_at - back:.2f} s after restart"
    assert frame.ts.timestamp() > time.time() - (time.monotonic() - back), (
        "no frame from before the outage is handed out after it"
    )
    assert stats.online
    assert stats.losses == 1
    lost, restored = events.events[0][1], events.events[1][1]
    assert lost.detail["source"] == mjpeg.url
    assert lost.detail["kind"] == "http"
    assert "closed or gave no frame" in str(lost.detail["reason"])
    assert float(typing.cast(float, restored.detail["down_for_s"])) >= 1.0


async def test_silent_stream_is_lost_after_the_read_timeout(mjpeg: MjpegServer) -> None:
    events = EventLog()
    section = CameraSection(source=mjpeg.url, fps=0, read_timeout_s=0.5, **FAST)
    async with Camera(section, on_event=events) as camera:
        await asyncio.wait_for(take(camera, 2), 5.0)
        mjpeg.stall()
        stalled = time.monotonic()
        lost_at = await events.wait(KnownEvent.CAMERA_LOST, within=3.0)
        mjpeg.resume()
        await events.wait(KnownEvent.CAMERA_RESTORED, within=3.0)
        await asyncio.wait_for(camera.next_frame(), 2.0)
    # FFmpeg notices after read_timeout_s; a frame may still have been in flight.
    assert 0.4 < lost_at - stalled < 0.5 + 0.6


async def test_credentials_stay_out_of_events() -> None:
    events = EventLog()
    url = f"http://admin:hunter2@127.0.0.1:{free_port()}/stream.mjpg?key=s3cret"
    async with Camera(CameraSection(source=url, **FAST), on_event=events):
        await events.wait(KnownEvent.CAMERA_LOST)
    text = events.events[0][1].model_dump_json()
    assert "hunter2" not in text
    assert "s3cret" not in text
    assert "admin" not in text
    assert "cannot open stream http://127.0.0.1:" in text


# --- rate limit and drop-to-latest --------------------------------------------------------


async def test_rate_limit_holds_and_the_rest_is_dropped() -> None:
    with MjpegServer(fps=30) as fast:
        async with Camera(CameraSection(source=fast.url, fps=10)) as camera:
            await asyncio.wait_for(camera.next_frame(), 5.0)
            start = time.monotonic()
            frames = await take(camera, 15)
            took = time.monotonic() - start
            stats = camera.stats
    assert 1.4 < took < 1.7, f"15 frames at 10 fps took {took:.2f} s"
    assert stats.delivered == 16
    assert stats.dropped >= 20, "about two of every three frames are never handed over"
    assert stats.dropped == frames[-1].seq - stats.delivered


async def test_slow_consumer_gets_the_newest_frame_not_a_backlog(mjpeg: MjpegServer) -> None:
    async with Camera(CameraSection(source=mjpeg.url, fps=0)) as camera:
        previous = await asyncio.wait_for(camera.next_frame(), 5.0)
        jumps = []
        for _ in range(3):
            await asyncio.sleep(0.3)  # the pipeline is busy for six frames' time
            frame = await camera.next_frame()
            age = (time.time() - frame.ts.timestamp()) * 1000
            assert age < 120, f"handed a frame {age:.0f} ms old"
            jumps.append(frame.seq - previous.seq)
            previous = frame
        stats = camera.stats
    assert all(jump >= 4 for jump in jumps), f"sequence jumps {jumps}"
    assert stats.dropped == previous.seq - stats.delivered


# --- devices and lifecycle ----------------------------------------------------------------


async def test_absent_device_is_reported_lost() -> None:
    events = EventLog()
    async with Camera(CameraSection(source="/dev/video63", **FAST), on_event=events):
        await events.wait(KnownEvent.CAMERA_LOST)
    reason = str(events.events[0][1].detail["reason"])
    assert reason.startswith("cannot open camera device /dev/video63 (absent, busy")


async def test_closing_the_camera_ends_its_frames(mjpeg: MjpegServer) -> None:
    camera = Camera(CameraSection(source=mjpeg.url, fps=0))
    with pytest.raises(CameraError, match="not started"):
        await camera.next_frame()
    await camera.start()
    received: list[CameraFrame] = []

    async def consume() -> None:
        async for frame in camera.frames():
            received.append(frame)

    async with asyncio.TaskGroup() as tasks:
        consumer = tasks.create_task(consume(), name="consumer")
        await asyncio.sleep(0.3)
        await camera.close()
    assert consumer.done()
    assert received
